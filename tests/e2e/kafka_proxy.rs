//! A proxy in front of tansu, which speaks neither TLS nor SASL: it terminates TLS (rustls,
//! optionally requiring a client certificate), answers the SASL exchange itself (PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512, RFC 5802/7677, checking one username and password), then
//! forwards bytes both ways. tansu advertises the proxy's address, so every follow-up
//! connection of a client (to the broker, the group and transaction coordinators) comes
//! through it too.
//!
//! The SASL part speaks Kafka's framing (KIP-43, KIP-152): ApiVersions is forwarded to tansu
//! and its answer gets SaslHandshake (17) and SaslAuthenticate (36) added; those two are
//! answered here; any other request before authentication closes the connection, as a broker
//! does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ring::{digest, hmac, pbkdf2};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const SCRAM_ITERATIONS: u32 = 4096;

/// The one user the proxy accepts.
#[derive(Clone)]
pub struct Credentials {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: &'static str,
    pub username: String,
    pub password: String,
}

/// What the proxy asks of its clients.
pub struct ProxyConfig {
    /// Its certificate and key (PEM); `None`: no TLS (plaintext, for SASL_PLAINTEXT).
    pub server: Option<(PathBuf, PathBuf)>,
    /// Requires a client certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
    pub sasl: Option<Credentials>,
}

/// What the proxy saw.
#[derive(Default)]
pub struct Counts {
    /// Connections whose TLS handshake succeeded.
    pub tls: AtomicUsize,
    /// Connections whose TLS handshake failed, and why.
    pub tls_failed: AtomicUsize,
    pub tls_errors: std::sync::Mutex<Vec<String>>,
    pub authenticated: AtomicUsize,
    /// Connections refused during SASL (wrong mechanism, user or password).
    pub refused: AtomicUsize,
}

impl Counts {
    pub fn get(n: &AtomicUsize) -> usize {
        n.load(Ordering::Relaxed)
    }
}

/// The running proxy; stops when dropped.
pub struct Proxy {
    pub counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener on a loopback port, and the port: tansu must advertise it before the proxy
/// knows tansu's address.
pub async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn certificates(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn acceptor(config: &ProxyConfig) -> Option<tokio_rustls::TlsAcceptor> {
    let (cert, key) = config.server.as_ref()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(ca) {
                roots.add(c).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let server = builder.with_single_cert(certificates(cert), key).unwrap();
    Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

impl Proxy {
    /// Serves `listener`, forwarding to `upstream` (tansu's `host:port`).
    pub fn start(listener: TcpListener, upstream: String, config: ProxyConfig) -> Proxy {
        let counts = Arc::new(Counts::default());
        let acceptor = acceptor(&config);
        let (seen, sasl) = (counts.clone(), config.sasl);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                let (counts, sasl) = (seen.clone(), sasl.clone());
                tokio::spawn(async move {
                    let Some(acceptor) = acceptor else {
                        return serve(tcp, &upstream, sasl.as_ref(), &counts).await;
                    };
                    match acceptor.accept(tcp).await {
                        Ok(tls) => {
                            counts.tls.fetch_add(1, Ordering::Relaxed);
                            serve(tls, &upstream, sasl.as_ref(), &counts).await;
                        }
                        Err(e) => {
                            counts.tls_failed.fetch_add(1, Ordering::Relaxed);
                            counts.tls_errors.lock().unwrap().push(e.to_string());
                        }
                    }
                });
            }
        });
        Proxy { counts, task }
    }
}

/// Authenticates the client (when asked to), then forwards both ways until either side closes.
async fn serve<S>(mut client: S, upstream: &str, sasl: Option<&Credentials>, counts: &Counts)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        return;
    };
    if let Some(credentials) = sasl {
        match authenticate(&mut client, &mut up, credentials).await {
            Ok(true) => counts.authenticated.fetch_add(1, Ordering::Relaxed),
            Ok(false) => counts.refused.fetch_add(1, Ordering::Relaxed),
            Err(_) => return,
        };
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
}

async fn read_frame(s: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let len = s.read_u32().await? as usize;
    if len > 16 << 20 {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut frame = vec![0; len];
    s.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn write_frame(s: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> std::io::Result<()> {
    s.write_u32(frame.len() as u32).await?;
    s.write_all(frame).await?;
    s.flush().await
}

/// Reads big-endian fields off the front of a frame.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// An `i16`-length string (`None` for a null one too).
    fn string(&mut self) -> Option<&[u8]> {
        let len = self.i16()?;
        self.take(usize::try_from(len).ok()?)
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Runs the SASL exchange; whether the client got in. Errors are the socket's.
async fn authenticate(
    client: &mut (impl AsyncRead + AsyncWrite + Unpin),
    up: &mut TcpStream,
    credentials: &Credentials,
) -> std::io::Result<bool> {
    let mut scram: Option<Scram> = None;
    loop {
        let frame = read_frame(client).await?;
        let mut c = Cursor(&frame);
        let (Some(api_key), Some(version), Some(correlation)) = (c.i16(), c.i16(), c.i32()) else {
            return Ok(false);
        };
        // Request header v1 (these two requests are not flexible in the versions offered).
        let _client_id = c.string();
        let mut reply = correlation.to_be_bytes().to_vec();
        match api_key {
            API_VERSIONS => {
                write_frame(up, &frame).await?;
                let answer = read_frame(up).await?;
                let patched = with_sasl_apis(&answer, version).unwrap_or(answer);
                write_frame(client, &patched).await?;
                continue;
            }
            SASL_HANDSHAKE => {
                let asked = c.string().unwrap_or_default();
                let ok = asked == credentials.mechanism.as_bytes();
                let code = if ok { 0 } else { UNSUPPORTED_SASL_MECHANISM };
                reply.extend(code.to_be_bytes());
                reply.extend(1i32.to_be_bytes());
                reply.extend((credentials.mechanism.len() as i16).to_be_bytes());
                reply.extend(credentials.mechanism.as_bytes());
                write_frame(client, &reply).await?;
                if !ok {
                    return Ok(false);
                }
            }
            SASL_AUTHENTICATE => {
                let len = c.i32().unwrap_or(-1);
                let bytes = c
                    .take(usize::try_from(len).unwrap_or(0))
                    .unwrap_or_default();
                let step = match credentials.mechanism {
                    "PLAIN" => plain(bytes, credentials),
                    _ => scram_step(&mut scram, bytes, credentials),
                };
                let (code, message, data, done) = match step {
                    Step::Continue(data) => (0, None, data, false),
                    Step::Done(data) => (0, None, data, true),
                    Step::Fail(message) => {
                        (SASL_AUTHENTICATION_FAILED, Some(message), Vec::new(), true)
                    }
                };
                reply.extend(code.to_be_bytes());
                match &message {
                    Some(m) => {
                        reply.extend((m.len() as i16).to_be_bytes());
                        reply.extend(m.as_bytes());
                    }
                    None => reply.extend((-1i16).to_be_bytes()),
                }
                reply.extend((data.len() as i32).to_be_bytes());
                reply.extend(&data);
                if version >= 1 {
                    reply.extend(0i64.to_be_bytes()); // session_lifetime_ms: no re-authentication
                }
                write_frame(client, &reply).await?;
                if done {
                    return Ok(message.is_none());
                }
            }
            _ => return Ok(false),
        }
    }
}

/// tansu's ApiVersions answer (`frame`: correlation id, body) with SaslHandshake v0-1 and
/// SaslAuthenticate v0-1 listed; `None` when it is an error answer or cannot be read.
fn with_sasl_apis(frame: &[u8], version: i16) -> Option<Vec<u8>> {
    let mut c = Cursor(frame);
    let correlation = c.take(4)?.to_vec();
    let error = c.i16()?;
    if error != 0 {
        return None;
    }
    let flexible = version >= 3;
    let count = if flexible {
        c.uvarint()?.checked_sub(1)?
    } else {
        u64::try_from(c.i32()?).ok()?
    };
    let mut entries: Vec<Vec<u8>> = Vec::new();
    for _ in 0..count {
        let start = c.0;
        let key = c.i16()?;
        c.take(4)?;
        if flexible {
            for _ in 0..c.uvarint()? {
                c.uvarint()?;
                let size = c.uvarint()?;
                c.take(usize::try_from(size).ok()?)?;
            }
        }
        let entry = start[..start.len() - c.0.len()].to_vec();
        if key != SASL_HANDSHAKE && key != SASL_AUTHENTICATE {
            entries.push(entry);
        }
    }
    for key in [SASL_HANDSHAKE, SASL_AUTHENTICATE] {
        let mut entry = [key, 0, 1]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>();
        if flexible {
            entry.push(0); // no tagged fields
        }
        entries.push(entry);
    }
    let mut out = correlation;
    out.extend(error.to_be_bytes());
    if flexible {
        put_uvarint(&mut out, entries.len() as u64 + 1);
    } else {
        out.extend((entries.len() as i32).to_be_bytes());
    }
    out.extend(entries.concat());
    out.extend(c.0); // throttle time, tagged fields
    Some(out)
}

enum Step {
    Continue(Vec<u8>),
    Done(Vec<u8>),
    Fail(String),
}

/// `authzid NUL username NUL password` (RFC 4616).
fn plain(bytes: &[u8], credentials: &Credentials) -> Step {
    let parts: Vec<&[u8]> = bytes.split(|b| *b == 0).collect();
    match parts[..] {
        [_, user, password]
            if user == credentials.username.as_bytes()
                && password == credentials.password.as_bytes() =>
        {
            Step::Done(Vec::new())
        }
        _ => Step::Fail("Authentication failed: Invalid username or password".into()),
    }
}

/// The server's side of SCRAM between its two messages.
struct Scram {
    nonce: String,
    salted: Vec<u8>,
    /// client-first-message-bare "," server-first-message
    said: String,
}

fn algorithms(
    mechanism: &str,
) -> (
    pbkdf2::Algorithm,
    hmac::Algorithm,
    &'static digest::Algorithm,
) {
    match mechanism {
        "SCRAM-SHA-512" => (
            pbkdf2::PBKDF2_HMAC_SHA512,
            hmac::HMAC_SHA512,
            &digest::SHA512,
        ),
        _ => (
            pbkdf2::PBKDF2_HMAC_SHA256,
            hmac::HMAC_SHA256,
            &digest::SHA256,
        ),
    }
}

/// One SCRAM message from the client (RFC 5802 section 3); the first makes `state`.
fn scram_step(state: &mut Option<Scram>, bytes: &[u8], credentials: &Credentials) -> Step {
    let fail = || {
        Step::Fail(format!(
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism {}",
            credentials.mechanism
        ))
    };
    let Ok(message) = std::str::from_utf8(bytes) else {
        return fail();
    };
    let attribute = |text: &str, name: char| -> Option<String> {
        text.split(',')
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let (pbkdf2_alg, hmac_alg, digest_alg) = algorithms(credentials.mechanism);
    let hmac = |key: &[u8], data: &[u8]| hmac::sign(&hmac::Key::new(hmac_alg, key), data);
    match state.take() {
        None => {
            // gs2-header ("n,," : no channel binding, no authzid), then the bare message.
            let Some(bare) = message.strip_prefix("n,,") else {
                return fail();
            };
            let (Some(user), Some(client_nonce)) = (attribute(bare, 'n'), attribute(bare, 'r'))
            else {
                return fail();
            };
            if user != credentials.username {
                return fail();
            }
            let salt = b"sluice-e2e-salt!";
            let nonce = format!("{client_nonce}{}", base64(&random::<18>()));
            let server_first = format!("r={nonce},s={},i={SCRAM_ITERATIONS}", base64(salt));
            let mut salted = vec![0; digest_alg.output_len()];
            pbkdf2::derive(
                pbkdf2_alg,
                SCRAM_ITERATIONS.try_into().unwrap(),
                salt,
                credentials.password.as_bytes(),
                &mut salted,
            );
            *state = Some(Scram {
                nonce,
                salted,
                said: format!("{bare},{server_first}"),
            });
            Step::Continue(server_first.into_bytes())
        }
        Some(scram) => {
            let Some((without_proof, proof)) = message.split_once(",p=") else {
                return fail();
            };
            let proof = unbase64(proof).unwrap_or_default();
            if attribute(without_proof, 'r').as_deref() != Some(scram.nonce.as_str()) {
                return fail();
            }
            let auth_message = format!("{},{without_proof}", scram.said);
            let client_key = hmac(&scram.salted, b"Client Key");
            let stored_key = digest::digest(digest_alg, client_key.as_ref());
            let signature = hmac(stored_key.as_ref(), auth_message.as_bytes());
            if proof.len() != signature.as_ref().len() {
                return fail();
            }
            let recovered: Vec<u8> = proof
                .iter()
                .zip(signature.as_ref())
                .map(|(a, b)| a ^ b)
                .collect();
            if digest::digest(digest_alg, &recovered).as_ref() != stored_key.as_ref() {
                return fail();
            }
            let server_key = hmac(&scram.salted, b"Server Key");
            let server_signature = hmac(server_key.as_ref(), auth_message.as_bytes());
            Step::Done(format!("v={}", base64(server_signature.as_ref())).into_bytes())
        }
    }
}

fn random<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0; N];
    ring::rand::SystemRandom::new().fill(&mut out).unwrap();
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut n, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        n = (n << 6 | BASE64.iter().position(|b| *b == c)? as u32) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits) as u8);
        }
    }
    Some(out)
}

#[test]
fn base64_round_trips_rfc_4648_vectors() {
    for (plain, coded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), coded);
        assert_eq!(unbase64(coded).unwrap(), plain.as_bytes());
    }
}
