//! docs/access-matrix.md is generated from the permission matrix in code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

#[test]
fn access_matrix_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/access-matrix.md");
    let generated = procuhelp_auth::access_matrix_markdown();
    if std::env::var_os("PROCUHELP_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk, generated,
        "docs/access-matrix.md is stale: run PROCUHELP_BLESS=1 cargo test -p procuhelp-auth --test access_matrix"
    );
}
