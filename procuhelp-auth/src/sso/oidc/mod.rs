//! OpenID Connect sign-in, shaped for Microsoft Entra ID.
//!
//! [`OidcClient`] runs the authorization code flow with PKCE S256 for one organisation's
//! [`OidcConnection`]:
//!
//! 1. [`OidcClient::begin`] returns the provider's authorization URL and a
//!    [`PendingLogin`] (state, nonce, PKCE verifier) that the caller stores single-use and
//!    binds to the browser.
//! 2. [`OidcClient::complete`] checks the returned `state`, redeems the code with the
//!    verifier, and verifies the ID token ([`OidcClient::verify_id_token`]).
//!
//! ID-token verification: signature against the provider's JWKS with an algorithm
//! allow-list (RSA and ECDSA only: no `none`, no HMAC, so a public key can never be used
//! as an HMAC secret); issuer compared exactly, with Entra's `{tenantid}` template resolved
//! from the token's `tid`, which must be one of the organisation's tenants; audience;
//! expiry, `nbf` and `iat` with a bounded clock skew; nonce. Users are identified by
//! `(tid, oid)`, never by e-mail ("nOAuth"). Discovery and keys are cached; a token signed
//! with a key id the cache does not know triggers one refresh (key rollover), at most once
//! per [`JWKS_REFRESH_INTERVAL`].
//!
//! Endpoint URLs come from the discovery document, fetched from
//! [`OidcConnection::discovery_url`], so a provider served elsewhere than its issuer string
//! works; the document's `issuer` must still equal the configured issuer exactly.
//!
//! Every request to the provider — discovery, keys, the token endpoint (which carries the
//! code, the PKCE verifier and the client secret) — goes through one
//! [`OutboundClient`] held to the [`OutboundPolicy`] the
//! client was built with: https to public addresses only, checked for address literals
//! before the request and for names after DNS resolution, no redirects. The `jwks_uri`
//! and `token_endpoint` a discovery document names are checked before they are used. A
//! refused or failed request is [`OidcError::Fetch`] with a fixed reason only.
//!
//! ```
//! use procuhelp_auth::sso::oidc::OidcConnection;
//! let conn: OidcConnection = serde_json::from_value(serde_json::json!({
//!     "discovery_url": "https://login.microsoftonline.com/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/v2.0/.well-known/openid-configuration",
//!     "issuer": "https://login.microsoftonline.com/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/v2.0",
//!     "client_id": "13f0eaea-7284-4cae-8822-bcd14389d2fc",
//!     "tenant_ids": ["f7393f3e-c33d-4dfe-b4a8-f473310e7bf5"],
//!     "redirect_uri": "https://procuhelp.example/sso/oidc/callback",
//!     "group_roles": { "65df403a-0000-4000-8000-000000000001": "admin" }
//! })).unwrap();
//! conn.validate().unwrap();
//! ```

mod config;
mod error;
mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use procuhelp_core::outbound::read_limited;
use procuhelp_core::{OutboundClient, OutboundError, OutboundPolicy};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

pub use config::OidcConnection;
pub use error::OidcError;
pub use token::OidcIdentity;

use crate::sso::RoleMapping;

/// The least time between two JWKS fetches triggered by unknown key ids, so forged
/// tokens with random `kid`s cannot make us hammer the provider.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How long discovery and keys are reused before they are fetched again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Largest discovery document, JWKS or token response accepted.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// What [`OidcClient::begin`] hands the caller to keep until the callback: single-use,
/// bound to the browser that started the login, short-lived (the caller's expiry).
pub struct PendingLogin {
    /// The `state` sent to the provider.
    pub state: Zeroizing<String>,
    /// The `nonce` the ID token must carry.
    pub nonce: Zeroizing<String>,
    /// The PKCE code verifier.
    pub pkce_verifier: Zeroizing<String>,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingLogin { .. }")
    }
}

struct Discovered {
    metadata: CoreProviderMetadata,
    jwks: CoreJsonWebKeySet,
    fetched: Instant,
    /// When an unknown key id last made us fetch the keys again.
    forced_refresh: Option<Instant>,
}

/// An OpenID Connect relying party for one organisation's connection.
pub struct OidcClient {
    conn: OidcConnection,
    roles: RoleMapping,
    client_secret: SecretString,
    http: OutboundClient,
    cache: Mutex<Option<Arc<Discovered>>>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.conn.issuer)
            .field("client_id", &self.conn.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcClient {
    /// A client for `conn` (validated here, and its discovery URL checked against
    /// `policy`) with its client secret. Every request it makes is held to `policy`:
    /// [`OutboundPolicy::public_only`] in production.
    pub fn new(
        conn: OidcConnection,
        client_secret: SecretString,
        policy: OutboundPolicy,
    ) -> Result<Self, OidcError> {
        let roles = conn.validate()?;
        conn.check_destinations(policy)?;
        if client_secret.expose_secret().is_empty() {
            return Err(OidcError::Config("client secret is empty".to_owned()));
        }
        let tls = tls_config()?;
        let http = policy
            .client(|b| {
                b.timeout(Duration::from_secs(10))
                    .use_preconfigured_tls(tls)
            })
            .map_err(|_| OidcError::Config("HTTP client".to_owned()))?;
        Ok(Self {
            conn,
            roles,
            client_secret,
            http,
            cache: Mutex::new(None),
        })
    }

    /// The connection this client serves.
    pub fn connection(&self) -> &OidcConnection {
        &self.conn
    }

    /// The organisation's group → role mapping.
    pub fn roles(&self) -> &RoleMapping {
        &self.roles
    }

    /// Starts a sign-in: the provider's authorization URL (code flow, PKCE S256, state,
    /// nonce) and what to keep until the callback. `login_hint` is passed through.
    pub async fn begin(
        &self,
        login_hint: Option<&str>,
    ) -> Result<(String, PendingLogin), OidcError> {
        let discovered = self.discovered(false).await?;
        let client = self.core_client(&discovered)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".to_owned()))
            .add_scope(Scope::new("email".to_owned()))
            .set_pkce_challenge(challenge);
        if let Some(hint) = login_hint {
            request = request.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            PendingLogin {
                state: Zeroizing::new(state.secret().clone()),
                nonce: Zeroizing::new(nonce.secret().clone()),
                pkce_verifier: Zeroizing::new(verifier.secret().clone()),
            },
        ))
    }

    /// Finishes a sign-in: `returned_state` must equal the pending state (constant time),
    /// the code is redeemed with the PKCE verifier, and the ID token is verified at `now`.
    pub async fn complete(
        &self,
        pending: &PendingLogin,
        returned_state: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<OidcIdentity, OidcError> {
        let same_state: bool = pending
            .state
            .as_bytes()
            .ct_eq(returned_state.as_bytes())
            .into();
        if !same_state {
            return Err(OidcError::StateMismatch);
        }
        if code.is_empty() || code.len() > 4096 {
            return Err(OidcError::Malformed("authorization code".to_owned()));
        }
        let discovered = self.discovered(false).await?;
        let client = self.core_client(&discovered)?;
        // The code, the verifier and the client secret go only where the policy allows:
        // the token endpoint was checked when discovered, and is checked again here.
        // Owned, not borrowed: a closure over `&self` makes the callback's future
        // lose `Send` (higher-ranked lifetime); the client is an `Arc` inside.
        let http = self.http.clone();
        let send = move |request: openidconnect::HttpRequest| exchange(http.clone(), request);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| OidcError::Discovery("no token endpoint".to_owned()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.to_string()))
            .request_async(&send)
            .await
            .map_err(error::token_request_error)?;
        let raw = response
            .id_token()
            .ok_or(OidcError::MissingIdToken)?
            .to_string();
        self.verify_id_token(&raw, &pending.nonce, now).await
    }

    /// Verifies a raw ID token against the expected `nonce` at `now` and returns the
    /// identity it asserts.
    pub async fn verify_id_token(
        &self,
        raw: &str,
        nonce: &str,
        now: OffsetDateTime,
    ) -> Result<OidcIdentity, OidcError> {
        let discovered = self.discovered(false).await?;
        match token::verify(&self.conn, &discovered.jwks, raw, nonce, now) {
            Err(OidcError::UnknownKey) => {
                // Key rollover: the provider may sign with a key published after our fetch.
                let refreshed = self.discovered(true).await?;
                token::verify(&self.conn, &refreshed.jwks, raw, nonce, now)
            }
            other => other,
        }
    }

    fn core_client(
        &self,
        discovered: &Discovered,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.conn.redirect_uri.clone())
            .map_err(|e| OidcError::Config(format!("redirect_uri: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            discovered.metadata.clone(),
            ClientId::new(self.conn.client_id.clone()),
            Some(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(redirect))
    }

    /// The cached discovery document and keys, fetched when missing or stale; with
    /// `refresh_keys` (an unknown key id), the JWKS is fetched again unless an unknown key
    /// id already caused a fetch within [`JWKS_REFRESH_INTERVAL`].
    async fn discovered(&self, refresh_keys: bool) -> Result<Arc<Discovered>, OidcError> {
        let mut cache = self.cache.lock().await;
        if let Some(current) = cache.as_ref()
            && current.fetched.elapsed() < DISCOVERY_TTL
        {
            let refresh_allowed = current
                .forced_refresh
                .is_none_or(|at| at.elapsed() >= JWKS_REFRESH_INTERVAL);
            if !refresh_keys || !refresh_allowed {
                return Ok(Arc::clone(current));
            }
            let jwks = self.fetch_jwks(&current.metadata).await?;
            let next = Arc::new(Discovered {
                metadata: current.metadata.clone(),
                jwks,
                fetched: current.fetched,
                forced_refresh: Some(Instant::now()),
            });
            *cache = Some(Arc::clone(&next));
            return Ok(next);
        }
        let metadata: CoreProviderMetadata = self
            .fetch_json(&self.conn.discovery_url, "discovery")
            .await?;
        if metadata.issuer().as_str() != self.conn.issuer {
            // Not quoted: the document may come from anywhere the admin pointed at.
            return Err(OidcError::Discovery(
                "the discovery document names another issuer".to_owned(),
            ));
        }
        // Endpoints the document names are held to the same policy before any use.
        let policy = self.http.policy();
        if let Some(token) = metadata.token_endpoint() {
            policy
                .check_url(token.url().as_str())
                .map_err(OidcError::Fetch)?;
        }
        policy
            .check_url(metadata.jwks_uri().url().as_str())
            .map_err(OidcError::Fetch)?;
        let jwks = self.fetch_jwks(&metadata).await?;
        let next = Arc::new(Discovered {
            metadata,
            jwks,
            fetched: Instant::now(),
            forced_refresh: None,
        });
        *cache = Some(Arc::clone(&next));
        Ok(next)
    }

    async fn fetch_jwks(
        &self,
        metadata: &CoreProviderMetadata,
    ) -> Result<CoreJsonWebKeySet, OidcError> {
        self.fetch_json(metadata.jwks_uri().url().as_str(), "JWKS")
            .await
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, OidcError> {
        // Only the fixed reason leaves this function; the detail is for the operator.
        let failed = |detail: &dyn std::fmt::Display| {
            tracing::debug!(what, %detail, "OIDC provider fetch failed");
            OidcError::Fetch(OutboundError::Failed)
        };
        let response = self
            .http
            .request(reqwest::Method::GET, url)
            .map_err(OidcError::Fetch)?
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                let kind = OutboundError::of(&e);
                tracing::debug!(what, error = %e.without_url(), "OIDC provider fetch failed");
                OidcError::Fetch(kind)
            })?;
        if !response.status().is_success() {
            return Err(failed(&response.status()));
        }
        let body = read_limited(response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(OidcError::Fetch)?;
        serde_json::from_slice(&body).map_err(|e| failed(&e))
    }
}

/// One token request (the openidconnect crate's HTTP client), through `http`: the URL is
/// checked against the policy before anything is sent; the response is bounded.
async fn exchange(
    http: OutboundClient,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, OutboundError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, &parts.uri.to_string())?
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let kind = OutboundError::of(&e);
            tracing::debug!(error = %e.without_url(), "OIDC token request failed");
            kind
        })?;
    let mut builder = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = read_limited(response, MAX_DOCUMENT_BYTES).await?;
    builder.body(body).map_err(|_| OutboundError::Failed)
}

/// Verifies a raw ID token against a given key set (`jwks_json`, a JWKS document) for
/// `conn`, with the same checks as [`OidcClient::verify_id_token`] but no network: the
/// entry point for offline checks and the fuzz target.
pub fn verify_id_token_with_keys(
    conn: &OidcConnection,
    jwks_json: &[u8],
    raw: &str,
    nonce: &str,
    now: OffsetDateTime,
) -> Result<OidcIdentity, OidcError> {
    conn.validate()?;
    let jwks: CoreJsonWebKeySet = serde_json::from_slice(jwks_json)
        .map_err(|e| OidcError::Discovery(format!("JWKS: {e}")))?;
    token::verify(conn, &jwks, raw, nonce, now)
}

/// rustls with the aws-lc provider and the web PKI roots: the provider's back channel is
/// always verified TLS (plain HTTP only to loopback test providers, and only with the
/// operator's loopback flag).
fn tls_config() -> Result<rustls::ClientConfig, OidcError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OidcError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
