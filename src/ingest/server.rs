//! The HTTP/1.1 front end: an accept loop with a connection cap, hyper connections with
//! keep-alive and a header-read timeout, and a drain on shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::router::Router;

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
                let router = Arc::clone(&router);
                let service = service_fn(move |req| {
                    let router = Arc::clone(&router);
                    async move { Ok::<_, Infallible>(router.handle(req).await) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
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
