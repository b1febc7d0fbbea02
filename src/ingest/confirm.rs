//! Confirming SNS subscriptions, and the outbound HTTP fetch it shares with `sns_verify`.
//!
//! The CloudWatch-via-SNS parser decides whether a `SubscribeURL` may be fetched at all (it must
//! match `confirm_url_pattern` and its topic be in `topic_arns`, see
//! `integrations::cloudwatch_sns`); this module only does the
//! fetch, after the sender has had its `200`: one `GET`, no redirects followed, the certificate
//! verified against the system's CA store (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured), the
//! whole exchange bounded by [`TIMEOUT`], the answer's body read up to [`MAX_BODY`] and only
//! logged. At most [`MAX_IN_FLIGHT`] confirmations run at once; past that, and on any failure,
//! the URL is logged at warn level for an operator to open (SNS keeps a confirmation link valid
//! for three days and resends the confirmation when the subscription is re-requested).
//!
//! A pattern that admits `http://` URLs (a local SNS emulator) is fetched over plain HTTP.
//!
//! [`fetch_via`] is also how `sns_verify` fetches SNS signing certificates; both honour
//! `[integrations.cloudwatch_sns] resolve` ([`Resolve`]: host names connected to at a fixed
//! address, for tests and air-gapped mirrors), while the certificate is still verified against
//! the host name of the URL.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::ingest::integrations::cloudwatch_sns::Subscription;
use crate::metrics as m;

/// Connect, handshake, request and response together.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// SNS answers a few hundred bytes of XML.
pub const MAX_BODY: usize = 64 * 1024;
/// Confirmations are rare; a burst of them is logged rather than fetched.
pub const MAX_IN_FLIGHT: usize = 4;

/// Why a fetch failed, for the log.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not an absolute http or https URL with a host")]
    BadUrl(String),
    #[error("no CA certificates to verify the server with: {0}")]
    NoRoots(String),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("reading the answer: {0}")]
    Body(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Host names (lower case) connected to at a fixed address instead of the one DNS gives.
pub type Resolve = BTreeMap<String, SocketAddr>;

/// The client config trusting the system's CA store, loaded on first use (reading the store
/// takes a while: call [`SystemTls::get`] off the async threads) and shared by clones.
#[derive(Clone, Default)]
pub struct SystemTls(Arc<OnceLock<Result<Arc<ClientConfig>, String>>>);

impl SystemTls {
    /// A config given rather than loaded (tests).
    pub fn fixed(config: Arc<ClientConfig>) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(config));
        SystemTls(Arc::new(cell))
    }

    /// The config, or why there is none (no CA certificates found).
    pub fn get(&self) -> Result<Arc<ClientConfig>, String> {
        self.0.get_or_init(system_tls).clone()
    }
}

/// Spawns confirmations; one per router.
pub struct Confirmer {
    /// Loaded by the first confirmation, in its task.
    tls: SystemTls,
    slots: Arc<Semaphore>,
}

impl Default for Confirmer {
    fn default() -> Self {
        Confirmer {
            tls: SystemTls::default(),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }
}

impl Confirmer {
    /// Confirms `sub` in the background, or logs its URL (auto-confirm off, or too many at
    /// once). Must be called inside the runtime.
    pub fn handle(&self, sub: Subscription) {
        if !sub.confirm {
            m::sns_subscription("logged").increment(1);
            tracing::warn!(
                topic_arn = sub.topic_arn,
                subscribe_url = sub.url,
                "SNS subscription awaits confirmation: open subscribe_url once, or run aws sns \
                 confirm-subscription with its Token (sluice confirms by itself only with \
                 auto_confirm on and the topic in integrations.cloudwatch_sns.topic_arns)"
            );
            return;
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            m::sns_subscription("failed").increment(1);
            tracing::warn!(
                topic_arn = sub.topic_arn,
                subscribe_url = sub.url,
                "SNS subscription not confirmed: {MAX_IN_FLIGHT} confirmations already under way; \
                 open subscribe_url once to confirm it"
            );
            return;
        };
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let outcome = match tls.get() {
                Ok(tls) => fetch_via(&sub.url, &tls, TIMEOUT, &sub.resolve).await,
                Err(e) => Err(FetchError::NoRoots(e)),
            };
            drop(permit);
            match outcome {
                Ok((status, body)) if status.is_success() => {
                    m::sns_subscription("confirmed").increment(1);
                    tracing::info!(
                        topic_arn = sub.topic_arn,
                        status = status.as_u16(),
                        answer = %String::from_utf8_lossy(&body),
                        "SNS subscription confirmed"
                    );
                }
                Ok((status, body)) => {
                    m::sns_subscription("failed").increment(1);
                    tracing::warn!(
                        topic_arn = sub.topic_arn,
                        subscribe_url = sub.url,
                        status = status.as_u16(),
                        answer = %String::from_utf8_lossy(&body),
                        "SNS subscription not confirmed: the URL answered an error"
                    );
                }
                Err(e) => {
                    m::sns_subscription("failed").increment(1);
                    tracing::warn!(
                        topic_arn = sub.topic_arn,
                        subscribe_url = sub.url,
                        error = %e,
                        "SNS subscription not confirmed; open subscribe_url once to confirm it"
                    );
                }
            }
        });
    }
}

/// A client config trusting the system's CA store (loaded once, on the first confirmation).
fn system_tls() -> Result<Arc<ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "none found in the system store ({})",
            errors.join("; ")
        ));
    }
    client_config(roots).map_err(|e| e.to_string())
}

/// A TLS 1.2/1.3 client config with `ring` and the given roots.
pub fn client_config(roots: rustls::RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// One `GET url`, bounded by `timeout`: the status and the start of the body.
pub async fn fetch(
    url: &str,
    tls: &Arc<ClientConfig>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), FetchError> {
    fetch_via(url, tls, timeout, &Resolve::new()).await
}

/// [`fetch`], connecting to the address `resolve` gives the URL's host when it names it (the
/// TLS server name, and so the certificate check, stay the URL's host).
pub async fn fetch_via(
    url: &str,
    tls: &Arc<ClientConfig>,
    timeout: Duration,
    resolve: &Resolve,
) -> Result<(StatusCode, Bytes), FetchError> {
    let bad = || FetchError::BadUrl(url.to_string());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let authority = uri.authority().ok_or_else(bad)?.clone();
    if authority.as_str().contains('@') {
        return Err(bad());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(HOST, authority.as_str())
        .header(USER_AGENT, concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|_| bad())?;
    let fixed = resolve.get(&host.to_ascii_lowercase()).copied();
    let exchange = async {
        let tcp = match fixed {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((host, port)).await,
        }
        .map_err(FetchError::Connect)?;
        let _ = tcp.set_nodelay(true);
        if https {
            let name = ServerName::try_from(host.to_string()).map_err(|_| bad())?;
            let stream = TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(FetchError::Tls)?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| FetchError::TimedOut(timeout))?
}

async fn send<IO>(io: IO, request: Request<Empty<Bytes>>) -> Result<(StatusCode, Bytes), FetchError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(request).await?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| FetchError::Body(e.to_string()))?
        .to_bytes();
    conn.abort();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn no_roots() -> Arc<ClientConfig> {
        client_config(rustls::RootCertStore::empty()).unwrap()
    }

    /// A one-shot plain HTTP server: returns its address and the request head it will read.
    async fn one_answer(answer: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            sock.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        (port, task)
    }

    #[tokio::test]
    async fn a_plain_http_url_is_fetched_with_its_path_and_query() {
        let (port, server) =
            one_answer("HTTP/1.1 200 OK\r\ncontent-length: 27\r\n\r\n<ConfirmSubscriptionResult>")
                .await;
        let url = format!("http://127.0.0.1:{port}/?Action=ConfirmSubscription&Token=t1");
        let (status, body) = fetch(&url, &no_roots(), TIMEOUT).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"<ConfirmSubscriptionResult>");
        let head = server.await.unwrap();
        assert!(
            head.starts_with("GET /?Action=ConfirmSubscription&Token=t1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head
            .to_ascii_lowercase()
            .contains(&format!("host: 127.0.0.1:{port}")));
    }

    #[tokio::test]
    async fn a_resolved_host_is_reached_at_its_fixed_address_under_its_own_name() {
        let (port, server) = one_answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let resolve: Resolve = [(
            "sns.eu-west-1.amazonaws.com".to_string(),
            SocketAddr::from(([127, 0, 0, 1], port)),
        )]
        .into();
        let url = "http://SNS.eu-west-1.amazonaws.com/?Action=ConfirmSubscription";
        let (status, body) = fetch_via(url, &no_roots(), TIMEOUT, &resolve)
            .await
            .unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(
            head.contains("host: sns.eu-west-1.amazonaws.com\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn https_refuses_a_server_it_cannot_verify() {
        // A plain HTTP server behind an https URL (it answers at once, without reading): the
        // TLS handshake fails.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let err = fetch(&format!("https://127.0.0.1:{port}/"), &no_roots(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Tls(_)), "{err}");
    }

    #[tokio::test]
    async fn urls_without_a_scheme_or_with_credentials_are_refused() {
        for url in [
            "sns.eu-west-1.amazonaws.com/x",
            "ftp://h/x",
            "https://user@h/x",
            "",
        ] {
            let err = fetch(url, &no_roots(), TIMEOUT).await.unwrap_err();
            assert!(matches!(err, FetchError::BadUrl(_)), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let (_sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let err = fetch(
            &format!("http://127.0.0.1:{port}/"),
            &no_roots(),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, FetchError::TimedOut(_)), "{err}");
    }
}
