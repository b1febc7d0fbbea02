//! The forwarder's HTTP client: one `POST` to a receiver over plain HTTP or HTTPS (rustls with
//! the system's CA store, as `ingest::confirm` fetches with), each attempt bounded by the
//! receiver's `timeout` (connect, TLS handshake, request and answer together). One kept-alive
//! connection per lane, dropped after any failure; a request that finds the kept connection
//! closed by the receiver goes once more on a new one within the same attempt. No redirects
//! are followed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How much of an answer is read (and at most the first [`SHOWN`] bytes are kept for the log
/// and the dead letter).
const MAX_ANSWER: usize = 64 * 1024;
/// The start of an answer kept to explain a refusal.
pub const SHOWN: usize = 200;

/// Where a receiver is, parsed once.
#[derive(Clone, Debug)]
pub struct Target {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Target {
    /// `url` was checked by the config (absolute http(s), a host, no credentials).
    pub fn parse(url: &str) -> Option<Target> {
        let uri: Uri = url.parse().ok()?;
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let authority = uri.authority()?;
        Some(Target {
            https,
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            authority: authority.as_str().to_string(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        })
    }

    pub fn is_https(&self) -> bool {
        self.https
    }
}

/// A receiver's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// `Retry-After` in seconds, when given so.
    pub retry_after: Option<Duration>,
    /// The first [`SHOWN`] bytes of the body.
    pub start: String,
}

/// Why an attempt got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("no CA certificates to verify the receiver with: {0}")]
    NoRoots(String),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// One lane's client: its kept-alive connection.
pub struct Client {
    target: Target,
    /// Present when the target is https.
    tls: Option<Result<Arc<ClientConfig>, String>>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(target: Target, tls: Option<Result<Arc<ClientConfig>, String>>) -> Client {
        Client {
            target,
            tls,
            conn: None,
        }
    }

    /// POSTs `body` with `headers` (and Host, User-Agent, Content-Type: application/json,
    /// Content-Length); the answer, or why there is none within `timeout`.
    pub async fn post(
        &mut self,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let result = tokio::time::timeout(timeout, self.exchange(headers, body))
            .await
            .unwrap_or(Err(SendError::TimedOut(timeout)));
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Answer, SendError> {
        let t = &self.target;
        let request = || {
            let mut request = Request::post(t.path.as_str())
                .header(HOST, t.authority.as_str())
                .header(USER_AGENT, concat!("sluice/", env!("CARGO_PKG_VERSION")))
                .header(CONTENT_TYPE, "application/json")
                .header(CONTENT_LENGTH, body.len());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request
                .body(Full::new(body.clone()))
                .expect("the parts were checked by the config")
        };
        let kept = match self.conn.take() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let (sender, response) = match kept {
            Some(mut s) => match s.send_request(request()).await {
                Ok(r) => (s, r),
                // A kept-alive connection the receiver had closed meanwhile: once more on a
                // new one (the receiver may have taken it: at least once, as everywhere).
                Err(e) if e.is_closed() || e.is_canceled() || e.is_incomplete_message() => {
                    let mut fresh = self.connect().await?;
                    let r = fresh.send_request(request()).await?;
                    (fresh, r)
                }
                Err(e) => return Err(e.into()),
            },
            None => {
                let mut fresh = self.connect().await?;
                let r = fresh.send_request(request()).await?;
                (fresh, r)
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let start = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]).into_owned();
        self.conn = Some(sender);
        Ok(Answer {
            status,
            retry_after,
            start,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let t = &self.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(SendError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(tls) if t.https => {
                let tls = tls.clone().map_err(SendError::NoRoots)?;
                let name = ServerName::try_from(t.host.clone()).map_err(|e| {
                    SendError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                let stream = TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(SendError::Tls)?;
                handshake(TokioIo::new(stream)).await
            }
            _ => handshake(TokioIo::new(tcp)).await,
        }
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<Full<Bytes>>, SendError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    // Ends when the sender is dropped or the connection fails.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server answering each request on one connection with the next of `answers`; returns
    /// its port and the request heads it read.
    async fn server(answers: Vec<&'static str>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut heads = Vec::new();
            for answer in answers {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then the body its Content-Length announces.
                loop {
                    let n = sock.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            heads.push(text);
                            break;
                        }
                    }
                }
                sock.write_all(answer.as_bytes()).await.unwrap();
            }
            heads
        });
        (port, task)
    }

    #[tokio::test]
    async fn posts_json_on_one_kept_alive_connection_and_reads_retry_after() {
        let (port, srv) = server(vec![
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 4\r\n\r\nslow",
            "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok",
        ])
        .await;
        let target = Target::parse(&format!("http://127.0.0.1:{port}/hook?x=1")).unwrap();
        let mut client = Client::new(target, None);
        let key = (
            HeaderName::from_static("idempotency-key"),
            HeaderValue::from_static("inc_1:1"),
        );
        let first = client
            .post(
                std::slice::from_ref(&key),
                Bytes::from_static(b"{\"a\":1}"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(first.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(first.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(first.start, "slow");
        let second = client
            .post(
                &[key],
                Bytes::from_static(b"{\"a\":2}"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(
            (second.status, second.start.as_str()),
            (StatusCode::ACCEPTED, "ok")
        );
        // Both on the one connection the server accepted.
        let heads = srv.await.unwrap();
        assert_eq!(heads.len(), 2);
        let head = heads[0].to_ascii_lowercase();
        assert!(head.starts_with("post /hook?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("idempotency-key: inc_1:1"), "{head}");
        assert!(heads[1].ends_with("{\"a\":2}"), "{}", heads[1]);
    }

    #[tokio::test]
    async fn a_kept_alive_connection_the_receiver_closes_under_a_request_is_replaced() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let srv = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            // The first connection: one answer, then the next request is read and the
            // connection closed without an answer (an idle timeout racing the request).
            let (mut sock, _) = listener.accept().await.unwrap();
            let _ = sock.read(&mut buf).await.unwrap();
            let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            sock.write_all(ok.as_bytes()).await.unwrap();
            let _ = sock.read(&mut buf).await.unwrap();
            drop(sock);
            let (mut sock, _) = listener.accept().await.unwrap();
            let _ = sock.read(&mut buf).await.unwrap();
            let accepted = "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n";
            sock.write_all(accepted.as_bytes()).await.unwrap();
        });
        let target = Target::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let mut client = Client::new(target, None);
        let timeout = Duration::from_secs(5);
        let first = client
            .post(&[], Bytes::from_static(b"{}"), timeout)
            .await
            .unwrap();
        assert_eq!(first.status, StatusCode::OK);
        let second = client.post(&[], Bytes::from_static(b"{}"), timeout).await;
        assert_eq!(second.unwrap().status, StatusCode::ACCEPTED);
        srv.await.unwrap();
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out_and_a_closed_port_fails_to_connect() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let (_sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let target = Target::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = Client::new(target, None)
            .post(&[], Bytes::new(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::TimedOut(_)), "{err}");
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let target = Target::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = Client::new(target, None)
            .post(&[], Bytes::new(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Connect(_)), "{err}");
    }
}
