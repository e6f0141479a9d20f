//! OpenBao / HashiCorp Vault: KV v2 for secrets, Transit for wrapping data keys.
//!
//! The KEK is a Transit key `procuhelp-<kek>` (aes256-gcm96) and never leaves the vault.
//! The vault administrator creates it; the application's policy may use and rotate it but
//! not create, export or delete it (see `scripts/openbao.sh` for the policy we test with).
//! Credentials come from files (a token file, or AppRole role_id/secret_id files), never
//! from environment variables; the token is cached in memory as a [`SecretText`].

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Value, json};

use super::{SecretName, SecretProvider, VaultError, VersionedSecret, WrappedKey, check_kek_name};
use crate::crypto::DataKey;
use crate::{SecretBytes, SecretText};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How to authenticate to OpenBao.
#[derive(Debug, Clone)]
pub enum OpenBaoAuth {
    /// A token read from a file.
    TokenFile(PathBuf),
    /// AppRole: role_id and secret_id read from files; the token is obtained by login and
    /// re-obtained when it is refused.
    AppRole {
        /// File holding the role_id.
        role_id_file: PathBuf,
        /// File holding the secret_id.
        secret_id_file: PathBuf,
    },
}

/// The OpenBao provider.
pub struct OpenBao {
    http: reqwest::Client,
    addr: String,
    auth: OpenBaoAuth,
    token: Mutex<Option<std::sync::Arc<SecretText>>>,
    kv_mount: String,
    kv_prefix: String,
    transit_mount: String,
}

impl std::fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBao")
            .field("addr", &self.addr)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl OpenBao {
    /// A provider for the server at `addr` (e.g. `http://127.0.0.1:8200`), with KV v2 at
    /// `secret/` under `procuhelp/` and Transit at `transit/`. For HTTPS, name the
    /// vault's CA with [`OpenBao::with_ca`]. `addr` must be `https://`, or `http://` only
    /// to this machine (see [`OpenBao::with_ca`]).
    pub fn new(addr: &str, auth: OpenBaoAuth) -> Result<Self, VaultError> {
        Self::with_ca(addr, auth, &[])
    }

    /// A provider whose HTTPS connections trust exactly the PEM certificates in `ca_pem`
    /// (the vault's private CA). TLS uses rustls with the aws-lc-rs provider, chosen
    /// explicitly so that no process-wide default is needed.
    ///
    /// Every request carries the vault token (`X-Vault-Token`), so: `addr` must be
    /// `https://`, or `http://` only to loopback (`127.0.0.0/8`, `[::1]`, `localhost`),
    /// where the token never crosses a network; and the client follows no redirect (a
    /// redirect would carry the token to wherever it points — reqwest strips only
    /// `Authorization` and cookies on a cross-origin redirect). A 3xx answer is an error.
    pub fn with_ca(addr: &str, auth: OpenBaoAuth, ca_pem: &[u8]) -> Result<Self, VaultError> {
        check_addr(addr)?;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|_| VaultError::Invalid("CA file is not PEM"))?;
            roots
                .add(cert)
                .map_err(|_| VaultError::Invalid("CA certificate not usable"))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|_| VaultError::Invalid("TLS configuration"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would see the token in clear over http.
            .no_proxy()
            .build()
            .map_err(|e| VaultError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            addr: addr.trim_end_matches('/').to_owned(),
            auth,
            token: Mutex::new(None),
            kv_mount: "secret".into(),
            kv_prefix: "procuhelp".into(),
            transit_mount: "transit".into(),
        })
    }

    fn cached_token(&self) -> Option<std::sync::Arc<SecretText>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn token(&self) -> Result<std::sync::Arc<SecretText>, VaultError> {
        if let Some(t) = self.cached_token() {
            return Ok(t);
        }
        let token = match &self.auth {
            OpenBaoAuth::TokenFile(path) => SecretText::new(read_secret_file(path)?),
            OpenBaoAuth::AppRole {
                role_id_file,
                secret_id_file,
            } => {
                let body = json!({
                    "role_id": read_secret_file(role_id_file)?,
                    "secret_id": read_secret_file(secret_id_file)?,
                });
                let res = self
                    .send(
                        reqwest::Method::POST,
                        "auth/approle/login",
                        None,
                        Some(&body),
                    )
                    .await?;
                let token = res["auth"]["client_token"]
                    .as_str()
                    .ok_or_else(|| VaultError::Denied("AppRole login returned no token".into()))?;
                SecretText::new(token.to_owned())
            }
        };
        let token = std::sync::Arc::new(token);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// One authenticated call; a 403 with AppRole clears the cached token and retries once
    /// (the token may have expired).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let token = self.token().await?;
        match self.send(method.clone(), path, Some(&token), body).await {
            Err(VaultError::Denied(_)) if matches!(self.auth, OpenBaoAuth::AppRole { .. }) => {
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let token = self.token().await?;
                self.send(method, path, Some(&token), body).await
            }
            other => other,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&SecretText>,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let url = format!("{}/v1/{path}", self.addr);
        let mut req = self.http.request(method, &url);
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token.expose());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        // reqwest errors name the URL (no secrets in it) but not the token.
        let res = req
            .send()
            .await
            .map_err(|e| VaultError::Unavailable(format!("{}: {}", self.addr, e.without_url())))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .map_err(|e| VaultError::Unavailable(e.without_url().to_string()))?;
        // Error bodies carry only OpenBao's messages; success bodies may carry secrets and
        // are never put into an error.
        let parsed: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        let reason = || {
            parsed["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default()
        };
        match status.as_u16() {
            200..=299 => Ok(parsed),
            // Not followed (the token would go along): a vault that redirects is
            // misconfigured or not the vault.
            300..=399 => Err(VaultError::Unavailable(format!(
                "{path}: the vault answered with a redirect (HTTP {}), not followed",
                status.as_u16()
            ))),
            404 => Err(VaultError::NotFound(path.to_owned())),
            401 | 403 => Err(VaultError::Denied(format!("{path}: {}", reason().trim()))),
            400 => Err(VaultError::Invalid("the vault rejected the request (400)")),
            503 => Err(VaultError::Unavailable(format!(
                "{}: sealed or in standby ({})",
                self.addr,
                reason()
            ))),
            code => Err(VaultError::Unavailable(format!(
                "{path}: HTTP {code}: {}",
                reason()
            ))),
        }
    }

    fn kv_data(&self, name: &SecretName) -> String {
        format!(
            "{}/data/{}/{}",
            self.kv_mount,
            self.kv_prefix,
            name.as_str()
        )
    }

    fn transit(&self, op: &str, kek: &str) -> String {
        format!("{}/{op}/procuhelp-{kek}", self.transit_mount)
    }

    async fn list_dir(&self, dir: &str, out: &mut Vec<SecretName>) -> Result<(), VaultError> {
        let path = format!(
            "{}/metadata/{}/{}?list=true",
            self.kv_mount, self.kv_prefix, dir
        );
        let res = match self.call(reqwest::Method::GET, &path, None).await {
            Ok(res) => res,
            Err(VaultError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let keys: Vec<String> = res["data"]["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for key in keys {
            let full = format!("{dir}{key}");
            if key.ends_with('/') {
                Box::pin(self.list_dir(&full, out)).await?;
            } else if let Ok(name) = SecretName::new(&full) {
                out.push(name);
            }
        }
        Ok(())
    }

    fn aad(kek: &str) -> String {
        B64.encode(format!("procuhelp/wrapped-data-key/{kek}"))
    }
}

/// The vault's address: `https://`, or `http://` to loopback only (the token travels in
/// every request). No user info, query or fragment: the address is a base URL.
fn check_addr(addr: &str) -> Result<(), VaultError> {
    let url = reqwest::Url::parse(addr)
        .map_err(|_| VaultError::Invalid("OpenBao address is not a URL"))?;
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(VaultError::Invalid(
            "OpenBao address must be scheme://host[:port][/path]",
        ));
    }
    let loopback = url.host_str().is_some_and(crate::is_loopback_host);
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(VaultError::Invalid(
            "OpenBao address must be https (http only to loopback: the token is in every request)",
        )),
    }
}

fn read_secret_file(path: &std::path::Path) -> Result<String, VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let problem = |p: &str| VaultError::KeyFile {
        path: path.display().to_string(),
        problem: p.to_owned(),
    };
    let meta = std::fs::metadata(path).map_err(|e| problem(&e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(problem("readable by group or others; chmod 600"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| problem(&e.to_string()))?;
    Ok(text.trim().to_owned())
}

fn kek_version(ciphertext: &str) -> Result<u32, VaultError> {
    ciphertext
        .strip_prefix("vault:v")
        .and_then(|rest| rest.split(':').next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            VaultError::Corrupt("Transit ciphertext without a vault:v<N>: prefix".into())
        })
}

#[async_trait]
impl SecretProvider for OpenBao {
    async fn get(&self, name: &SecretName) -> Result<VersionedSecret, VaultError> {
        let res = self
            .call(reqwest::Method::GET, &self.kv_data(name), None)
            .await?;
        decode_kv(name, &res)
    }

    async fn get_version(
        &self,
        name: &SecretName,
        version: u32,
    ) -> Result<VersionedSecret, VaultError> {
        let res = self
            .call(
                reqwest::Method::GET,
                &format!("{}?version={version}", self.kv_data(name)),
                None,
            )
            .await?;
        decode_kv(name, &res)
    }

    async fn put(&self, name: &SecretName, value: SecretBytes) -> Result<u32, VaultError> {
        let body = json!({ "data": { "value": B64.encode(value.expose()) } });
        let res = self
            .call(reqwest::Method::POST, &self.kv_data(name), Some(&body))
            .await?;
        res["data"]["version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| VaultError::Corrupt("KV write returned no version".into()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<SecretName>, VaultError> {
        let mut out = Vec::new();
        self.list_dir("", &mut out).await?;
        out.retain(|n| n.as_str().starts_with(prefix));
        out.sort();
        Ok(out)
    }

    async fn delete(&self, name: &SecretName) -> Result<(), VaultError> {
        let path = format!(
            "{}/metadata/{}/{}",
            self.kv_mount,
            self.kv_prefix,
            name.as_str()
        );
        self.get(name).await?; // NotFound for a name that does not exist
        self.call(reqwest::Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    async fn wrap_key(&self, kek: &str, key: &DataKey) -> Result<WrappedKey, VaultError> {
        check_kek_name(kek)?;
        let body =
            json!({ "plaintext": B64.encode(key.expose()), "associated_data": Self::aad(kek) });
        let res = self
            .call(
                reqwest::Method::POST,
                &self.transit("encrypt", kek),
                Some(&body),
            )
            .await?;
        let ciphertext = res["data"]["ciphertext"]
            .as_str()
            .ok_or_else(|| VaultError::Corrupt("encrypt returned no ciphertext".into()))?;
        Ok(WrappedKey {
            kek_version: kek_version(ciphertext)?,
            ciphertext: ciphertext.as_bytes().to_vec(),
        })
    }

    async fn unwrap_key(&self, kek: &str, wrapped: &WrappedKey) -> Result<DataKey, VaultError> {
        check_kek_name(kek)?;
        let ciphertext = std::str::from_utf8(&wrapped.ciphertext)
            .map_err(|_| VaultError::Corrupt("wrapped key is not a Transit ciphertext".into()))?;
        if kek_version(ciphertext)? != wrapped.kek_version {
            return Err(VaultError::Corrupt("wrapped key version mismatch".into()));
        }
        let body = json!({ "ciphertext": ciphertext, "associated_data": Self::aad(kek) });
        let res = match self
            .call(
                reqwest::Method::POST,
                &self.transit("decrypt", kek),
                Some(&body),
            )
            .await
        {
            Ok(res) => res,
            // Transit answers a decrypt under a deleted key with 400 ("encryption key not
            // found"), like a bad ciphertext: ask whether the key exists, so a destroyed
            // key (crypto-shredding, offboarding) is told apart as NotFound.
            Err(VaultError::Invalid(reason)) => {
                self.call(reqwest::Method::GET, &self.transit("keys", kek), None)
                    .await?;
                return Err(VaultError::Invalid(reason));
            }
            Err(e) => return Err(e),
        };
        let plain = zeroize::Zeroizing::new(
            B64.decode(res["data"]["plaintext"].as_str().unwrap_or_default())
                .map_err(|_| VaultError::Corrupt("decrypt returned bad base64".into()))?,
        );
        DataKey::from_slice(&plain).map_err(|_| VaultError::Corrupt("data key length".into()))
    }

    async fn rotate_kek(&self, kek: &str) -> Result<u32, VaultError> {
        check_kek_name(kek)?;
        self.call(
            reqwest::Method::POST,
            &format!("{}/rotate", self.transit("keys", kek)),
            None,
        )
        .await?;
        let info = self
            .call(reqwest::Method::GET, &self.transit("keys", kek), None)
            .await?;
        info["data"]["latest_version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| VaultError::Corrupt("key info without latest_version".into()))
    }

    async fn create_kek(&self, kek: &str) -> Result<(), VaultError> {
        check_kek_name(kek)?;
        // An empty body creates a default aes256-gcm96, non-exportable key; an existing
        // key is left as it is.
        self.call(
            reqwest::Method::POST,
            &self.transit("keys", kek),
            Some(&json!({})),
        )
        .await
        .map(|_| ())
    }

    async fn destroy_kek(&self, kek: &str) -> Result<(), VaultError> {
        check_kek_name(kek)?;
        // Transit refuses to delete a key until deletion is allowed on it; the policy must
        // grant both for tenant keys.
        let config = format!("{}/config", self.transit("keys", kek));
        self.call(
            reqwest::Method::POST,
            &config,
            Some(&json!({ "deletion_allowed": true })),
        )
        .await?;
        self.call(reqwest::Method::DELETE, &self.transit("keys", kek), None)
            .await
            .map(|_| ())
    }

    async fn rewrap_key(&self, kek: &str, wrapped: &WrappedKey) -> Result<WrappedKey, VaultError> {
        // Transit's rewrap ignores associated_data, so it cannot rewrap our AAD-bound
        // wraps; decrypt and encrypt again (the data key is in our memory only briefly,
        // zeroized on drop).
        let key = self.unwrap_key(kek, wrapped).await?;
        self.wrap_key(kek, &key).await
    }
}

fn decode_kv(name: &SecretName, res: &Value) -> Result<VersionedSecret, VaultError> {
    let value = res["data"]["data"]["value"]
        .as_str()
        .ok_or_else(|| VaultError::NotFound(format!("secret {name} (deleted version)")))?;
    let bytes = B64
        .decode(value)
        .map_err(|_| VaultError::Corrupt(format!("secret {name} is not ours (bad base64)")))?;
    let version = res["data"]["metadata"]["version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0);
    Ok(VersionedSecret {
        version,
        value: SecretBytes::new(bytes),
    })
}
