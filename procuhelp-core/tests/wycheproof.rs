//! Every Wycheproof AES-GCM vector with a 256-bit key, 96-bit IV and 128-bit tag goes
//! through each provider's decrypt path: valid vectors decrypt to their message, invalid
//! ones are rejected. Valid vectors also encrypt to their ciphertext (known answer), and
//! the providers are cross-checked against each other on random inputs.
//!
//! Vectors: C2SP/wycheproof `aes_gcm_test.json` (Apache-2.0, see vectors/wycheproof/LICENSE).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use procuhelp_core::crypto::{AeadProvider, DataKey, RustCryptoAead};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/wycheproof/aes_gcm_test.json");

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn wycheproof_aes_256_gcm() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let mut counted = (0, 0);
    for group in doc["testGroups"].as_array().unwrap() {
        if group["keySize"] != 256 || group["ivSize"] != 96 || group["tagSize"] != 128 {
            continue;
        }
        for t in group["tests"].as_array().unwrap() {
            let id = &t["tcId"];
            let key = DataKey::from_slice(&bytes(&t["key"])).unwrap();
            let nonce: [u8; 12] = bytes(&t["iv"]).try_into().unwrap();
            let aad = bytes(&t["aad"]);
            let msg = bytes(&t["msg"]);
            let mut sealed = bytes(&t["ct"]);
            sealed.extend_from_slice(&bytes(&t["tag"]));
            let valid = t["result"] == "valid";
            for p in procuhelp_core::crypto::providers() {
                let mut buf = sealed.clone();
                let prepared = p.prepare(&key).unwrap();
                let opened = prepared.open_in_place(&nonce, &aad, &mut buf);
                if valid {
                    assert!(opened.is_ok(), "{}: tcId {id} should decrypt", p.name());
                    assert_eq!(buf, msg, "{}: tcId {id} plaintext", p.name());
                    let mut enc = msg.clone();
                    prepared.seal_in_place(&nonce, &aad, &mut enc).unwrap();
                    assert_eq!(enc, sealed, "{}: tcId {id} known answer", p.name());
                } else {
                    assert!(
                        opened.is_err(),
                        "{}: tcId {id} ({}) must be rejected",
                        p.name(),
                        t["comment"]
                    );
                }
            }
            if valid {
                counted.0 += 1
            } else {
                counted.1 += 1
            }
        }
    }
    assert_eq!(
        counted,
        (39, 27),
        "expected 39 valid and 27 invalid vectors"
    );
}

#[cfg(feature = "aws-lc")]
#[test]
fn providers_agree_on_random_inputs() {
    use procuhelp_core::crypto::AwsLcAead;
    for len in [0usize, 1, 15, 16, 17, 64, 1024, 16 * 1024 + 3] {
        let key = DataKey::generate().unwrap();
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).unwrap();
        let aad = vec![0xA5u8; len % 37];
        let mut msg = vec![0u8; len];
        getrandom::fill(&mut msg).unwrap();
        let mut a = msg.clone();
        RustCryptoAead
            .prepare(&key)
            .unwrap()
            .seal_in_place(&nonce, &aad, &mut a)
            .unwrap();
        let mut b = msg.clone();
        AwsLcAead
            .prepare(&key)
            .unwrap()
            .seal_in_place(&nonce, &aad, &mut b)
            .unwrap();
        assert_eq!(a, b, "providers disagree at {len} bytes");
        AwsLcAead
            .prepare(&key)
            .unwrap()
            .open_in_place(&nonce, &aad, &mut a)
            .unwrap();
        assert_eq!(a, msg);
    }
}
