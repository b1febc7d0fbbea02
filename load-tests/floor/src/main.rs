//! The floor no HTTP gateway can beat: hyper 1 over HTTP/1.1 keep-alive, reading the whole
//! request body and answering `202` with a short JSON body, doing no other work.
//!
//! Usage: `sluice-floor [ADDR]` (default `127.0.0.1:18090`).

use std::convert::Infallible;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"status":"success"}"#;

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole body, as a gateway must; a broken body still gets an answer.
    let status = match req.into_body().collect().await {
        Ok(body) => {
            std::hint::black_box(body.to_bytes());
            StatusCode::ACCEPTED
        }
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".to_string());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("sluice-floor listening on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
