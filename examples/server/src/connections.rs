//! Limits on connections, before any request is routed: how long a client may take to
//! finish its TLS handshake and its request headers, how long a connection may sit idle,
//! and how many connections are served at once.
//!
//! Without them, a client that opens connections and then sends nothing (or one header
//! byte a minute) holds a task and a file descriptor each, for ever; a few thousand such
//! clients exhaust the process. The request timeout cannot help: it starts only once a
//! request's headers have arrived.
//!
//! Beyond the connection cap, a new connection waits up to [`ConnectionLimits::queue_wait`]
//! for a slot and is then closed without a response: a burst is smoothed over, a flood is
//! refused cheaply, and the connections already served are not slowed down.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::Server;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The connection-level limits (`serve --header-read-timeout-secs` and friends).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time allowed for a connection's TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed for a request's headers, from the moment the server is ready for
    /// them: the first request of a connection (HTTP/1 and HTTP/2), and every next
    /// request on an HTTP/1 keep-alive connection (so it also ends idle HTTP/1
    /// connections).
    pub header_read_timeout: Duration,
    /// A connection on which nothing was read or written for this long is closed (idle
    /// HTTP/2 connections, clients that stop reading their response). Must exceed the
    /// request timeout, or slow handlers would lose their connection.
    pub idle_timeout: Duration,
    /// At most this many connections are open at once (TLS handshakes included).
    pub max_connections: usize,
    /// How long a connection beyond the cap waits for a slot before it is closed.
    pub queue_wait: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            queue_wait: Duration::from_secs(1),
        }
    }
}

/// A plain-HTTP server on `addr` with `limits` applied.
pub fn bind(addr: SocketAddr, limits: ConnectionLimits) -> Server<SocketAddr, Capped> {
    configure(
        axum_server::bind(addr).acceptor(Capped::new(&limits)),
        &limits,
    )
}

/// An HTTPS server on `addr` with `limits` applied. The cap counts connections still in
/// their TLS handshake.
pub fn bind_rustls(
    addr: SocketAddr,
    tls: RustlsConfig,
    limits: ConnectionLimits,
) -> Server<SocketAddr, RustlsAcceptor<Capped>> {
    let acceptor = RustlsAcceptor::new(tls)
        .handshake_timeout(limits.tls_handshake_timeout)
        .acceptor(Capped::new(&limits));
    configure(axum_server::bind(addr).acceptor(acceptor), &limits)
}

fn configure<Acc>(
    mut server: Server<SocketAddr, Acc>,
    limits: &ConnectionLimits,
) -> Server<SocketAddr, Acc> {
    // axum-server installs hyper's timer, which header_read_timeout needs.
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_read_timeout);
    // Also bounds protocol detection and an HTTP/2 connection's first request, which the
    // HTTP/1 header timeout does not cover.
    server
        .first_request_timeout(limits.header_read_timeout)
        .accept_error_handler(|_, e| tracing::debug!(error = %e, "connection not served"))
}

/// The acceptor that caps concurrent connections and closes idle ones.
#[derive(Debug, Clone)]
pub struct Capped {
    slots: Arc<Semaphore>,
    queue_wait: Duration,
    idle_timeout: Duration,
}

impl Capped {
    fn new(limits: &ConnectionLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            queue_wait: limits.queue_wait,
            idle_timeout: limits.idle_timeout,
        }
    }
}

impl<I, S> Accept<I, S> for Capped
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = Watched<I>;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Watched<I>, S)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let (slots, wait, idle) = (self.slots.clone(), self.queue_wait, self.idle_timeout);
        Box::pin(async move {
            match tokio::time::timeout(wait, slots.acquire_owned()).await {
                Ok(Ok(slot)) => Ok((Watched::new(stream, slot, idle), service)),
                // Dropping `stream` closes the connection.
                _ => Err(io::Error::other("connection limit reached")),
            }
        })
    }
}

/// An accepted connection: holds its slot until it is closed, and fails with
/// `TimedOut` once nothing was read or written on it for the idle timeout.
#[derive(Debug)]
pub struct Watched<I> {
    io: I,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl<I> Watched<I> {
    fn new(io: I, slot: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        Self {
            io,
            _slot: slot,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    fn active(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// Called when the connection would wait: an error once it has waited too long.
    fn idle_expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.idle_expired(cx),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.idle_expired(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.idle_expired(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.idle_expired(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
