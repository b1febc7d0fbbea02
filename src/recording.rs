//! The request recording format: what `sluice serve --record` writes and `sluice replay`
//! reads, one JSON object per line, in arrival order:
//!
//! ```json
//! {"v":1,"at":"<RFC 3339>","path":"/v2/enqueue","headers":{"x-routing-key":"..."},"body":{...}}
//! ```
//!
//! - `v`: the format's version ([`VERSION`]). A line without it was written before the format
//!   had versions and reads as version 1; a line from a newer version is refused by name.
//! - `at`: when the request arrived (the gateway's clock); `path`: its path and query.
//! - `headers` (optional): every header but credentials (`Authorization`,
//!   `Proxy-Authorization`, `Cookie`), which are never written.
//! - `body` (JSON bodies, kept verbatim) or `body_b64` (anything else, standard base64).
//!
//! Raw requests, not parsed events, are recorded, so a replay also tests integration settings
//! and event rules ("what if") on real traffic. Both the writer (`ingest::record`) and the
//! reader (`replay`) use this module, which depends on neither.

use std::collections::BTreeMap;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// The version this build writes, and the newest it reads.
pub const VERSION: u32 = 1;

/// Headers never written to a recording.
const SECRET_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// One recorded request.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    #[serde(default = "first_version")]
    pub v: u32,
    pub at: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Box<serde_json::value::RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_b64: Option<String>,
}

fn first_version() -> u32 {
    1
}

impl Recorded {
    /// A request as it arrived at `at`, its credentials left out.
    pub fn new(at: String, path: &str, headers: &HeaderMap, body: &[u8]) -> Self {
        let headers: BTreeMap<String, String> = headers
            .iter()
            .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let (body, body_b64) =
            match serde_json::from_slice::<Box<serde_json::value::RawValue>>(body) {
                Ok(json) => (Some(json), None),
                Err(_) => (None, Some(encode_base64(body))),
            };
        Recorded {
            v: VERSION,
            at,
            path: path.to_string(),
            headers: (!headers.is_empty()).then_some(headers),
            body,
            body_b64,
        }
    }

    /// One line of the format (without its newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a recorded request serializes")
    }

    /// Reads one line, of this version or an older one.
    pub fn from_line(line: &str) -> Result<Recorded, String> {
        let rec: Recorded =
            serde_json::from_str(line).map_err(|e| format!("not a recorded request: {e}"))?;
        if rec.v > VERSION {
            return Err(format!(
                "recording format version {} is newer than this sluice reads ({VERSION})",
                rec.v
            ));
        }
        Ok(rec)
    }

    /// The request body as it arrived.
    pub fn body_bytes(&self) -> Result<Vec<u8>, String> {
        match (&self.body, &self.body_b64) {
            (Some(json), None) => Ok(json.get().as_bytes().to_vec()),
            (None, Some(b64)) => {
                decode_base64(b64).ok_or_else(|| "'body_b64' is not base64".into())
            }
            (None, None) => Ok(Vec::new()),
            (Some(_), Some(_)) => Err("has both 'body' and 'body_b64'".into()),
        }
    }
}

pub use crate::base64::{decode_base64, encode_base64};

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn base64_round_trips() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"\x00\xff\x10form=1&x=2",
        ] {
            let enc = encode_base64(data);
            assert_eq!(decode_base64(&enc).unwrap(), data, "{enc}");
        }
        assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode_base64(b"fo"), "Zm8=");
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn lines_carry_the_version_and_never_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        headers.insert("x-routing-key", HeaderValue::from_static("payments"));
        let rec = Recorded::new("2026-11-02T09:00:00Z".into(), "/x", &headers, b"{\"a\":1}");
        let line = rec.to_line();
        assert_eq!(
            line,
            r#"{"v":1,"at":"2026-11-02T09:00:00Z","path":"/x","headers":{"x-routing-key":"payments"},"body":{"a":1}}"#
        );
        let back = Recorded::from_line(&line).unwrap();
        assert_eq!(back.body_bytes().unwrap(), b"{\"a\":1}");
        let text = Recorded::new("t".into(), "/x", &HeaderMap::new(), b"not json");
        assert_eq!(text.body_b64.as_deref(), Some("bm90IGpzb24="));
        assert_eq!(text.body_bytes().unwrap(), b"not json");
    }

    #[test]
    fn old_lines_read_as_version_1_and_newer_ones_are_refused() {
        let old =
            Recorded::from_line(r#"{"at":"2026-11-02T09:00:00Z","path":"/v2/enqueue"}"#).unwrap();
        assert_eq!((old.v, old.body_bytes().unwrap()), (1, Vec::new()));
        let err = Recorded::from_line(r#"{"v":2,"at":"t","path":"/"}"#).unwrap_err();
        assert_eq!(
            err,
            "recording format version 2 is newer than this sluice reads (1)"
        );
        let both =
            Recorded::from_line(r#"{"at":"t","path":"/","body":1,"body_b64":"MQ=="}"#).unwrap();
        assert_eq!(
            both.body_bytes().unwrap_err(),
            "has both 'body' and 'body_b64'"
        );
    }
}
