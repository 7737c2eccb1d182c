//! Connection limits for the HTTP listeners, so a flood of idle or slow connections can
//! neither exhaust the process's file descriptors nor keep `/livez`, `/readyz` and
//! `/metrics` from answering.
//!
//! Contract:
//! - [`serve`] accepts at most `max_connections` connections at a time per listener;
//!   beyond that it stops accepting (the kernel's backlog holds the rest, costing this
//!   process no descriptor) until one closes.
//! - A connection that sends nothing for `read_timeout` (while its request headers or
//!   body are expected, or idle between requests) is closed, and so is every connection
//!   older than [`MAX_CONNECTION_AGE`] (a client trickling a byte at a time cannot hold
//!   one forever).
//! - With `server.hooks_listen` set, the hooks get their own listener and their own cap:
//!   a flood there leaves the main listener (health, metrics) untouched.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// No connection lives longer than this.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);

/// Per-listener limits (`server.max_connections`, `server.read_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            read_timeout: Duration::from_secs(10),
        }
    }
}

impl From<&crate::config::ServerConfig> for Limits {
    fn from(c: &crate::config::ServerConfig) -> Self {
        Limits {
            max_connections: usize::try_from(c.max_connections).unwrap_or(usize::MAX),
            read_timeout: c.read_timeout,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `cancel` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    cancel: CancellationToken,
) -> io::Result<()> {
    let limited = Limited {
        inner: listener,
        permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
        limits,
    };
    axum::serve(limited, router)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

struct Limited {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    limits: Limits,
}

impl axum::serve::Listener for Limited {
    type Io = Guarded;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The permit first: at the cap, nothing more is accepted.
        let permit = loop {
            match self.permits.clone().acquire_owned().await {
                Ok(p) => break p,
                // Never closed; if it were, wait rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (Guarded::new(stream, permit, self.limits.read_timeout), addr);
                }
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "Accepting a connection failed; retrying in 1s.");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection holding its permit, closed when reads stall or it gets too old.
pub struct Guarded {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    read_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    age: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, read_timeout: Duration) -> Guarded {
        Guarded {
            stream,
            _permit: permit,
            read_timeout,
            idle: Box::pin(tokio::time::sleep(read_timeout)),
            age: Box::pin(tokio::time::sleep(MAX_CONNECTION_AGE)),
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.read_timeout;
                    self.idle.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if self.age.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out("connection too old")));
                }
                if self.idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out("no bytes within the read timeout")));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
