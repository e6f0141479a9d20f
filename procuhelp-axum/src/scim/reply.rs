//! What a SCIM route answers: `application/scim+json` bodies, and failures as RFC 7644
//! error bodies (with `WWW-Authenticate` on a 401).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use procuhelp_auth::scim::ScimError;
use procuhelp_auth::scim::patch::PatchError;
use serde_json::Value;

use super::SCIM_CONTENT_TYPE;

/// A SCIM reply: status, `application/scim+json`, body, and `Location` for a create.
#[derive(Debug)]
pub(super) struct ScimReply {
    status: StatusCode,
    body: Value,
    location: Option<String>,
}

impl ScimReply {
    /// 200 with `body`.
    pub(super) fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            location: None,
        }
    }

    /// 201 with `body`, at `location`.
    pub(super) fn created(body: Value, location: String) -> Self {
        Self {
            status: StatusCode::CREATED,
            body,
            location: Some(location),
        }
    }
}

impl IntoResponse for ScimReply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if let Some(l) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, l);
        }
        response
    }
}

/// A SCIM failure as a response: the [`ScimError`]'s status, `scimType` and fixed detail.
#[derive(Debug)]
pub(super) struct ScimFailure(pub(super) ScimError);

impl From<ScimError> for ScimFailure {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl From<PatchError> for ScimFailure {
    fn from(e: PatchError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = ScimReply {
            status,
            body: self.0.to_json(),
            location: None,
        }
        .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        response
    }
}

/// Result of a SCIM handler.
pub(super) type ScimResult<T> = Result<T, ScimFailure>;
