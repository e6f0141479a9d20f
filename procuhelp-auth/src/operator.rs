//! Operators: the deployment's own named people, and the signed requests of the operator
//! API (issue #14 point 4, issue #16 point 7).
//!
//! An operator is a name and an Ed25519 public key in the deployment's configuration
//! ([`Operators::from_json`]); the private key never reaches the server. A request is
//! signed over its method, path, a timestamp and the SHA-256 of its body
//! ([`canonical`]), and carries
//! `Authorization: Procuhelp-Operator name=<name>,ts=<unix seconds>,sig=<base64url>`.
//! [`Operators::verify`] accepts it only within [`MAX_SKEW_SECS`] of the server's clock
//! and only once ([`ReplayGuard`]); every refusal is the same [`OperatorRefusal`] to the
//! client, and costs one signature check at most — no database work before the operator
//! is proved.
//!
//! Why signatures and not a bearer token: a stored token is a secret on the server (and
//! in every backup of its configuration); a public key is not, and a signed request
//! captured in transit is useless after its few seconds and its one use.
//!
//! ```
//! use procuhelp_auth::operator::{Operators, ReplayGuard, sign};
//! use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
//! let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
//! let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
//! let config = format!(
//!     r#"{{"operators": [{{"name": "alice", "public_key": "{}"}}]}}"#,
//!     hex::encode(key.public_key().as_ref())
//! );
//! let operators = Operators::from_json(config.as_bytes()).unwrap();
//! let replay = ReplayGuard::default();
//! let now = 1_800_000_000;
//! let header = sign(&key, "alice", "POST", "/operator/organisations", now, b"{}");
//! let who = operators.verify(&replay, &header, "POST", "/operator/organisations", b"{}", now);
//! assert_eq!(who.unwrap().as_str(), "alice");
//! // The same request again is refused.
//! assert!(operators.verify(&replay, &header, "POST", "/operator/organisations", b"{}", now).is_err());
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// How far a request's timestamp may be from the server's clock, either way.
pub const MAX_SKEW_SECS: i64 = 60;
/// Most operators a deployment names (a small number of named people).
pub const MAX_OPERATORS: usize = 64;
/// Requests remembered for replay refusal; beyond it new requests are refused until old
/// ones expire (bounded memory whatever a client sends).
pub const MAX_REMEMBERED: usize = 10_000;
/// The `Authorization` scheme.
pub const SCHEME: &str = "Procuhelp-Operator";
const DOMAIN: &str = "procuhelp-operator-request/1";
const MAX_HEADER: usize = 512;

/// An operator's name: 1–64 characters of `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperatorName(String);

impl OperatorName {
    /// Checks `name`.
    pub fn parse(name: &str) -> Result<Self, OperatorConfigError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(OperatorConfigError::Name)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OperatorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an operator configuration was refused (nothing of it is used).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorConfigError {
    /// Not the expected JSON (unknown fields are refused).
    #[error("operators configuration: {0}")]
    Json(String),
    /// A name is not 1–64 characters of `a-z 0-9 . _ -`.
    #[error("operators configuration: a name is 1-64 characters of a-z 0-9 . _ -")]
    Name,
    /// A public key is not 32 bytes of hex.
    #[error("operators configuration: {0}'s public_key is not an Ed25519 key (64 hex digits)")]
    Key(String),
    /// Two entries share a name or a key.
    #[error("operators configuration: {0} appears twice (names and keys are one per person)")]
    Duplicate(String),
    /// None, or more than [`MAX_OPERATORS`].
    #[error("operators configuration: name 1 to 64 operators")]
    Count,
}

/// The operator API refused a request. Deliberately one kind: the client learns nothing
/// about which check failed (the server log says, without the signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("operator authentication failed")]
pub struct OperatorRefusal {
    /// Why (for the server's log only).
    pub reason: RefusalReason,
}

/// Why a request was refused (logged, never answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// No `Authorization` header of the operator scheme, or a malformed one.
    Malformed,
    /// No operator of that name.
    UnknownOperator,
    /// The timestamp is more than [`MAX_SKEW_SECS`] away.
    Stale,
    /// The signature does not verify.
    BadSignature,
    /// Seen before.
    Replayed,
    /// The replay memory is full.
    Busy,
}

impl RefusalReason {
    /// A word for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownOperator => "unknown operator",
            Self::Stale => "stale timestamp",
            Self::BadSignature => "bad signature",
            Self::Replayed => "replayed",
            Self::Busy => "replay memory full",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    operators: Vec<ConfigEntry>,
    #[serde(default)]
    metrics_scrapers: Vec<ScraperEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScraperEntry {
    name: String,
    token_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigEntry {
    name: String,
    public_key: String,
}

/// The deployment's operators.
#[derive(Clone)]
pub struct Operators {
    keys: Vec<(OperatorName, [u8; 32])>,
    scrapers: Vec<(OperatorName, [u8; 32])>,
}

impl std::fmt::Debug for Operators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(n, _)| n.as_str()))
            .finish()
    }
}

impl Operators {
    /// Reads `{"operators": [{"name": "alice", "public_key": "<64 hex digits>"}]}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, OperatorConfigError> {
        let file: ConfigFile =
            serde_json::from_slice(bytes).map_err(|e| OperatorConfigError::Json(e.to_string()))?;
        if file.operators.is_empty() || file.operators.len() > MAX_OPERATORS {
            return Err(OperatorConfigError::Count);
        }
        let mut keys: Vec<(OperatorName, [u8; 32])> = Vec::new();
        for entry in file.operators {
            let name = OperatorName::parse(&entry.name)?;
            let key: [u8; 32] = hex::decode(entry.public_key.trim())
                .ok()
                .and_then(|k| k.try_into().ok())
                .filter(|k| !has_small_order(k))
                .ok_or_else(|| OperatorConfigError::Key(name.to_string()))?;
            if keys.iter().any(|(n, k)| *n == name || *k == key) {
                return Err(OperatorConfigError::Duplicate(name.to_string()));
            }
            keys.push((name, key));
        }
        if file.metrics_scrapers.len() > MAX_OPERATORS {
            return Err(OperatorConfigError::Count);
        }
        let mut scrapers: Vec<(OperatorName, [u8; 32])> = Vec::new();
        for entry in file.metrics_scrapers {
            let name = OperatorName::parse(&entry.name)?;
            let digest: [u8; 32] = hex::decode(entry.token_sha256.trim())
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| OperatorConfigError::Key(name.to_string()))?;
            if scrapers.iter().any(|(n, d)| *n == name || *d == digest) {
                return Err(OperatorConfigError::Duplicate(name.to_string()));
            }
            scrapers.push((name, digest));
        }
        Ok(Self { keys, scrapers })
    }

    /// Whether any metrics scraper is configured (without one, `/metrics` is not served).
    pub fn has_scrapers(&self) -> bool {
        !self.scrapers.is_empty()
    }

    /// Verifies a metrics scraper's `Authorization: Bearer <token>` header value: the
    /// token's SHA-256 must be one configured under `metrics_scrapers`. Every configured
    /// digest is compared, in constant time, whatever matches; the server holds only
    /// digests, so its configuration is no credential. Scrape tokens are 256-bit random
    /// values ([`new_scrape_token`]), for which one SHA-256 is as strong as a slow hash.
    pub fn verify_scraper(&self, header: Option<&str>) -> Result<OperatorName, OperatorRefusal> {
        use subtle::ConstantTimeEq as _;
        let refuse = |reason| OperatorRefusal { reason };
        let token = header
            .filter(|h| h.len() <= MAX_HEADER)
            .and_then(|h| {
                // The scheme is case-insensitive (RFC 9110 §11.1).
                h.get(..7)
                    .filter(|s| s.eq_ignore_ascii_case("bearer "))
                    .map(|_| &h[7..])
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(refuse(RefusalReason::Malformed))?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (name, expected) in &self.scrapers {
            if bool::from(expected.ct_eq(&digest)) {
                found = Some(name);
            }
        }
        found.cloned().ok_or(refuse(RefusalReason::UnknownOperator))
    }

    /// The operators' names.
    pub fn names(&self) -> impl Iterator<Item = &OperatorName> {
        self.keys.iter().map(|(n, _)| n)
    }

    /// Verifies an `Authorization` header value for a request of `method` to `path` with
    /// `body`, at `now` (Unix seconds), and remembers it so it is accepted once.
    pub fn verify(
        &self,
        replay: &ReplayGuard,
        header: &str,
        method: &str,
        path: &str,
        body: &[u8],
        now: i64,
    ) -> Result<OperatorName, OperatorRefusal> {
        let refuse = |reason| OperatorRefusal { reason };
        let parsed = parse_header(header).ok_or(refuse(RefusalReason::Malformed))?;
        if now.abs_diff(parsed.ts) > MAX_SKEW_SECS.unsigned_abs() {
            return Err(refuse(RefusalReason::Stale));
        }
        let known = self.keys.iter().find(|(n, _)| n.as_str() == parsed.name);
        // An unknown name costs the same signature check as a known one: the time of a
        // refusal does not tell which names exist.
        let key = known.map_or(&self.keys[0].1, |(_, k)| k);
        let message = canonical(&parsed.name, method, path, parsed.ts, body);
        let verified = UnparsedPublicKey::new(&ED25519, key)
            .verify(&message, &parsed.sig)
            .is_ok();
        let Some((name, _)) = known else {
            return Err(refuse(RefusalReason::UnknownOperator));
        };
        if !verified {
            return Err(refuse(RefusalReason::BadSignature));
        }
        replay.admit(&parsed.sig, now)?;
        Ok(name.clone())
    }
}

/// Whether `key` encodes a point of small order (or a non-canonical 0 or 1): with such a
/// public key, forged signatures verify (RFC 8032 verifiers accept R = identity, S = 0
/// for the identity key). The list is libsodium's (`ge25519_has_small_order`); the sign
/// bit is ignored.
fn has_small_order(key: &[u8; 32]) -> bool {
    const SMALL_ORDER: [[u8; 32]; 7] = [
        [0; 32],
        [
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ],
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
        top(0xec),
        top(0xed),
        top(0xee),
    ];
    const fn top(first: u8) -> [u8; 32] {
        let mut k = [0xff; 32];
        k[0] = first;
        k[31] = 0x7f;
        k
    }
    let mut masked = *key;
    masked[31] &= 0x7f;
    SMALL_ORDER.contains(&masked)
}

struct ParsedHeader {
    name: String,
    ts: i64,
    sig: Vec<u8>,
}

fn parse_header(header: &str) -> Option<ParsedHeader> {
    if header.len() > MAX_HEADER {
        return None;
    }
    let rest = header.strip_prefix(SCHEME)?.strip_prefix(' ')?;
    let (mut name, mut ts, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        let slot = match key {
            "name" => &mut name,
            "ts" => &mut ts,
            "sig" => &mut sig,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    let sig = URL_SAFE_NO_PAD.decode(sig?).ok()?;
    if sig.len() != 64 {
        return None;
    }
    Some(ParsedHeader {
        name: name?.to_owned(),
        ts: ts?.parse().ok()?,
        sig,
    })
}

/// The bytes an operator signs: a domain string, the operator's name, the method, the
/// path (with its query, as sent), the timestamp and the body's SHA-256, one per line.
pub fn canonical(name: &str, method: &str, path: &str, ts: i64, body: &[u8]) -> Vec<u8> {
    format!(
        "{DOMAIN}\n{name}\n{method}\n{path}\n{ts}\n{}",
        hex::encode(Sha256::digest(body))
    )
    .into_bytes()
}

/// Signs a request as operator `name` (for operator tools and tests): the
/// `Authorization` header value.
pub fn sign(
    key: &Ed25519KeyPair,
    name: &str,
    method: &str,
    path: &str,
    ts: i64,
    body: &[u8],
) -> String {
    let sig = key.sign(&canonical(name, method, path, ts, body));
    format!(
        "{SCHEME} name={name},ts={ts},sig={}",
        URL_SAFE_NO_PAD.encode(sig.as_ref())
    )
}

/// Signatures seen in the last `2 × MAX_SKEW_SECS`, so a captured request is accepted
/// once. Bounded ([`MAX_REMEMBERED`]); per process (see docs/operators.md).
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    by_hash: HashMap<[u8; 32], i64>,
    order: VecDeque<([u8; 32], i64)>,
}

impl ReplayGuard {
    fn admit(&self, sig: &[u8], now: i64) -> Result<(), OperatorRefusal> {
        let hash: [u8; 32] = Sha256::digest(sig).into();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((old, at)) = seen.order.front().copied() {
            if now - at <= 2 * MAX_SKEW_SECS {
                break;
            }
            seen.order.pop_front();
            seen.by_hash.remove(&old);
        }
        if seen.by_hash.contains_key(&hash) {
            return Err(OperatorRefusal {
                reason: RefusalReason::Replayed,
            });
        }
        if seen.order.len() >= MAX_REMEMBERED {
            return Err(OperatorRefusal {
                reason: RefusalReason::Busy,
            });
        }
        seen.by_hash.insert(hash, now);
        seen.order.push_back((hash, now));
        Ok(())
    }
}

/// A new metrics scrape token: `(token, its SHA-256 in hex)`. The token goes to the
/// scraper (Prometheus: `authorization: { credentials_file: … }`), the digest into the
/// operators file's `metrics_scrapers`.
pub fn new_scrape_token() -> Result<(procuhelp_core::SecretText, String), getrandom::Error> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut())?;
    let token = format!("phm_{}", URL_SAFE_NO_PAD.encode(raw.as_ref()));
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    Ok((procuhelp_core::SecretText::new(token), digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::KeyPair as _;

    fn key() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn config(entries: &[(&str, &Ed25519KeyPair)]) -> String {
        let list: Vec<String> = entries
            .iter()
            .map(|(n, k)| {
                format!(
                    r#"{{"name": "{n}", "public_key": "{}"}}"#,
                    hex::encode(k.public_key().as_ref())
                )
            })
            .collect();
        format!(r#"{{"operators": [{}]}}"#, list.join(","))
    }

    #[test]
    fn configurations_are_typed_and_refused_whole() {
        let (a, b) = (key(), key());
        assert!(Operators::from_json(config(&[("alice", &a), ("bob", &b)]).as_bytes()).is_ok());
        type Expect = fn(&OperatorConfigError) -> bool;
        let cases: [(String, Expect); 6] = [
            (config(&[("Alice", &a)]), |e| {
                *e == OperatorConfigError::Name
            }),
            (config(&[("alice", &a), ("alice", &b)]), |e| {
                matches!(e, OperatorConfigError::Duplicate(_))
            }),
            (config(&[("alice", &a), ("bob", &a)]), |e| {
                matches!(e, OperatorConfigError::Duplicate(_))
            }),
            (r#"{"operators": []}"#.to_owned(), |e| {
                *e == OperatorConfigError::Count
            }),
            (
                r#"{"operators": [{"name": "a", "public_key": "00"}]}"#.to_owned(),
                |e| matches!(e, OperatorConfigError::Key(_)),
            ),
            (r#"{"operators": [], "admins": []}"#.to_owned(), |e| {
                matches!(e, OperatorConfigError::Json(_))
            }),
        ];
        // Small-order keys (with either sign bit) would accept forged signatures.
        for small in [
            "0100000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000080",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            let json = format!(r#"{{"operators": [{{"name": "a", "public_key": "{small}"}}]}}"#);
            assert!(
                matches!(
                    Operators::from_json(json.as_bytes()),
                    Err(OperatorConfigError::Key(_))
                ),
                "{small}"
            );
        }
        for (json, expected) in cases {
            let err = Operators::from_json(json.as_bytes()).unwrap_err();
            assert!(expected(&err), "{json}: {err:?}");
        }
    }

    #[test]
    fn only_a_configured_scrape_token_passes_and_the_server_keeps_only_its_digest() {
        let a = key();
        let (token, digest) = new_scrape_token().unwrap();
        let (other, _) = new_scrape_token().unwrap();
        let json = format!(
            r#"{{"operators": [{{"name": "alice", "public_key": "{}"}}],
                "metrics_scrapers": [{{"name": "prometheus", "token_sha256": "{digest}"}}]}}"#,
            hex::encode(a.public_key().as_ref())
        );
        assert!(!json.contains(token.expose()));
        let ops = Operators::from_json(json.as_bytes()).unwrap();
        assert!(ops.has_scrapers());
        let header = format!("Bearer {}", token.expose());
        assert_eq!(
            ops.verify_scraper(Some(&header)).unwrap().as_str(),
            "prometheus"
        );
        for bad in [
            None,
            Some(String::new()),
            Some(token.expose().to_owned()),
            Some(format!("Basic {}", token.expose())),
            Some(format!("Bearer {}", other.expose())),
            Some(format!("Bearer {digest}")),
            Some(format!("Bearer {}", "a".repeat(600))),
        ] {
            assert!(ops.verify_scraper(bad.as_deref()).is_err(), "{bad:?}");
        }
        // Without scrapers nothing passes; bad digests are refused at load.
        let plain = Operators::from_json(config(&[("alice", &a)]).as_bytes()).unwrap();
        assert!(!plain.has_scrapers());
        assert!(plain.verify_scraper(Some(&header)).is_err());
        let bad = json.replace(&digest, "abcd");
        assert!(matches!(
            Operators::from_json(bad.as_bytes()),
            Err(OperatorConfigError::Key(_))
        ));
    }

    #[test]
    fn only_a_fresh_untampered_request_of_a_named_operator_passes_once() {
        let (alice, mallory) = (key(), key());
        let ops = Operators::from_json(config(&[("alice", &alice)]).as_bytes()).unwrap();
        let replay = ReplayGuard::default();
        let (m, p, body, now) = (
            "POST",
            "/operator/organisations",
            b"{\"a\":1}",
            1_800_000_000,
        );
        let verify = |h: &str, m: &str, p: &str, b: &[u8]| {
            ops.verify(&replay, h, m, p, b, now).map_err(|e| e.reason)
        };
        let good = sign(&alice, "alice", m, p, now - 30, body);
        let cases = [
            (
                sign(&alice, "alice", m, p, now - 61, body),
                m,
                p,
                &body[..],
                RefusalReason::Stale,
            ),
            (
                sign(&alice, "alice", m, p, now + 61, body),
                m,
                p,
                &body[..],
                RefusalReason::Stale,
            ),
            (
                sign(&mallory, "alice", m, p, now, body),
                m,
                p,
                &body[..],
                RefusalReason::BadSignature,
            ),
            (
                sign(&mallory, "mallory", m, p, now, body),
                m,
                p,
                &body[..],
                RefusalReason::UnknownOperator,
            ),
            (
                good.clone(),
                "PUT",
                p,
                &body[..],
                RefusalReason::BadSignature,
            ),
            (
                good.clone(),
                m,
                "/operator/other",
                &body[..],
                RefusalReason::BadSignature,
            ),
            (
                good.clone(),
                m,
                p,
                &b"{\"a\":2}"[..],
                RefusalReason::BadSignature,
            ),
            (
                good.replace("sig=", "sig=A"),
                m,
                p,
                &body[..],
                RefusalReason::Malformed,
            ),
            (
                format!("{good},ts=1"),
                m,
                p,
                &body[..],
                RefusalReason::Malformed,
            ),
            (
                good.replace(SCHEME, "Bearer"),
                m,
                p,
                &body[..],
                RefusalReason::Malformed,
            ),
            (
                "x".repeat(10_000),
                m,
                p,
                &body[..],
                RefusalReason::Malformed,
            ),
            (
                format!("{SCHEME} name=alice,ts={},sig={}", i64::MIN, "A".repeat(86)),
                m,
                p,
                &body[..],
                RefusalReason::Stale,
            ),
        ];
        for (header, method, path, body, reason) in cases {
            assert_eq!(verify(&header, method, path, body), Err(reason), "{header}");
        }
        assert_eq!(verify(&good, m, p, body).unwrap().as_str(), "alice");
        assert_eq!(verify(&good, m, p, body), Err(RefusalReason::Replayed));
    }

    #[test]
    fn replay_memory_is_bounded_and_forgets_expired_requests() {
        let guard = ReplayGuard::default();
        for i in 0..MAX_REMEMBERED {
            guard.admit(&i.to_be_bytes(), 0).unwrap();
        }
        assert_eq!(
            guard.admit(b"one more", 0).map_err(|e| e.reason),
            Err(RefusalReason::Busy)
        );
        guard.admit(b"later", 2 * MAX_SKEW_SECS + 1).unwrap();
        assert_eq!(guard.seen.lock().unwrap().order.len(), 1);
    }

    #[test]
    fn any_header_is_refused_without_panic() {
        for header in [
            "",
            "Procuhelp-Operator",
            "Procuhelp-Operator ",
            "Procuhelp-Operator name=,ts=,sig=",
            "Procuhelp-Operator name=a,ts=9999999999999999999999,sig=AA",
            "Procuhelp-Operator =,=,=",
        ] {
            assert!(parse_header(header).is_none(), "{header}");
        }
    }
}
