//! Argon2id known answers (RFC 9106 §5.3 and the reference implementation's PHC strings)
//! and interop with the C reference implementation through PyPI `argon2-cffi`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
use procuhelp_auth::password::PasswordHasher;
use procuhelp_core::SecretText;
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/argon2_vectors.json");

#[test]
fn rfc9106_argon2id_with_secret_and_associated_data() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let v = &doc["rfc9106_argon2id"];
    let h = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
    let ad = h("ad_hex");
    let params = ParamsBuilder::new()
        .m_cost(v["memory_kib"].as_u64().unwrap() as u32)
        .t_cost(v["iterations"].as_u64().unwrap() as u32)
        .p_cost(v["parallelism"].as_u64().unwrap() as u32)
        .output_len(32)
        .data(AssociatedData::new(&ad).unwrap())
        .build()
        .unwrap();
    let secret = h("secret_hex");
    let argon =
        Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params).unwrap();
    let mut out = [0u8; 32];
    argon
        .hash_password_into(&h("password_hex"), &h("salt_hex"), &mut out)
        .unwrap();
    assert_eq!(hex::encode(out), v["tag_hex"].as_str().unwrap());
}

#[test]
fn reference_phc_strings_verify() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let hasher = PasswordHasher::for_tests();
    let mut n = 0;
    for v in doc["phc_encoded_argon2id"].as_array().unwrap() {
        let password = SecretText::new(v["password"].as_str().unwrap().to_owned());
        let encoded = v["encoded"].as_str().unwrap();
        assert!(
            hasher.verify(&password, Some(encoded)).unwrap().ok,
            "{encoded}"
        );
        let wrong = SecretText::new("not the password".into());
        assert!(!hasher.verify(&wrong, Some(encoded)).unwrap().ok);
        n += 1;
    }
    assert!(n >= 3);
}

fn python(script: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed (scripts/setup.sh)")
}

#[test]
fn interop_with_argon2_cffi() {
    let ours = PasswordHasher::with_params(19 * 1024, 2, 1).unwrap();
    let password = "interop passphrase ✓ 2026";
    // Ours → the C reference implementation.
    let stored = ours.hash(&SecretText::new(password.into())).unwrap();
    let out = python(
        "import sys; from argon2 import PasswordHasher; print(PasswordHasher().verify(sys.argv[1], sys.argv[2]))",
        &[&stored, password],
    );
    assert!(
        out.status.success(),
        "argon2-cffi rejected our hash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True");
    // The C reference implementation → ours.
    let out = python(
        "import sys; from argon2 import PasswordHasher; print(PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(sys.argv[1]))",
        &[password],
    );
    assert!(
        out.status.success(),
        "argon2-cffi: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap();
    let v = ours
        .verify(&SecretText::new(password.into()), Some(theirs.trim()))
        .unwrap();
    assert!(v.ok && !v.needs_rehash, "{theirs}");
    assert!(
        !ours
            .verify(&SecretText::new("wrong".into()), Some(theirs.trim()))
            .unwrap()
            .ok
    );
}
