//! The SCIM request context: the organisation from the path, a live SCIM token of that
//! organisation (verified first in one autocommit statement that enters the organisation,
//! so another organisation's token finds nothing and a refused token opens no
//! transaction), and the organisation's tenant transaction, begun only after.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use procuhelp_auth::ClientInfo;
use procuhelp_auth::scim::{ScimError, token};
use procuhelp_core::OrgId;
use procuhelp_tenancy::TenantTx;
use time::OffsetDateTime;
use uuid::Uuid;

use super::PublicOrigin;
use super::reply::{ScimFailure, ScimResult};
use crate::{Client, Sdk, roll_back_in_background};

/// An authenticated SCIM request. A handler that returns early leaves the transaction
/// open: it is rolled back in the background when the context is dropped (the pooled
/// connection is kept), so nothing of a failed request is kept.
#[derive(Debug)]
pub(super) struct ScimCtx {
    pub(super) org: OrgId,
    /// The SCIM token's id: the actor (a service account) of every audit record.
    pub(super) token: Uuid,
    /// `https://host/scim/v2/{org}`, for `meta.location` and `Location`.
    pub(super) base: String,
    pub(super) client: ClientInfo,
    pub(super) sdk: Sdk,
    pub(super) tx: Option<TenantTx>,
}

fn org_from_path(path: &str) -> Option<OrgId> {
    path.strip_prefix("/scim/v2/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The origin for `meta.location`: [`PublicOrigin`] if the app set one, else `https://`
/// and the Host header if it looks like a host name (never echoing anything else).
fn origin(parts: &Parts) -> String {
    if let Some(o) = parts.extensions.get::<PublicOrigin>() {
        return o.0.trim_end_matches('/').to_owned();
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("https://{host}")
}

impl<S> FromRequestParts<S> for ScimCtx
where
    Sdk: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ScimFailure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ScimResult<Self> {
        let Client(client) = match Client::from_request_parts(parts, state).await {
            Ok(c) => c,
            Err(never) => match never {},
        };
        // One answer for a missing org, an unknown org and a bad token.
        let unauthorized = || ScimFailure(ScimError::unauthorized());
        let org = org_from_path(parts.uri.path()).ok_or_else(unauthorized)?;
        let presented = bearer(parts).ok_or_else(unauthorized)?;
        let sdk = Sdk::from_ref(state);
        // Verified first, in one autocommit statement: a refused token (or an unknown
        // org) opens no transaction and holds no pooled connection.
        let token = match token::authenticate_once(sdk.tenants(), org, presented, sdk.now()).await {
            Ok(id) => id,
            Err(procuhelp_auth::AuthError::Unauthenticated) => {
                tracing::info!(%org, "scim request with an invalid token");
                return Err(unauthorized());
            }
            Err(e) => return Err(ScimError::from(e).into()),
        };
        crate::access_log::record_org(&parts.extensions, org);
        // Nothing can fail after this but `begin` itself: the open transaction goes
        // straight into the context, whose Drop rolls it back.
        let tx = match sdk.tenants().begin(org).await {
            Ok(tx) => tx,
            Err(procuhelp_tenancy::Error::UnknownOrg(_)) => return Err(unauthorized()),
            Err(e) => return Err(ScimError::from(e).into()),
        };
        Ok(ScimCtx {
            org,
            token,
            base: format!("{}/scim/v2/{org}", origin(parts)),
            client,
            sdk,
            tx: Some(tx),
        })
    }
}

impl Drop for ScimCtx {
    /// A handler that returned early leaves its transaction open: rolled back in the
    /// background rather than closing a pooled connection per failed SCIM request.
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            roll_back_in_background(tx);
        }
    }
}

impl ScimCtx {
    /// The open transaction (gone after a commit or a refusal: 503, a handler bug).
    pub(super) fn tx(&mut self) -> ScimResult<&mut TenantTx> {
        self.tx
            .as_mut()
            .ok_or(ScimFailure(ScimError::unavailable()))
    }

    /// The application's clock.
    pub(super) fn now(&self) -> OffsetDateTime {
        self.sdk.now()
    }

    /// Commits the request's changes (with their audit records, written before).
    pub(super) async fn commit(&mut self) -> ScimResult<()> {
        match self.tx.take() {
            Some(tx) => tx.commit().await.map_err(|e| ScimError::from(e).into()),
            None => Err(ScimError::unavailable().into()),
        }
    }

    /// Rolls back now (a refusal): nothing of the request is kept.
    pub(super) async fn roll_back(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.rollback().await;
        }
    }
}
