//! The forwarder as a process: its signals (SIGTERM and SIGINT stop it: reading stops, the
//! lanes are dropped and what they finished is committed) and its own small HTTP listener
//! (`deliver.listen`): `GET /metrics` (Prometheus text) and `GET /healthz` (`ok`); anything
//! else is 404.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// `sluice forward`: runs the forwarder until SIGTERM or SIGINT; the exit code.
pub async fn until_signal(config: crate::config::Config) -> std::process::ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    let (stop, stopped) = watch::channel(false);
    let mut run = tokio::spawn(super::run(config, stopped));
    let result = tokio::select! {
        r = &mut run => r,
        _ = term.recv() => { let _ = stop.send(true); run.await }
        _ = int.recv() => { let _ = stop.send(true); run.await }
    };
    match result {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "sluice forward could not start");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %e, "sluice forward failed");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves until `stop` fires.
pub async fn metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(answer(&req, &handle)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            handle.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (&Method::GET, "/healthz") => (StatusCode::OK, "ok\n".to_string(), "text/plain"),
        _ => (
            StatusCode::NOT_FOUND,
            "not found\n".to_string(),
            "text/plain",
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
