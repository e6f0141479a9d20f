//! A private key file of its own: created 0600 (its directory 0700) on first use, and
//! refused when group or others may read or write it.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::{AuditError, Result};

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> AuditError {
    move |source| AuditError::Io { context, source }
}

/// The bytes of the key file `path`, after `generate`-ing and writing it if absent.
pub(crate) fn read_or_create(
    path: &Path,
    generate: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io("creating the signing key's directory"))?;
        }
        let key = generate()?;
        // create_new: two processes starting at once do not overwrite each other's key;
        // the loser reads the winner's below.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                file.write_all(&key)
                    .and_then(|()| file.sync_all())
                    .map_err(io("writing the signing key file"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("creating the signing key file")(e)),
        }
    }
    let meta = std::fs::metadata(path).map_err(io("reading the signing key file"))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(AuditError::Signature(
            "the signing key file is accessible to group or others (chmod 600 it)",
        ));
    }
    std::fs::read(path).map_err(io("reading the signing key file"))
}
