//! Request bodies: read whole within the configured limits (size declared and read, and a
//! deadline), decoded from the content coding they came in (`gzip`, `deflate`, or none) with
//! the decoded size capped while decoding, and the answer when a body could not be read (415,
//! 413, 408, 400).
//!
//! One limit, `server.max_body_bytes`, caps both what crosses the wire and what decoding
//! produces: the parsers never see more than it whatever the coding, and a decompression bomb is
//! stopped at the limit, not after it (the decoder writes into a buffer that refuses to grow
//! past it, one compressed frame at a time).

use std::io::Write;
use std::time::Duration;

use bytes::Buf;
use flate2::{Decompress, FlushDecompress, Status};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use super::response::{self, Body};

/// Request limits that belong to the router (connection limits live in the server).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// The most a body may be, on the wire and once decoded.
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
}

/// The content codings (`Content-Encoding`) a request body may be in, as `Accept-Encoding`
/// lists them: the one place to add a decoder's name (a body in any other coding is refused
/// with 415 before it is read). `x-gzip` is taken as `gzip` (RFC 9110 §8.4.1.3).
pub const ACCEPTED_CODINGS: &[&str] = &["identity", "gzip", "deflate"];

/// Why a body was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// A `Content-Encoding` outside [`ACCEPTED_CODINGS`], or more than one coding.
    Encoding,
    TooLarge,
    /// Decoding `coding` would pass the limit.
    TooLargeDecoded(&'static str),
    /// The body is not valid data of `coding` (truncated, damaged, or followed by more bytes).
    Corrupt(&'static str),
    TimedOut,
    Io,
}

impl BodyError {
    /// The `reason` label of `sluice_events_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            BodyError::Encoding => "unsupported_encoding",
            BodyError::TooLarge | BodyError::TooLargeDecoded(_) => "too_large",
            BodyError::Corrupt(_) => "malformed",
            BodyError::TimedOut => "body_timeout",
            BodyError::Io => "body_io",
        }
    }

    /// The answer: 415 naming the accepted codings (also in `Accept-Encoding`), 413 naming the
    /// limit, 400 naming the coding that did not decode, 408, or 400.
    pub fn response(self, limits: &BodyLimits) -> Response<Body> {
        match self {
            BodyError::Encoding => {
                let accepted = ACCEPTED_CODINGS.join(", ");
                let mut resp = response::error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported encoding",
                    &format!(
                        "Content-Encoding not supported: sluice accepts {accepted} (one coding)"
                    ),
                    &[],
                );
                resp.headers_mut().insert(
                    ACCEPT_ENCODING,
                    HeaderValue::from_str(&accepted).expect("coding names are valid"),
                );
                resp
            }
            BodyError::TooLarge => response::too_large(limits.max_body_bytes),
            BodyError::TooLargeDecoded(coding) => response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid event",
                "Request body is too large once decoded",
                &[format!(
                    "'body' must be at most {} bytes once decoded from Content-Encoding {coding}",
                    limits.max_body_bytes
                )],
            ),
            BodyError::Corrupt(coding) => response::error(
                StatusCode::BAD_REQUEST,
                "invalid event",
                "request body could not be decoded",
                &[format!(
                    "'body' is not complete, valid {coding} data (Content-Encoding {coding})"
                )],
            ),
            BodyError::TimedOut => response::error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "request body not received in time",
                &["'body' was not complete within server.body_read_timeout".into()],
            ),
            BodyError::Io => response::error(
                StatusCode::BAD_REQUEST,
                "invalid event",
                "request body could not be read",
                &[],
            ),
        }
    }
}

/// The coding a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    /// The zlib format (RFC 9110's `deflate`), or raw deflate, which some senders write under
    /// that name: told apart by the zlib header.
    Deflate,
}

/// The coding `Content-Encoding` names (a list, in any case, `identity` ignored), or
/// [`BodyError::Encoding`] for an unknown coding or more than one.
pub fn coding(headers: &http::HeaderMap) -> Result<Coding, BodyError> {
    let mut found = Coding::Identity;
    for value in headers.get_all(CONTENT_ENCODING) {
        let list = value.to_str().map_err(|_| BodyError::Encoding)?;
        for name in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let this = if name.eq_ignore_ascii_case("identity") {
                continue;
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                Coding::Gzip
            } else if name.eq_ignore_ascii_case("deflate") {
                Coding::Deflate
            } else {
                return Err(BodyError::Encoding);
            };
            if found != Coding::Identity {
                return Err(BodyError::Encoding);
            }
            found = this;
        }
    }
    Ok(found)
}

/// The decoded body: refuses to grow past `limit`, and says so.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl Capped {
    fn empty() -> Self {
        Capped {
            buf: Vec::new(),
            limit: 0,
            over: false,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("over the decoded size limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// zlib or raw deflate, decoded frame by frame; knows whether the stream ended.
struct Inflate {
    state: Decompress,
    ended: bool,
}

impl Inflate {
    /// Output is produced this much at a time, so the cap is checked at least this often.
    const STEP: usize = 32 * 1024;

    fn feed(&mut self, mut input: &[u8], out: &mut Capped) -> Result<(), BodyError> {
        let corrupt = BodyError::Corrupt("deflate");
        let mut step = [0u8; Self::STEP];
        loop {
            if self.ended {
                // Bytes after the end of the stream.
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(corrupt)
                };
            }
            let (before_in, before_out) = (self.state.total_in(), self.state.total_out());
            let status = self
                .state
                .decompress(input, &mut step, FlushDecompress::None)
                .map_err(|_| corrupt)?;
            let used = (self.state.total_in() - before_in) as usize;
            let made = (self.state.total_out() - before_out) as usize;
            input = &input[used..];
            out.write_all(&step[..made])
                .map_err(|_| BodyError::TooLargeDecoded("deflate"))?;
            match status {
                Status::StreamEnd => self.ended = true,
                // Nothing consumed and nothing made: wants more input.
                _ if used == 0 && made == 0 => return Ok(()),
                // Input used up and output not full: nothing is pending.
                _ if input.is_empty() && made < Self::STEP => return Ok(()),
                _ => {}
            }
        }
    }
}

/// A body being decoded from its coding into a capped buffer.
enum Decoder {
    Identity(Capped),
    Gzip(Box<flate2::write::MultiGzDecoder<Capped>>),
    /// `deflate` before its first two bytes tell zlib from raw deflate.
    DeflateHead(Capped, Vec<u8>),
    Deflate(Capped, Box<Inflate>),
}

impl Decoder {
    fn new(coding: Coding, limit: usize, capacity: usize) -> Self {
        let out = Capped {
            buf: Vec::with_capacity(capacity.min(limit)),
            limit,
            over: false,
        };
        match coding {
            Coding::Identity => Decoder::Identity(out),
            Coding::Gzip => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(out))),
            Coding::Deflate => Decoder::DeflateHead(out, Vec::with_capacity(2)),
        }
    }

    /// Decodes the next piece of the wire body.
    fn feed(&mut self, data: &[u8]) -> Result<(), BodyError> {
        match self {
            Decoder::Identity(out) => out.write_all(data).map_err(|_| BodyError::TooLarge),
            Decoder::Gzip(gz) => gz.write_all(data).map_err(|_| {
                if gz.get_ref().over {
                    BodyError::TooLargeDecoded("gzip")
                } else {
                    BodyError::Corrupt("gzip")
                }
            }),
            Decoder::DeflateHead(out, head) => {
                let take = data.len().min(2 - head.len());
                head.extend_from_slice(&data[..take]);
                if head.len() < 2 {
                    return Ok(());
                }
                let mut inflate = Box::new(Inflate {
                    state: Decompress::new(is_zlib_header(head[0], head[1])),
                    ended: false,
                });
                let head = std::mem::take(head);
                let mut out = std::mem::replace(out, Capped::empty());
                let fed = inflate
                    .feed(&head, &mut out)
                    .and_then(|()| inflate.feed(&data[take..], &mut out));
                *self = Decoder::Deflate(out, inflate);
                fed
            }
            Decoder::Deflate(out, inflate) => inflate.feed(data, out),
        }
    }

    /// The whole decoded body, or [`BodyError::Corrupt`] when the stream did not end.
    fn finish(self) -> Result<Vec<u8>, BodyError> {
        match self {
            Decoder::Identity(out) => Ok(out.buf),
            Decoder::Gzip(gz) => gz
                .finish()
                .map(|out| out.buf)
                .map_err(|_| BodyError::Corrupt("gzip")),
            Decoder::DeflateHead(..) => Err(BodyError::Corrupt("deflate")),
            Decoder::Deflate(out, inflate) if inflate.ended => Ok(out.buf),
            Decoder::Deflate(..) => Err(BodyError::Corrupt("deflate")),
        }
    }
}

/// Whether two bytes start a zlib stream (RFC 1950: method 8, header checksum).
fn is_zlib_header(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

/// Reads a whole body within `limits` and decodes it: the coding and the declared length are
/// checked before reading, the read and the decoded length while reading, and the whole read
/// has a deadline.
pub async fn read<B>(
    limits: &BodyLimits,
    headers: &http::HeaderMap,
    mut body: B,
) -> Result<Vec<u8>, BodyError>
where
    B: http_body::Body + Unpin,
    B::Data: Buf,
{
    let coding = coding(headers)?;
    let limit = limits.max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut decoder = Decoder::new(coding, limit, declared.unwrap_or(1024));
    let mut wire = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Io)?;
            if let Ok(mut data) = frame.into_data() {
                wire += data.remaining();
                if wire > limit {
                    return Err(BodyError::TooLarge);
                }
                while data.has_remaining() {
                    let chunk = data.chunk();
                    let n = chunk.len();
                    decoder.feed(chunk)?;
                    data.advance(n);
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(())) => decoder.finish(),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BodyError::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use flate2::Compression;

    use super::*;

    /// A body that arrives in the given pieces.
    struct Pieces(VecDeque<Bytes>);

    impl http_body::Body for Pieces {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
        }
    }

    fn limits(max: usize) -> BodyLimits {
        BodyLimits {
            max_body_bytes: max,
            body_read_timeout: Duration::from_secs(5),
        }
    }

    fn headers(coding: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if !coding.is_empty() {
            h.insert(CONTENT_ENCODING, HeaderValue::from_str(coding).unwrap());
        }
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Reads `wire` in pieces of `piece` bytes.
    async fn read_in(
        max: usize,
        coding: &str,
        wire: &[u8],
        piece: usize,
    ) -> Result<Vec<u8>, BodyError> {
        let pieces = wire
            .chunks(piece.max(1))
            .map(Bytes::copy_from_slice)
            .collect();
        read(&limits(max), &headers(coding), Pieces(pieces)).await
    }

    #[tokio::test]
    async fn every_accepted_coding_decodes_in_any_pieces() {
        let text = br#"{"routing_key":"rk","event_action":"trigger"}"#.repeat(50);
        let cases: [(&str, Vec<u8>); 6] = [
            ("", text.clone()),
            ("identity", text.clone()),
            ("gzip", gzip(&text)),
            ("X-Gzip", gzip(&text)),
            ("deflate", zlib(&text)),
            ("Deflate, identity", raw_deflate(&text)),
        ];
        for (coding, wire) in cases {
            for piece in [1, 2, 7, 100_000] {
                assert_eq!(
                    read_in(64 * 1024, coding, &wire, piece).await,
                    Ok(text.clone()),
                    "{coding:?} in pieces of {piece}"
                );
            }
        }
        // Two gzip members are one body.
        let mut two = gzip(b"[1,");
        two.extend(gzip(b"2]"));
        assert_eq!(read_in(100, "gzip", &two, 3).await, Ok(b"[1,2]".to_vec()));
    }

    #[tokio::test]
    async fn a_bomb_stops_at_the_limit_while_decoding() {
        // 64 MiB of zeros compress to about 64 KiB; the limit is 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        for (coding, wire) in [
            ("gzip", gzip(&zeros)),
            ("deflate", zlib(&zeros)),
            ("deflate", raw_deflate(&zeros)),
        ] {
            assert!(wire.len() < 1 << 20);
            let got = read_in(1 << 20, coding, &wire, 4096).await;
            let name = if coding == "gzip" { "gzip" } else { "deflate" };
            assert_eq!(got, Err(BodyError::TooLargeDecoded(name)), "{coding}");
        }
        // Exactly the limit decodes.
        let wire = gzip(&zeros[..1 << 20]);
        assert_eq!(
            read_in(1 << 20, "gzip", &wire, 4096).await.unwrap().len(),
            1 << 20
        );
        let resp = BodyError::TooLargeDecoded("gzip").response(&limits(1 << 20));
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn damaged_truncated_or_trailing_data_is_corrupt() {
        let text = b"{\"a\":\"some text that compresses\"}".repeat(20);
        let gz = gzip(&text);
        let z = zlib(&text);
        let raw = raw_deflate(&text);
        let mut damaged = gz.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0xff;
        let mut trailing = z.clone();
        trailing.extend_from_slice(b"junk");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("gzip", gz[..gz.len() - 4].to_vec(), "gzip"),
            ("gzip", damaged, "gzip"),
            ("gzip", text.clone(), "gzip"),
            ("gzip", Vec::new(), "gzip"),
            ("deflate", z[..z.len() / 2].to_vec(), "deflate"),
            ("deflate", raw[..raw.len() - 3].to_vec(), "deflate"),
            ("deflate", trailing, "deflate"),
            ("deflate", b"{".to_vec(), "deflate"),
        ];
        for (coding, wire, name) in cases {
            assert_eq!(
                read_in(1 << 20, coding, &wire, 5).await,
                Err(BodyError::Corrupt(name)),
                "{coding} {:?}",
                &wire[..wire.len().min(8)]
            );
        }
    }

    #[tokio::test]
    async fn unknown_or_stacked_codings_are_refused_before_reading() {
        for coding in ["br", "gzip, gzip", "gzip, deflate", "compress", "zstd"] {
            assert_eq!(
                read_in(100, coding, b"{}", 1).await,
                Err(BodyError::Encoding),
                "{coding}"
            );
        }
        let resp = BodyError::Encoding.response(&limits(100));
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(resp.headers()[ACCEPT_ENCODING], "identity, gzip, deflate");
    }

    #[tokio::test]
    async fn the_wire_limit_holds_for_encoded_bodies_too() {
        let mut x = 0x2545_f491_u32;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let wire = gzip(&noise);
        assert!(wire.len() > 1000);
        assert_eq!(
            read_in(1000, "gzip", &wire, 100).await,
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn zlib_headers_are_told_from_raw_deflate() {
        let z = zlib(b"x");
        assert!(is_zlib_header(z[0], z[1]));
        let raw = raw_deflate(b"x");
        assert!(!is_zlib_header(raw[0], raw[1]));
    }
}
