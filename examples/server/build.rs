//! `sqlx::migrate!` embeds the migration files; a new file must rebuild the crate.
//!
//! And records, at build time, what `procuhelp-server self-audit` reports about
//! dependencies: the date of the RustSec advisory snapshot the build was checked against,
//! and the last `scripts/deny.sh` result if it was for this very `Cargo.lock`.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    let snapshot = root.join(".ci/advisory-db/SNAPSHOT");
    let lock = root.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", snapshot.display());
    println!("cargo:rerun-if-changed={}", lock.display());
    let snapshot_date = std::fs::read_to_string(&snapshot)
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PROCUHELP_ADVISORY_SNAPSHOT={snapshot_date}");

    let lock_digest = std::fs::read(&lock)
        .map(|bytes| hex(&sha2::Sha256::digest(&bytes)))
        .unwrap_or_default();
    let (result, at) = match target_dir() {
        Some(target) => {
            let file = target.join("procuhelp-deny.txt");
            // It must exist for cargo to rerun this script only when deny.sh rewrites it.
            if !file.exists() {
                let _ = std::fs::write(&file, "result=not run\n");
            }
            println!("cargo:rerun-if-changed={}", file.display());
            read_result(&file, &lock_digest, &snapshot_date)
        }
        None => ("not run".to_owned(), String::new()),
    };
    println!("cargo:rustc-env=PROCUHELP_DENY_RESULT={result}");
    println!("cargo:rustc-env=PROCUHELP_DENY_AT={at}");
}

use sha2::Digest as _;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The target directory: the nearest ancestor of OUT_DIR holding cargo's CACHEDIR.TAG.
fn target_dir() -> Option<PathBuf> {
    let out = PathBuf::from(std::env::var("OUT_DIR").ok()?);
    out.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
}

fn read_result(file: &Path, lock_digest: &str, snapshot_date: &str) -> (String, String) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .unwrap_or("")
            .to_owned()
    };
    let result = field("result");
    if result != "passed" && result != "failed" {
        return ("not run".to_owned(), String::new());
    }
    // For this Cargo.lock, against this advisory snapshot: anything else is stale.
    if field("lock") != lock_digest || field("snapshot") != snapshot_date {
        return ("stale".to_owned(), field("at"));
    }
    (result, field("at"))
}
