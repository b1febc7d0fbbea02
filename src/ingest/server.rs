//! The HTTP/1.1 front end: an accept loop with a connection cap, hyper connections with
//! keep-alive and a header-read timeout, a lingering close, and a drain on shutdown; over TLS
//! when `[server.tls]` is set (`super::tls`), the handshake done in the connection's task
//! within the header-read timeout.
//!
//! Lingering close: hyper answers some requests before it has read them whole (a body over
//! `server.max_body_bytes` gets its 413 from the router, headers over hyper's buffer get 431)
//! and then closes the socket. Closing a socket with unread bytes makes the kernel send a reset,
//! and a client that writes its whole request before reading (Python's urllib, curl without
//! `Expect`, most scripts) sees a broken pipe instead of the answer. So when hyper is done with
//! a connection whose peer has not closed its side, the socket's write side is shut (the answer
//! is already flushed) and what the peer still sends is read and thrown away until it closes,
//! as Apache and nginx do: bounded by [`LINGER_MAX_BYTES`], [`LINGER_MAX_TIME`] and a
//! [`LINGER_IDLE`] gap, with the connection's slot held meanwhile. A connection hyper cut for
//! a header-read timeout (slowloris) got no answer and does not linger.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};

use super::router::Router;
use super::tls::Tls;
use crate::metrics as m;

/// The most a lingering close reads after the answer (a client sending a body several times
/// the limit still gets to read its 413).
pub const LINGER_MAX_BYTES: usize = 16 << 20;
/// The longest a lingering close lasts.
pub const LINGER_MAX_TIME: Duration = Duration::from_secs(5);
/// A lingering close ends when the peer sends nothing for this long.
pub const LINGER_IDLE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long open connections get to finish once shutdown starts.
    pub drain: Duration,
}

/// Serves `listener` until `shutdown` fires, then stops accepting and lets open connections
/// finish their requests (keep-alive connections close after the current one) for up to
/// `limits.drain`. Returns the number of connections still open when it gave up.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    limits: ServerLimits,
    tls: Option<Arc<Tls>>,
    mut shutdown: watch::Receiver<bool>,
) -> usize {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::debug!(%peer, "connection refused: server.max_connections reached");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let serving = Serving {
                    router: Arc::clone(&router),
                    builder: builder.clone(),
                    watcher: graceful.watcher(),
                    peer,
                };
                let tls = tls.clone();
                let handshake_timeout = limits.header_read_timeout;
                tokio::spawn(async move {
                    match tls {
                        None => serving.connection(stream).await,
                        Some(tls) => {
                            let handshake = tls.acceptor.accept(stream);
                            match tokio::time::timeout(handshake_timeout, handshake).await {
                                Ok(Ok(stream)) => serving.connection(stream).await,
                                Ok(Err(e)) => {
                                    m::tls_handshakes_failed("error").increment(1);
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                }
                                Err(_) => {
                                    m::tls_handshakes_failed("timeout").increment(1);
                                    tracing::debug!(%peer, "TLS handshake not done within server.header_read_timeout");
                                }
                            }
                        }
                    }
                    drop(slot);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let open = graceful.count();
    tracing::info!(
        open_connections = open,
        "stopped accepting; draining connections"
    );
    tokio::select! {
        _ = graceful.shutdown() => 0,
        _ = tokio::time::sleep(limits.drain) => {
            let left = slots.available_permits();
            limits.max_connections.saturating_sub(left)
        }
    }
}

/// What one connection needs once accepted (and, with TLS, once its handshake is done).
struct Serving {
    router: Arc<Router>,
    builder: http1::Builder,
    watcher: Watcher,
    peer: SocketAddr,
}

impl Serving {
    /// Serves `stream`'s requests until hyper is done with it, then lingers if need be.
    async fn connection<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Serving {
            router,
            builder,
            watcher,
            peer,
        } = self;
        let service = service_fn(move |req| {
            let router = Arc::clone(&router);
            async move { Ok::<_, Infallible>(router.handle(req).await) }
        });
        let (io, returned) = Returned::new(stream);
        let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
        let result = conn.await;
        let cut_for_time = result.as_ref().is_err_and(hyper::Error::is_timeout);
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        // hyper has dropped the socket's wrapper by now, which handed it back.
        if let Ok((stream, peer_closed)) = returned.await {
            if !peer_closed && !cut_for_time {
                let drained = linger(stream).await;
                if drained > 0 {
                    tracing::debug!(%peer, drained, "lingering close read past the answer");
                }
            }
        }
    }
}

/// Shuts the write side of `stream` and reads what the peer still sends until it closes, within
/// the linger bounds; returns the bytes thrown away.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> usize {
    // hyper shut the write side after a clean end; after an error it may not have.
    let _ = stream.shutdown().await;
    let deadline = tokio::time::Instant::now() + LINGER_MAX_TIME;
    let mut scratch = vec![0u8; 8 * 1024];
    let mut drained = 0;
    while drained < LINGER_MAX_BYTES {
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(LINGER_IDLE);
        match tokio::time::timeout(wait, stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            // Closed, failed, quiet for LINGER_IDLE, or out of time.
            _ => break,
        }
    }
    drained
}

/// The socket as hyper gets it: notes whether the peer closed its side, and hands the socket
/// back (through `back`) when hyper drops it, so the connection task can linger on it.
struct Returned<S> {
    stream: Option<S>,
    peer_closed: bool,
    back: Option<oneshot::Sender<(S, bool)>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Returned<S> {
    fn new(stream: S) -> (Self, oneshot::Receiver<(S, bool)>) {
        let (tx, rx) = oneshot::channel();
        let io = Returned {
            stream: Some(stream),
            peer_closed: false,
            back: Some(tx),
        };
        (io, rx)
    }

    fn stream(&mut self) -> Pin<&mut S> {
        Pin::new(self.stream.as_mut().expect("the socket is held until drop"))
    }
}

impl<S> Drop for Returned<S> {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.stream.take(), self.back.take()) {
            let _ = back.send((stream, self.peer_closed));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Returned<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        let polled = self.stream().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if wanted && buf.filled().len() == before {
                self.peer_closed = true;
            }
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Returned<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}
