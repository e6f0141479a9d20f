//! Browser protections as a tower [`Layer`], so every ProcuHelp HTTP surface (and every
//! embedder's) sends the same strict headers on every response: 200s, errors, redirects.
//!
//! Put the layer **outermost**, outside body limits, timeouts and panic catchers, so the
//! responses those produce (413, 408, 500) carry the headers too.
//!
//! ```
//! use axum::{Router, routing::get, Extension};
//! use procuhelp_core::http::{CspNonce, SecurityHeadersLayer};
//!
//! async fn page(Extension(nonce): Extension<CspNonce>) -> String {
//!     format!("<script nonce=\"{}\">/* … */</script>", nonce.as_str())
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(page))
//!     .layer(SecurityHeadersLayer::strict());
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};

/// The per-request nonce that pages put on their `<script>`/`<style>` tags; the layer
/// inserts it into the request's extensions and names it in the response's CSP.
#[derive(Clone, PartialEq, Eq)]
pub struct CspNonce(Arc<str>);

impl CspNonce {
    fn generate() -> Self {
        let mut bytes = [0u8; 16];
        // A nonce that is not unpredictable is worse than none: if the OS RNG fails we
        // fall back to a fixed string that the CSP will also name, but pages then carry
        // no trust beyond 'self'. getrandom failing on Linux means a broken system.
        if getrandom::fill(&mut bytes).is_err() {
            return Self(Arc::from("rng-unavailable"));
        }
        Self(Arc::from(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ))
    }

    /// The nonce as it goes into a `nonce="…"` attribute.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CspNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CspNonce").field(&&*self.0).finish()
    }
}

/// The header policy the layer applies.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    hsts_max_age_secs: u64,
    hsts_preload: bool,
    static_headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    /// The strict default: CSP `default-src 'none'` with nonce-only scripts and styles,
    /// HSTS for two years with subdomains, no framing, no referrer, no sniffing, every
    /// powerful browser feature disabled, and cross-origin isolation of the browsing context.
    pub fn strict() -> Self {
        let statics = [
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                HeaderName::from_static("permissions-policy"),
                "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()",
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                "same-origin",
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                "same-origin",
            ),
            (
                HeaderName::from_static("x-permitted-cross-domain-policies"),
                "none",
            ),
        ];
        Self {
            hsts_max_age_secs: 63_072_000,
            hsts_preload: false,
            static_headers: statics
                .into_iter()
                .map(|(name, value)| (name, HeaderValue::from_static(value)))
                .collect(),
        }
    }

    /// Adds `preload` to HSTS. Only for domains that are (or will be) on the browser
    /// preload lists: it is hard to undo.
    pub fn with_hsts_preload(mut self) -> Self {
        self.hsts_preload = true;
        self
    }

    fn hsts(&self) -> HeaderValue {
        let value = if self.hsts_preload {
            format!(
                "max-age={}; includeSubDomains; preload",
                self.hsts_max_age_secs
            )
        } else {
            format!("max-age={}; includeSubDomains", self.hsts_max_age_secs)
        };
        // Built only from digits and fixed ASCII.
        HeaderValue::from_str(&value)
            .unwrap_or_else(|_| HeaderValue::from_static("max-age=63072000"))
    }

    fn csp(nonce: &CspNonce) -> HeaderValue {
        let value = format!(
            "default-src 'none'; script-src 'self' 'nonce-{n}'; style-src 'self' 'nonce-{n}'; \
             img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; \
             upgrade-insecure-requests",
            n = nonce.as_str()
        );
        // The nonce is base64 (or a fixed ASCII fallback), so the value is always valid.
        HeaderValue::from_str(&value).unwrap_or_else(|_| {
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")
        })
    }
}

/// A tower layer that applies [`SecurityHeaders`] to every response.
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer {
    policy: Arc<SecurityHeaders>,
    hsts: HeaderValue,
}

impl SecurityHeadersLayer {
    /// The layer with [`SecurityHeaders::strict`].
    pub fn strict() -> Self {
        Self::new(SecurityHeaders::strict())
    }

    /// The layer with a given policy.
    pub fn new(policy: SecurityHeaders) -> Self {
        let hsts = policy.hsts();
        Self {
            policy: Arc::new(policy),
            hsts,
        }
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeadersService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service produced by [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeadersService<S> {
    inner: S,
    layer: SecurityHeadersLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeadersService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = SecurityHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let nonce = CspNonce::generate();
        req.extensions_mut().insert(nonce.clone());
        SecurityHeadersFuture {
            inner: self.inner.call(req),
            layer: Some(self.layer.clone()),
            nonce,
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`SecurityHeadersService`].
    #[derive(Debug)]
    pub struct SecurityHeadersFuture<F> {
        #[pin]
        inner: F,
        layer: Option<SecurityHeadersLayer>,
        nonce: CspNonce,
    }
}

impl<F, ResBody, E> Future for SecurityHeadersFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(response)) => response,
        };
        if let Some(layer) = this.layer.take() {
            let headers = response.headers_mut();
            // Insert, not append: a handler can never weaken (or duplicate) the policy.
            for (name, value) in &layer.policy.static_headers {
                headers.insert(name.clone(), value.clone());
            }
            headers.insert(header::STRICT_TRANSPORT_SECURITY, layer.hsts.clone());
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                SecurityHeaders::csp(this.nonce),
            );
            // Responses may carry tenant data; no shared or browser cache keeps them
            // unless a handler opted in explicitly.
            headers
                .entry(header::CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn headers_of(app: Router, req: Request<Body>) -> http::HeaderMap {
        app.oneshot(req).await.unwrap().headers().clone()
    }

    #[tokio::test]
    async fn nonce_is_fresh_per_request_and_named_in_csp() {
        let app = Router::new()
            .route(
                "/",
                get(|axum::Extension(n): axum::Extension<CspNonce>| async move {
                    n.as_str().to_owned()
                }),
            )
            .layer(SecurityHeadersLayer::strict());
        let mut seen = Vec::new();
        for _ in 0..2 {
            let res = app
                .clone()
                .oneshot(Request::new(Body::empty()))
                .await
                .unwrap();
            let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_owned();
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let nonce = String::from_utf8(body.to_vec()).unwrap();
            assert!(csp.contains(&format!("'nonce-{nonce}'")), "{csp}");
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
            seen.push(nonce);
        }
        assert_ne!(seen[0], seen[1]);
    }

    #[tokio::test]
    async fn handler_cannot_weaken_policy() {
        let app = Router::new()
            .route(
                "/",
                get(|| async { ([(header::X_FRAME_OPTIONS, "ALLOWALL")], "x") }),
            )
            .layer(SecurityHeadersLayer::strict());
        let h = headers_of(app, Request::new(Body::empty())).await;
        assert_eq!(h.get_all(header::X_FRAME_OPTIONS).iter().count(), 1);
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    }
}
