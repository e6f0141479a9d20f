//! The authenticated request: the credential comes from the session cookie or an API
//! token, the tenant comes from that credential only (never from a header, path or body
//! parameter), and the handler gets the verified principal and the tenant transaction.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use procuhelp_audit::{Action, AuditEvent, Outcome};
use procuhelp_auth::session::{self, COOKIE_NAME, Credential, Verified};
use procuhelp_auth::{AuthError, ClientInfo, Grant, Permission, Principal, api_token};
use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantTx;
use serde_json::json;

use crate::client_addr::{TrustedProxies, client_addr};
use crate::error::{Error, Result};
use crate::state::Sdk;

/// The anti-CSRF header a browser client echoes on every state-changing request.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where the request came from.
#[derive(Debug, Clone)]
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_info(parts)))
    }
}

fn client_info(parts: &Parts) -> ClientInfo {
    // The TCP peer, or behind a trusted load balancer the client it forwarded for
    // (`serve --trusted-proxy`; without it, forwarded headers are ignored).
    let source = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|peer| match parts.extensions.get::<TrustedProxies>() {
            Some(trusted) => client_addr(peer.0.ip(), &parts.headers, trusted),
            None => peer.0.ip().to_canonical(),
        });
    ClientInfo {
        source,
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
        request_id: parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned),
    }
}

/// The session cookie's value, if exactly one was sent. Two session cookies are refused
/// (a cookie-tossing attempt must not pick which one counts).
pub fn session_cookie(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some(v) = pair
                .trim()
                .strip_prefix(COOKIE_NAME)
                .and_then(|r| r.strip_prefix('='))
            {
                if found.is_some() {
                    return Err(AuthError::Unauthenticated);
                }
                found = Some(v);
            }
        }
    }
    Ok(found)
}

enum Presented<'a> {
    Cookie(&'a str),
    Bearer(&'a str),
}

fn presented(headers: &HeaderMap) -> Result<Presented<'_>, AuthError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let value = auth.to_str().map_err(|_| AuthError::Unauthenticated)?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or(AuthError::Unauthenticated)?;
        return Ok(Presented::Bearer(token.trim()));
    }
    session_cookie(headers)?
        .map(Presented::Cookie)
        .ok_or(AuthError::Unauthenticated)
}

/// The credential a request presents and whether it came in the session cookie, with
/// the shape checks shared by [`Authed`] and [`crate::read::ReadAuth`]: no credential,
/// a malformed one or two session cookies is 401; a cookie-authenticated change without
/// the anti-CSRF header is 403. The database is not asked.
pub(crate) fn presented_credential(parts: &Parts) -> Result<(Credential, bool)> {
    let (raw, is_cookie) = match presented(&parts.headers)? {
        Presented::Cookie(v) => (v, true),
        Presented::Bearer(v) => (v, false),
    };
    let credential = Credential::parse(raw).map_err(|_| AuthError::Unauthenticated)?;
    // Cookie-authenticated changes need the anti-CSRF header (SameSite=Strict is the
    // first line; this is the second). Bearer tokens are never sent by a browser on
    // its own, so they need none.
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if is_cookie && !safe {
        let ok = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| credential.csrf_matches(v));
        if !ok {
            return Err(Error::Csrf);
        }
    }
    Ok((credential, is_cookie))
}

/// An authenticated request: the verified principal, its credential, where it came from,
/// and the request's tenant transaction (in the credential's organisation, begun on first
/// use by [`Authed::tx`]).
///
/// As an extractor it refuses, before any handler runs: no credential, a malformed one,
/// two session cookies (401 `unauthenticated`) and a cookie-authenticated change without
/// the anti-CSRF header [`CSRF_HEADER`] (403 `csrf`) before the database is asked; then
/// it verifies the credential in **one autocommit statement** (the organisation entered
/// and the session or token read in it), so an unknown, expired, revoked or
/// other-organisation credential is the same 401 with no transaction opened. A session
/// whose lookup must write first (an elevation of its user ran out, to be recorded; its
/// last use to be touched, once a minute) is verified in a tenant transaction instead,
/// which the handler then gets.
///
/// ```
/// use axum::Json;
/// use procuhelp_auth::Permission;
/// use procuhelp_axum::{Authed, Result};
///
/// async fn list_things(mut authed: Authed) -> Result<Json<Vec<String>>> {
///     authed.require(Permission::ReadSuppliers).await?;
///     let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM app.suppliers")
///         .fetch_all(authed.tx().await?.conn())
///         .await?;
///     authed.commit().await?;
///     Ok(Json(rows.into_iter().map(|r| r.0).collect()))
/// }
/// ```
///
/// A transaction left open (a handler returning early with `?`) is rolled back in the
/// background when the `Authed` is dropped: nothing of a failed request is kept.
#[derive(Debug)]
pub struct Authed {
    /// Who is asking.
    pub principal: Principal,
    /// The credential presented (to compute the CSRF token, or to rotate).
    pub credential: Credential,
    /// Where from.
    pub client: ClientInfo,
    sdk: Sdk,
    tx: Tx,
    /// The permissions whose use through an elevation this request has recorded: a page
    /// checks before reading its form and the action it calls checks again, and one use
    /// is one event.
    elevation_uses: Vec<Permission>,
}

/// Where the request's transaction is.
#[derive(Debug)]
enum Tx {
    /// Not begun yet: [`Authed::tx`] begins it.
    Pending,
    /// Open.
    Open(TenantTx),
    /// Committed or rolled back: the request's changes are decided.
    Ended,
}

impl<S> FromRequestParts<S> for Authed
where
    Sdk: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let client = client_info(parts);
        let (credential, is_cookie) = presented_credential(parts)?;
        let sdk = Sdk::from_ref(state);
        // Verified in one autocommit statement first: a refused credential opens no
        // transaction, and a verified one begins the request's on first use.
        let verified = if is_cookie {
            match session::verify_once(sdk.tenants(), &credential, sdk.now()).await? {
                Verified::Session(principal) => Some(Principal::User(principal)),
                // The lookup writes first (an elevation ran out: its expiry is recorded
                // before anything else; or the use is touched): the transactional path.
                _ => None,
            }
        } else {
            let token = api_token::authenticate_once(sdk.tenants(), &credential, sdk.now()).await?;
            Some(Principal::Service(token))
        };
        if let Some(principal) = verified {
            crate::access_log::record_org(&parts.extensions, credential.org);
            return Ok(Authed {
                principal,
                credential,
                client,
                sdk,
                tx: Tx::Pending,
                elevation_uses: Vec::new(),
            });
        }
        let mut tx = match sdk.tenants().begin(credential.org).await {
            Ok(tx) => tx,
            Err(procuhelp_tenancy::Error::UnknownOrg(_)) => {
                return Err(AuthError::Unauthenticated.into());
            }
            Err(e) => return Err(e.into()),
        };
        let principal = match sdk.auth().session(&mut tx, &credential, &client).await {
            Ok(principal) => {
                crate::access_log::record_org(&parts.extensions, credential.org);
                Principal::User(principal)
            }
            Err(e) => {
                // Ended explicitly: a transaction dropped unfinished closes its connection,
                // and a refused credential must not cost the pool a PostgreSQL session.
                let _ = tx.rollback().await;
                return Err(e.into());
            }
        };
        Ok(Authed {
            principal,
            credential,
            client,
            sdk,
            tx: Tx::Open(tx),
            elevation_uses: Vec::new(),
        })
    }
}

impl Authed {
    /// The organisation: from the authenticated credential, and nowhere else.
    pub fn org(&self) -> OrgId {
        self.credential.org
    }

    /// The request's tenant transaction, in the credential's organisation, begun on first
    /// use (a handler that never asks for it costs no transaction). After
    /// [`Authed::commit`] or [`Authed::abandon`] there is none (an internal error: the
    /// request's changes were already decided).
    pub async fn tx(&mut self) -> Result<&mut TenantTx> {
        if matches!(self.tx, Tx::Pending) {
            self.tx = Tx::Open(self.sdk.tenants().begin(self.org()).await?);
        }
        match &mut self.tx {
            Tx::Open(tx) => Ok(tx),
            _ => Err(Error::Auth(AuthError::Internal)),
        }
    }

    /// Checks `permission`; on refusal the transaction is rolled back (nothing of this
    /// request is kept). A permission that only an elevation grants records its use.
    pub async fn require(&mut self, permission: Permission) -> Result<Grant> {
        match self.principal.require(permission) {
            Ok(grant) => {
                if let Some(elevation) = grant.via_elevation
                    && !self.elevation_uses.contains(&permission)
                {
                    let event = self
                        .event(Action::ElevationUsed, Outcome::Success)
                        .target(format!("elevation:{elevation}"))
                        .context(json!({ "permission": permission.as_str() }));
                    self.record(event).await?;
                    self.elevation_uses.push(permission);
                }
                Ok(grant)
            }
            Err(e) => {
                self.abandon().await;
                Err(e.into())
            }
        }
    }

    /// Passes any fully signed-in principal.
    pub async fn require_signed_in(&mut self) -> Result<()> {
        if let Err(e) = self.principal.require_signed_in() {
            self.abandon().await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Rolls back and releases the connection.
    pub async fn abandon(&mut self) {
        if let Tx::Open(tx) = std::mem::replace(&mut self.tx, Tx::Ended) {
            let _ = tx.rollback().await;
        }
    }

    /// An audit event with this request's organisation, actor, time and client.
    pub fn event(&self, action: Action, outcome: Outcome) -> AuditEvent {
        let mut event = AuditEvent::new(Some(self.org()), self.principal.actor(), action, outcome)
            .at(self.sdk.now())
            .source(self.client.source, self.client.user_agent.as_deref());
        if let Some(id) = &self.client.request_id {
            event = event.request_id(id.clone());
        }
        event
    }

    /// Records `event` durably before the action is committed (fail closed: if the trail
    /// refuses, the request's transaction is rolled back).
    pub async fn record(&mut self, event: AuditEvent) -> Result<()> {
        if let Err(e) = self.sdk.record(event).await {
            self.abandon().await;
            return Err(e);
        }
        Ok(())
    }

    /// Commits the request's changes.
    pub async fn commit(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.tx, Tx::Ended) {
            Tx::Open(tx) => Ok(tx.commit().await?),
            // Nothing was read or written in a transaction: nothing to commit.
            Tx::Pending => Ok(()),
            Tx::Ended => Err(Error::Auth(AuthError::Internal)),
        }
    }

    /// The SDK's state (tenants, authenticator, audit sink, clock, cipher, vault).
    pub fn sdk(&self) -> &Sdk {
        &self.sdk
    }
}

/// How long a request's left-over transaction may take to roll back before its
/// connection is closed instead.
const ROLLBACK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for Authed {
    /// A handler that returned early (`?` on a not-found, a rejected body) leaves its
    /// transaction open. Dropped as is, it would close its connection (safe, but a new
    /// PostgreSQL session per failed request); it is rolled back in the background
    /// instead. If that does not finish in time, or no runtime is left to run it, the
    /// transaction is dropped after all and its connection closed: never reused mid-way.
    fn drop(&mut self) {
        if let Tx::Open(tx) = std::mem::replace(&mut self.tx, Tx::Ended) {
            roll_back_in_background(tx);
        }
    }
}

/// Rolls `tx` back on a spawned task, so its pooled connection is kept; after
/// two seconds, or with no runtime left, the transaction is dropped and its
/// connection closed instead (never reused mid-transaction). For request contexts that
/// hold a transaction a handler may leave behind (`Authed`, SCIM's context).
pub fn roll_back_in_background(tx: TenantTx) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(ROLLBACK_GRACE, tx.rollback()).await;
        });
    }
}
