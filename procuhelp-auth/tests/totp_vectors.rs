//! RFC 6238 Appendix B vectors (SHA-1/256/512, 8 digits) through totp-rs, and interop
//! with PyPI `pyotp`: a code it computes for our enrolled secret is accepted once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use procuhelp_auth::totp::{Totp, TotpError, TotpSecret};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/rfc6238_totp.json");

#[test]
fn rfc6238_appendix_b() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let mut n = 0;
    for v in doc["vectors"].as_array().unwrap() {
        let time = v["time"].as_u64().unwrap();
        for (name, alg) in [
            ("SHA1", totp_rs::Algorithm::SHA1),
            ("SHA256", totp_rs::Algorithm::SHA256),
            ("SHA512", totp_rs::Algorithm::SHA512),
        ] {
            let seed = doc["seeds_ascii"][name]
                .as_str()
                .unwrap()
                .as_bytes()
                .to_vec();
            let totp = totp_rs::TOTP::new_unchecked(alg, 8, 0, 30, seed, None, String::new());
            assert_eq!(
                totp.generate(time),
                v[name].as_str().unwrap(),
                "{name} at {time}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 18);
}

#[test]
fn pyotp_code_is_accepted_once() {
    let totp = Totp::new("ProcuHelp");
    let secret = TotpSecret::generate().unwrap();
    let uri = totp.enrolment_uri(&secret, "ada@example.com").unwrap();
    // pyotp reads the enrolment URI (as an authenticator app would) and computes the code.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, pyotp; print(pyotp.parse_uri(sys.argv[1]).now())",
            &uri,
        ])
        .output()
        .expect("python3 must be installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "pyotp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let now = time::OffsetDateTime::now_utc();
    let step = totp.verify(&secret, &code, now, None).unwrap();
    assert_eq!(
        totp.verify(&secret, &code, now, Some(step)),
        Err(TotpError::InvalidCode)
    );
}
