//! What a SCIM request asks for besides its resource: the bounded body, and the list
//! parameters (`filter`, `startIndex`, `count`, `attributes`, `excludedAttributes`) from
//! the query string or a POST `.search` body.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::Uri;
use procuhelp_auth::scim::ScimError;
use procuhelp_auth::scim::model::{Page, Projection, ResourceKind, SearchRequest};

use super::MAX_SCIM_BODY_BYTES;
use super::reply::ScimResult;

/// Reads the body up to [`MAX_SCIM_BODY_BYTES`] (413 beyond).
pub(super) async fn body(request: Request) -> ScimResult<Bytes> {
    axum::body::to_bytes(request.into_body(), MAX_SCIM_BODY_BYTES)
        .await
        .map_err(|_| ScimError::too_large().into())
}

/// The list parameters of one request.
pub(super) struct ListQuery {
    pub(super) filter: Option<String>,
    pub(super) page: Page,
    pub(super) projection: Projection,
}

impl ListQuery {
    /// From a POST `.search` body.
    pub(super) fn from_search(s: &SearchRequest, kind: ResourceKind) -> ScimResult<Self> {
        Ok(Self {
            filter: s.filter.clone(),
            page: Page::parse(s.start_index.as_deref(), s.count.as_deref())?,
            projection: Projection::parse(
                kind,
                s.attributes.as_deref(),
                s.excluded_attributes.as_deref(),
            )?,
        })
    }

    /// From the query string (parameter names case-insensitive; sorting refused).
    pub(super) fn from_uri(uri: &Uri, kind: ResourceKind) -> ScimResult<Self> {
        let pairs: Vec<(String, String)> = match uri.query() {
            None => Vec::new(),
            Some(_) => {
                axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
                    .map_err(|_| ScimError::invalid_syntax("malformed query string"))?
                    .0
            }
        };
        let param = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if param("sortBy").is_some() {
            return Err(ScimError::invalid_value("sorting is not supported").into());
        }
        Ok(Self {
            filter: param("filter").map(str::to_owned),
            page: Page::parse(param("startIndex"), param("count"))?,
            projection: Projection::parse(kind, param("attributes"), param("excludedAttributes"))?,
        })
    }
}

/// The `attributes`/`excludedAttributes` of a request on one resource.
pub(super) fn projection(uri: &Uri, kind: ResourceKind) -> ScimResult<Projection> {
    Ok(ListQuery::from_uri(uri, kind)?.projection)
}
