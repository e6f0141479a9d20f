//! Read-only routes in one database round trip.
//!
//! [`Authed`] opens a tenant transaction for every request: BEGIN with the tenant, the
//! session lookup, the handler's statements, COMMIT — four round trips for one read.
//! [`ReadAuth`] is the extractor for handlers that only read: it checks the credential's
//! *shape* (fast 401, no connection taken) and [`ReadAuth::fetch_all`] then validates the
//! session, enters its organisation, checks the permission and reads, all in **one**
//! statement (`procuhelp_auth::session_read`). The answers are the same as with
//! [`Authed`]: 401 for a missing, malformed, unknown, other-organisation, revoked or
//! expired credential, 403 for a missing permission or an unfinished sign-in, and no row
//! is ever returned to a caller who was refused.
//!
//! A session verified in full is remembered for a few seconds
//! ([`Sdk::verified_sessions`]): its next reads are one plain statement that enters the
//! organisation and checks, in the read's own snapshot, that nothing the answer depended
//! on (the session, its user's role or status, elevations) changed since.
//!
//! When something must be written to the audit trail before the read (an elevation that
//! ran out, or a permission only an elevation grants), and for API tokens, the read takes
//! the transactional path through [`Authed`] instead, with the same query.
//!
//! ```
//! use axum::Json;
//! use procuhelp_auth::Permission;
//! use procuhelp_auth::session_read::AuthenticatedRead;
//! use procuhelp_axum::Result;
//! use procuhelp_axum::read::ReadAuth;
//!
//! const CLAIMS: AuthenticatedRead = AuthenticatedRead::new(
//!     "SELECT c.title FROM app.claims c WHERE c.org_id = tenant.org ORDER BY c.title LIMIT $6",
//! );
//!
//! async fn list_claims(auth: ReadAuth) -> Result<Json<Vec<String>>> {
//!     let read = auth
//!         .fetch_all(Permission::ReadRequests, &CLAIMS.query_as::<(String,)>().bind_int(50))
//!         .await?;
//!     Ok(Json(read.rows.into_iter().map(|(t,)| t).collect()))
//! }
//! ```

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use procuhelp_auth::session::Credential;
use procuhelp_auth::session_read::{self, AuthenticatedQuery, ReadOnce};
use procuhelp_auth::{Permission, Principal};
use procuhelp_core::OrgId;
use sqlx::postgres::PgRow;

use crate::authed::presented_credential;
use crate::{Authed, Error, Result, Sdk};

/// The credential of a read-only request, verified by [`ReadAuth::fetch_all`] in the
/// read's own statement.
///
/// As an extractor it refuses, without touching the database: no credential, a malformed
/// one, two session cookies (401), and a cookie-authenticated change without the
/// anti-CSRF header (403) — the same rules as [`Authed`].
#[derive(Debug)]
pub struct ReadAuth {
    credential: Credential,
    is_cookie: bool,
    sdk: Sdk,
    /// The request's head, kept for the transactional path ([`Authed`] is extracted from
    /// it when the one-statement read cannot serve the request).
    parts: Parts,
}

/// The rows of a read and who read them.
#[derive(Debug)]
pub struct Read<O> {
    /// Who read (a user with a session, or a service account on the transactional path).
    pub principal: Principal,
    /// The rows.
    pub rows: Vec<O>,
}

impl<S> FromRequestParts<S> for ReadAuth
where
    Sdk: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let (credential, is_cookie) = presented_credential(parts)?;
        Ok(ReadAuth {
            credential,
            is_cookie,
            sdk: Sdk::from_ref(state),
            parts: parts.clone(),
        })
    }
}

impl ReadAuth {
    /// The organisation the credential names (not yet verified: use it only after
    /// [`fetch_all`](Self::fetch_all) succeeded).
    pub fn org(&self) -> OrgId {
        self.credential.org
    }

    /// Verifies the credential, checks `permission` and runs `query` — in one statement
    /// for a session; through [`Authed`] (a tenant transaction that records what must be
    /// recorded first) for an API token or when an elevation is involved.
    pub async fn fetch_all<O>(
        mut self,
        permission: Permission,
        query: &AuthenticatedQuery<O>,
    ) -> Result<Read<O>>
    where
        O: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        if self.is_cookie {
            let once = session_read::fetch_all_cached(
                self.sdk.tenants(),
                self.sdk.verified_sessions(),
                &self.credential,
                permission,
                self.sdk.now(),
                query,
            )
            .await?;
            if let ReadOnce::Read(read) = once {
                crate::access_log::record_org(&self.parts.extensions, self.credential.org);
                return Ok(Read {
                    principal: Principal::User(read.principal),
                    rows: read.rows,
                });
            }
        }
        let mut authed = Authed::from_request_parts(&mut self.parts, &self.sdk).await?;
        authed.require(permission).await?;
        let rows = session_read::fetch_all_in_tx(authed.tx().await?, query).await?;
        authed.commit().await?;
        Ok(Read {
            principal: authed.principal.clone(),
            rows,
        })
    }
}
