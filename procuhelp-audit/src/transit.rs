//! Checkpoint signing by OpenBao (or Vault) Transit with a non-exportable Ed25519 key.
//!
//! The process asks OpenBao to sign (`POST /v1/<mount>/sign/<key>`) and never holds the
//! private key, so a copy of the runtime's credentials or vault files cannot re-sign a
//! rewritten trail offline: forging needs live access to OpenBao, whose own audit device
//! records every signature. The administrator creates the key:
//!
//! ```text
//! bao write transit/keys/procuhelp-audit-signing type=ed25519 exportable=false
//! ```
//!
//! and gives the server a token whose policy allows only `update` on
//! `transit/sign/procuhelp-audit-signing` and `read` on
//! `transit/keys/procuhelp-audit-signing`. A key that is exportable, or not Ed25519, is
//! refused at start-up.

use std::path::PathBuf;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::checkpoint::{CheckpointSigner, PublicKey};
use crate::{AuditError, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Where the Transit key is and how to reach it.
#[derive(Clone)]
pub struct TransitConfig {
    /// OpenBao's address, e.g. `https://bao.internal:8200` (plain `http` only for a
    /// loopback host).
    pub addr: String,
    /// A file holding the token (read at [`TransitSigner::connect`]; never logged).
    pub token_file: PathBuf,
    /// PEM certificates of the CA that signed OpenBao's certificate (empty for `http`).
    pub ca_pem: Vec<u8>,
    /// Transit's mount (default `transit`).
    pub mount: String,
    /// The key's name (default `procuhelp-audit-signing`).
    pub key: String,
}

impl std::fmt::Debug for TransitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitConfig")
            .field("addr", &self.addr)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl TransitConfig {
    /// The defaults for `addr` with the token in `token_file`.
    pub fn new(addr: impl Into<String>, token_file: impl Into<PathBuf>) -> Self {
        Self {
            addr: addr.into(),
            token_file: token_file.into(),
            ca_pem: Vec::new(),
            mount: "transit".to_owned(),
            key: "procuhelp-audit-signing".to_owned(),
        }
    }
}

/// A [`CheckpointSigner`] backed by OpenBao Transit (see the module docs).
pub struct TransitSigner {
    http: reqwest::Client,
    addr: String,
    token: procuhelp_core::SecretText,
    mount: String,
    key: String,
    /// The key version signed with: the latest at connect time, so a rotation takes
    /// effect at the next start (and the public key named in checkpoints stays right).
    version: u64,
    public_key: PublicKey,
}

impl std::fmt::Debug for TransitSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitSigner")
            .field("addr", &self.addr)
            .field("key", &self.key)
            .field("public_key", &hex::encode(self.public_key))
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str) -> impl FnOnce(reqwest::Error) -> AuditError + '_ {
    move |e| AuditError::Unavailable(format!("OpenBao Transit {what}: {}", e.without_url()))
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TransitSigner {
    /// Reads the token, checks the key (Ed25519, not exportable) and fetches its current
    /// public key. Any problem is an error: checkpoints are never signed half-configured.
    pub async fn connect(config: TransitConfig) -> Result<Self> {
        if !is_name(&config.mount) || !is_name(&config.key) {
            return Err(AuditError::Invalid {
                field: "transit key",
                reason: "mount and key must be 1-128 letters, digits, '-' or '_'",
            });
        }
        let url = reqwest::Url::parse(&config.addr).map_err(|_| AuditError::Invalid {
            field: "transit addr",
            reason: "not a URL",
        })?;
        let loopback = url.host_str().is_some_and(procuhelp_core::is_loopback_host);
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(AuditError::Invalid {
                    field: "transit addr",
                    reason: "must be https (http only for a loopback host)",
                });
            }
        }
        let token =
            std::fs::read_to_string(&config.token_file).map_err(|source| AuditError::Io {
                context: "reading the OpenBao token file",
                source,
            })?;
        let token = procuhelp_core::SecretText::new(token.trim().to_owned());
        let http = client(&config.ca_pem, url.scheme() == "https")?;
        let mut signer = Self {
            http,
            addr: config.addr.trim_end_matches('/').to_owned(),
            token,
            mount: config.mount,
            key: config.key,
            version: 0,
            public_key: [0; 32],
        };
        let (latest, keys) = signer.read_key().await?;
        signer.version = latest;
        signer.public_key = keys
            .into_iter()
            .find(|(v, _)| *v == latest)
            .map(|(_, k)| k)
            .ok_or(AuditError::Signature(
                "Transit key has no public key for its latest version",
            ))?;
        Ok(signer)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/v1/{}/{path}/{}", self.addr, self.mount, self.key);
        let mut req = self
            .http
            .request(method, &url)
            .header("X-Vault-Token", self.token.expose());
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.map_err(unavailable(path))?;
        let status = res.status();
        // Only the status is reported: bodies are OpenBao's business, never echoed.
        if !status.is_success() {
            return Err(AuditError::Unavailable(format!(
                "OpenBao Transit {path} {}: HTTP {}",
                self.key,
                status.as_u16()
            )));
        }
        res.json().await.map_err(unavailable(path))
    }

    /// The latest version and every version's public key; refuses an exportable or
    /// non-Ed25519 key.
    async fn read_key(&self) -> Result<(u64, Vec<(u64, PublicKey)>)> {
        let res = self.call(reqwest::Method::GET, "keys", None).await?;
        let data = &res["data"];
        if data["type"].as_str() != Some("ed25519") {
            return Err(AuditError::Signature(
                "the Transit key is not of type ed25519",
            ));
        }
        if data["exportable"].as_bool() != Some(false) {
            return Err(AuditError::Signature(
                "the Transit key is exportable: create it with exportable=false",
            ));
        }
        let latest = data["latest_version"]
            .as_u64()
            .ok_or(AuditError::Signature(
                "the Transit key has no latest_version",
            ))?;
        let mut keys = Vec::new();
        if let Some(versions) = data["keys"].as_object() {
            for (version, info) in versions {
                let (Ok(version), Some(pk)) = (version.parse::<u64>(), info["public_key"].as_str())
                else {
                    continue;
                };
                let bytes = B64
                    .decode(pk)
                    .map_err(|_| AuditError::Signature("a Transit public key is not base64"))?;
                let key = PublicKey::try_from(bytes.as_slice())
                    .map_err(|_| AuditError::Signature("a Transit public key is not 32 bytes"))?;
                keys.push((version, key));
            }
        }
        keys.sort_unstable_by_key(|(v, _)| *v);
        Ok((latest, keys))
    }
}

fn client(ca_pem: &[u8], https: bool) -> Result<reqwest::Client> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|_| AuditError::Invalid {
            field: "transit ca",
            reason: "not PEM",
        })?;
        roots.add(cert).map_err(|_| AuditError::Invalid {
            field: "transit ca",
            reason: "not a usable CA certificate",
        })?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| AuditError::Internal("TLS protocol versions"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        // A redirect would carry the token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .https_only(https)
        .build()
        .map_err(|e| AuditError::Unavailable(format!("OpenBao Transit client: {e}")))
}

#[async_trait]
impl CheckpointSigner for TransitSigner {
    async fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        let res = self
            .call(
                reqwest::Method::POST,
                "sign",
                Some(json!({
                    "input": B64.encode(message),
                    "key_version": self.version,
                    "marshaling_algorithm": "jws",
                })),
            )
            .await?;
        let text = res["data"]["signature"]
            .as_str()
            .ok_or(AuditError::Signature("Transit returned no signature"))?;
        // `vault:v<version>:<base64>`
        let b64 = text
            .strip_prefix("vault:v")
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, sig)| sig)
            .ok_or(AuditError::Signature("Transit signature is not vault:vN:…"))?;
        // jws marshaling is URL-safe base64 for ECDSA; Ed25519 signatures come back in
        // standard base64. Accept either.
        let bytes = B64
            .decode(b64)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64))
            .map_err(|_| AuditError::Signature("Transit signature is not base64"))?;
        <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| AuditError::Signature("Transit signature is not 64 bytes"))
    }

    fn public_key(&self) -> PublicKey {
        self.public_key
    }

    async fn public_keys(&self) -> Result<Vec<PublicKey>> {
        Ok(self
            .read_key()
            .await?
            .1
            .into_iter()
            .map(|(_, k)| k)
            .collect())
    }
}
