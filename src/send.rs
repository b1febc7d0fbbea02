//! A small HTTP/1.1 client over one keep-alive connection: `sluice send` uses it to post test
//! events, and the end-to-end tests use it to talk to a running sluice over a real socket.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("{0:?} is not a URL like http://127.0.0.1:8080")]
    BadUrl(String),
}

pub struct HttpClient {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

/// The `host:port` of an `http://host:port[/...]` URL (or of a bare `host:port`).
pub fn authority(url: &str) -> Result<String, ClientError> {
    let bad = || ClientError::BadUrl(url.to_string());
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let uri: http::Uri = full.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad());
    }
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(bad());
    }
    let has_port = authority.as_str() != authority.host();
    match authority.port_u16() {
        Some(_) => Ok(authority.as_str().to_string()),
        // A port that is not a number (or out of range).
        None if has_port => Err(bad()),
        None => Ok(format!("{}:80", authority.host())),
    }
}

/// The URL a client on this machine reaches a sluice listening on `listen` at: an unspecified
/// address (`0.0.0.0`, `::`) is reached at the loopback address of its family.
pub fn url_of(listen: std::net::SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// A response: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl HttpClient {
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        let authority = authority(url)?;
        let stream =
            TcpStream::connect(&authority)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: authority.clone(),
                    source,
                })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpClient { sender, authority })
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        self.request_with(method, path, &[], body).await
    }

    /// A request with extra headers; `Content-Type` is `application/json` unless one is given.
    pub async fn request_with(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body.into()))
            .expect("request parts are valid");
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Result<Reply, ClientError> {
        self.request(Method::POST, path, body).await
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, ClientError> {
        self.request(Method::GET, path, Bytes::new()).await
    }
}

/// A PagerDuty v2 event body, for demos and tests.
pub fn pd_event(
    routing_key: &str,
    action: &str,
    dedup_key: &str,
    source: &str,
    severity: &str,
    summary: &str,
) -> Vec<u8> {
    let mut event = serde_json::json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
    });
    if action == "trigger" {
        event["payload"] = serde_json::json!({
            "summary": summary,
            "source": source,
            "severity": severity,
        });
    }
    serde_json::to_vec(&event).expect("json serializes")
}

/// `sluice send`: `count` PagerDuty v2 events posted one after another to `url`'s
/// `/v2/enqueue`, event `i` with dedup key `<key_prefix>-<i % keys>` on host `k % sources`.
pub struct Storm {
    pub url: String,
    pub routing_key: String,
    pub count: u32,
    pub keys: u32,
    pub sources: u32,
    pub action: String,
    pub severity: String,
    pub key_prefix: String,
}

impl Storm {
    /// Posts the events and prints a line counting the answers by status; success when every
    /// answer was 2xx.
    pub async fn send(&self) -> std::process::ExitCode {
        use std::process::ExitCode;
        let Storm {
            url,
            routing_key,
            count,
            keys,
            sources,
            action,
            severity,
            key_prefix,
        } = self;
        let (count, keys, sources) = (*count, *keys, *sources);
        // Refused before any request, as the action and severity are.
        if let Err(e) = authority(url) {
            eprintln!("error: --url: {e}");
            return ExitCode::from(2);
        }
        let mut client = match HttpClient::connect(url).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let mut by_status = std::collections::BTreeMap::new();
        for i in 0..count {
            let k = i % keys;
            let dedup_key = format!("{key_prefix}-{k}");
            let source = format!("host-{}", k % sources);
            let summary = format!("{key_prefix} alert {k} on {source}");
            let body = pd_event(routing_key, action, &dedup_key, &source, severity, &summary);
            match client.post("/v2/enqueue", body).await {
                Ok(reply) => {
                    if !reply.status.is_success() {
                        eprintln!("{} {}", reply.status, String::from_utf8_lossy(&reply.body));
                    }
                    *by_status.entry(reply.status.as_u16()).or_insert(0u32) += 1;
                }
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let summary: Vec<String> = by_status
            .iter()
            .map(|(s, n)| format!("{n} x {s}"))
            .collect();
        println!(
            "sent {count} {action} event(s) to {url}: {}",
            summary.join(", ")
        );
        if by_status.keys().all(|s| (200..300).contains(s)) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_from_urls() {
        assert_eq!(
            authority("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            authority("http://localhost:9/v2/enqueue").unwrap(),
            "localhost:9"
        );
        assert_eq!(authority("example.net").unwrap(), "example.net:80");
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://").is_err());
        for bad in [
            "not a url",
            "ftp://x:1",
            "http://x:port",
            "http://x:70000",
            "http://u@x:1",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_url_of_a_listen_address_is_reachable_from_this_machine() {
        for (listen, url) in [
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("0.0.0.0:9000", "http://127.0.0.1:9000"),
            ("[::]:9000", "http://[::1]:9000"),
            ("10.1.2.3:80", "http://10.1.2.3:80"),
        ] {
            assert_eq!(url_of(listen.parse().unwrap()), url, "{listen}");
        }
    }
}
