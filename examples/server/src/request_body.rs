//! Request bodies arrive whole, within the size limit, before any route runs.
//!
//! Why here and not in the handlers' extractors: an extractor that opens a tenant
//! transaction (the authenticated request, the SCIM context) runs *before* the body
//! extractor, so a client trickling its body would hold a database connection for the
//! whole request timeout, and a few such clients would hold them all. Reading the body
//! first means a request holds a connection only once its body is here: a slow upload
//! costs a task and at most the body limit in memory, never a connection.
//!
//! Why answer oversized bodies here rather than with `tower_http`'s limit layer: over
//! HTTP/2, a response sent after the request's body was dropped unread is lost, because
//! dropping the body resets the stream (`RST_STREAM(CANCEL)`) before the response goes
//! out. A 413 from here keeps the unread body until the response has been sent; the
//! stream then ends with `RST_STREAM(NO_ERROR)`, which is how HTTP/2 (RFC 9113 §8.1) says
//! "answered early, stop sending" — the client sees the 413.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;

use crate::app::error_response;

/// Reads the request's body (at most `max_bytes`) before passing the request on; answers
/// 413 for a larger body (declared or sent) and 400 for one that broke off.
pub async fn read_whole(max_bytes: usize, request: Request, next: Next) -> Response {
    let (parts, mut body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return too_large(body);
    }
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The client broke off (or sent a malformed chunk): nobody is left to read
            // the answer, but it is a fixed one all the same.
            return error_response(StatusCode::BAD_REQUEST, "incomplete request body");
        };
        // Trailers carry nothing any route reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len().saturating_add(data.len()) > max_bytes {
            return too_large(body);
        }
        bytes.extend_from_slice(&data);
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(bytes))))
        .await
}

/// The 413, carrying the unread request body along until the response has been sent (see
/// the module documentation: HTTP/2 would otherwise reset the stream instead).
fn too_large(unread: Body) -> Response {
    let response = error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    // (HTTP/1: hyper closes the connection after a response to an unread body itself.)
    let (parts, body) = response.into_parts();
    let body = body.map_frame(move |frame| {
        let _kept_until_sent = &unread;
        frame
    });
    Response::from_parts(parts, Body::new(body))
}
