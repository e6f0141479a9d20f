//! Fuzz target `backup_sealed`: the reader of sealed backup files
//! (`procuhelp_tenancy::backup::sealed`), which parses whatever is in the backup
//! repository — a directory anyone with write access to the backup volume can change.
//!
//! The first byte chooses the mode, the rest is its input:
//!
//! | byte % 2 | what |
//! |---|---|
//! | 0 | the bytes as a whole sealed file: header parse, key unwrap, chunk framing (an `Err` is expected; a panic is the failure) |
//! | 1 | the bytes as plaintext, sealed with a fixed test vault, then damaged at positions and with masks taken from the input's own bytes: reading must fail or return exactly the plaintext — never other bytes |
//!
//! The vault is a file vault created once per process under the temporary directory.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use procuhelp_core::vault::FileVault;
use procuhelp_tenancy::backup::sealed::{FileKind, SealedReader, SealedWriter};

fn env() -> &'static (tokio::runtime::Runtime, FileVault) {
    static ENV: OnceLock<(tokio::runtime::Runtime, FileVault)> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("procuhelp-fuzz-vault-{}", std::process::id()));
        let vault = FileVault::open_or_create(&dir).expect("test vault");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        (rt, vault)
    })
}

const LABEL: &str = "20261203T000000Z-0000";

async fn read_all(bytes: &[u8], vault: &FileVault) -> Option<Vec<u8>> {
    let mut reader = SealedReader::open(bytes, "fuzz", FileKind::Dump, LABEL, vault).await.ok()?;
    let mut out = Vec::new();
    loop {
        match reader.next_chunk().await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            Ok(None) => return Some(out),
            Err(_) => return None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (rt, vault) = env();
    rt.block_on(async {
        if mode % 2 == 0 {
            let _ = read_all(rest, vault).await;
            return;
        }
        let mut writer = SealedWriter::create(Vec::new(), FileKind::Dump, LABEL, vault)
            .await
            .expect("sealing");
        writer.write(rest).await.expect("sealing");
        let (mut sealed, _) = writer.finish().await.expect("sealing");
        assert_eq!(read_all(&sealed, vault).await.as_deref(), Some(rest), "round trip");
        // Damage: up to four (position, mask) pairs from the input's first bytes.
        let mut changed = false;
        for pair in rest.chunks_exact(3).take(4) {
            let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % sealed.len();
            if pair[2] != 0 {
                sealed[at] ^= pair[2];
                changed = true;
            }
        }
        if let Some(&cut) = rest.first()
            && cut % 5 == 0
        {
            sealed.truncate(sealed.len().saturating_sub(usize::from(cut / 5) + 1));
            changed = true;
        }
        if changed {
            // A damaged file may fail; it may never yield other bytes.
            if let Some(out) = read_all(&sealed, vault).await {
                assert_eq!(out.as_slice(), rest, "damaged file read back as other plaintext");
            }
        }
    });
});
