//! Request bodies arrive whole, within the size limit, before any route runs.
//!
//! Why here and not in the handlers' extractors: an extractor that opens a tenant
//! transaction (the authenticated request, the SCIM context) runs *before* the body
//! extractor, so a client trickling its body would hold a database connection for the
//! whole request timeout, and a few such clients would hold them all. Reading the body
//! first means a request holds a connection only once its body is here: a slow upload
//! costs a task and at most the body limit in memory, never a connection.
//!
//! Why answer oversized bodies here rather than with `tower_http`'s limit layer: that
//! answers without reading on, and over HTTP/2 the server then resets the stream while
//! the client is still sending. Many clients (curl among them) report that reset as a
//! failed request and never show the 413. So an oversized body is read on and thrown
//! away, up to [`DISCARD_LIMIT`] more bytes (within the request timeout), and answered
//! once it has ended: the stream closes cleanly and the client sees the 413. A body
//! larger still (or declared so) is answered at once, and its unread rest is kept until
//! the response has been sent, so the stream ends with `RST_STREAM(NO_ERROR)` ("answered
//! early, stop sending", RFC 9113 §8.1) and never before the answer has gone out.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;

use crate::error::error_response;

/// How many bytes of an oversized body are read and discarded so that its sender gets a
/// clean 413 rather than a reset stream. Reading costs no memory (nothing is kept) and is
/// bounded in time by the request timeout.
pub const DISCARD_LIMIT: u64 = 8 * 1024 * 1024;

/// Reads the request's body (at most `max_bytes`) before passing the request on; answers
/// 413 for a larger body (declared or sent) and 400 for one that broke off.
pub async fn read_whole(max_bytes: usize, request: Request, next: Next) -> Response {
    let (parts, mut body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = max_bytes as u64;
    if declared.is_some_and(|n| n > max.saturating_add(DISCARD_LIMIT)) {
        return too_large(body);
    }
    let mut bytes = Vec::new();
    // Bytes received in all, kept or not.
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The client broke off (or sent a malformed chunk): nobody is left to read
            // the answer, but it is a fixed one all the same.
            return error_response(
                StatusCode::BAD_REQUEST,
                "incomplete_body",
                "incomplete request body",
            );
        };
        // Trailers carry nothing any route reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received = received.saturating_add(data.len() as u64);
        if received > max.saturating_add(DISCARD_LIMIT) {
            return too_large(body);
        }
        if received > max {
            // Too large already: read on (keeping nothing) to answer at its end.
            bytes = Vec::new();
            continue;
        }
        bytes.extend_from_slice(&data);
    }
    if received > max || declared.is_some_and(|n| n > max) {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body too large",
        );
    }
    let mut parts = parts;
    crate::form::lift_csrf_field(&mut parts, &bytes);
    next.run(Request::from_parts(parts, Body::from(Bytes::from(bytes))))
        .await
}

/// The 413 for a body too large even to discard, carrying its unread rest along until the
/// response has been sent (see the module documentation).
fn too_large(unread: Body) -> Response {
    let response = error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "request body too large",
    );
    // (HTTP/1: hyper closes the connection after a response to an unread body itself.)
    let (parts, body) = response.into_parts();
    let body = body.map_frame(move |frame| {
        let _kept_until_sent = &unread;
        frame
    });
    Response::from_parts(parts, Body::new(body))
}
