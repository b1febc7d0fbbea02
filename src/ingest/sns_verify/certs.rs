//! SNS signing certificates: fetched over HTTPS from the SNS host that `SigningCertURL` names
//! (the system's CA store verifies that host, as for subscription confirmations; no redirect
//! followed, [`confirm::TIMEOUT`] and [`confirm::MAX_BODY`] bound the exchange), read from PEM,
//! and kept by URL: at most [`CACHE_ENTRIES`] certificates, each for [`CACHE_TTL`].
//! Concurrent first requests for one URL share one fetch; at most [`MAX_FETCHES`] fetches run
//! at once (past that the message is answered 503 and SNS retries it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::{OnceCell, Semaphore};

use crate::ingest::confirm::{self, Resolve, SystemTls};
use crate::time::{parse_timestamp, Timestamp, UnixMillis};

/// Certificates kept at once.
pub const CACHE_ENTRIES: usize = 64;
/// How long a fetched certificate is used before it is fetched again.
pub const CACHE_TTL: Duration = Duration::from_secs(3600);
/// Certificate fetches under way at once.
pub const MAX_FETCHES: usize = 4;

/// A signing certificate as fetched.
#[derive(Debug)]
pub struct SigningCert {
    pub der: CertificateDer<'static>,
    pub not_before: UnixMillis,
    pub not_after: UnixMillis,
    fetched: Instant,
}

impl SigningCert {
    /// Reads the first certificate of a PEM document and its validity period.
    pub fn from_pem(pem: &[u8]) -> Result<SigningCert, String> {
        let der = CertificateDer::from_pem_slice(pem)
            .map_err(|_| "the document at 'SigningCertURL' holds no PEM certificate".to_string())?;
        webpki::EndEntityCert::try_from(&der).map_err(|e| {
            format!("the certificate at 'SigningCertURL' is not a valid X.509 certificate ({e})")
        })?;
        let (not_before, not_after) = validity(&der).ok_or_else(|| {
            "the certificate at 'SigningCertURL' has no readable validity period".to_string()
        })?;
        Ok(SigningCert {
            der,
            not_before,
            not_after,
            fetched: Instant::now(),
        })
    }

    /// Whether `now` is within the validity period; why not when it is not.
    pub fn check_time(&self, now: UnixMillis) -> Result<(), String> {
        if now < self.not_before {
            Err(format!(
                "the certificate at 'SigningCertURL' is not valid before {}",
                self.not_before
            ))
        } else if now > self.not_after {
            Err(format!(
                "the certificate at 'SigningCertURL' expired at {}",
                self.not_after
            ))
        } else {
            Ok(())
        }
    }
}

/// Why no certificate came back.
#[derive(Debug, PartialEq, Eq)]
pub enum CertError {
    /// Worth retrying: the host could not be reached, answered 5xx, or too many fetches ran.
    Unavailable(String),
    /// Not worth retrying: the URL names no certificate (4xx), or what came back is none.
    Unusable(String),
}

struct Slot {
    /// Insertion order: the lowest is the oldest.
    inserted: u64,
    cert: OnceCell<Arc<SigningCert>>,
}

#[derive(Default)]
struct Slots {
    by_url: HashMap<String, Arc<Slot>>,
    inserted: u64,
}

/// The certificates by URL, and how to fetch more.
pub struct Certs {
    slots: Mutex<Slots>,
    tls: SystemTls,
    resolve: Resolve,
    fetches: Semaphore,
}

impl Certs {
    pub fn new(tls: SystemTls, resolve: Resolve) -> Certs {
        Certs {
            slots: Mutex::new(Slots::default()),
            tls,
            resolve,
            fetches: Semaphore::new(MAX_FETCHES),
        }
    }

    /// The certificate at `url` (a URL the caller checked), from the cache or fetched.
    pub async fn get(&self, url: &str) -> Result<Arc<SigningCert>, CertError> {
        let slot = self.slot(url);
        slot.cert
            .get_or_try_init(|| self.fetch(url))
            .await
            .map(Arc::clone)
    }

    /// The slot of `url`: its cached one while fresh, else a new one (the oldest slot makes
    /// room when the cache is full).
    fn slot(&self, url: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |s: &Slot| s.cert.get().is_none_or(|c| c.fetched.elapsed() < CACHE_TTL);
        if let Some(slot) = slots.by_url.get(url).filter(|s| fresh(s)) {
            return Arc::clone(slot);
        }
        slots.by_url.retain(|_, s| fresh(s));
        if slots.by_url.len() >= CACHE_ENTRIES {
            if let Some(oldest) = slots
                .by_url
                .iter()
                .min_by_key(|(_, s)| s.inserted)
                .map(|(k, _)| k.clone())
            {
                slots.by_url.remove(&oldest);
            }
        }
        slots.inserted += 1;
        let slot = Arc::new(Slot {
            inserted: slots.inserted,
            cert: OnceCell::new(),
        });
        slots.by_url.insert(url.to_string(), Arc::clone(&slot));
        slot
    }

    #[cfg(test)]
    pub fn insert(&self, url: &str, cert: SigningCert) {
        let slot = self.slot(url);
        let _ = slot.cert.set(Arc::new(cert));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap().by_url.len()
    }

    async fn fetch(&self, url: &str) -> Result<Arc<SigningCert>, CertError> {
        let unavailable = |what: String| CertError::Unavailable(what);
        let _permit = self.fetches.try_acquire().map_err(|_| {
            unavailable(format!(
                "{MAX_FETCHES} signing certificates are being fetched already"
            ))
        })?;
        let tls = self.tls.clone();
        let tls = tokio::task::spawn_blocking(move || tls.get())
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(|e| unavailable(format!("no CA certificates to verify SNS with: {e}")))?;
        tracing::debug!(cert_url = url, "fetching an SNS signing certificate");
        let (status, body) = confirm::fetch_via(url, &tls, confirm::TIMEOUT, &self.resolve)
            .await
            .map_err(|e| unavailable(format!("fetching 'SigningCertURL' failed: {e}")))?;
        match status.as_u16() {
            200 => SigningCert::from_pem(&body)
                .map(Arc::new)
                .map_err(CertError::Unusable),
            400..=499 => Err(CertError::Unusable(format!(
                "'SigningCertURL' answered {status}: no certificate there"
            ))),
            _ => Err(unavailable(format!("'SigningCertURL' answered {status}"))),
        }
    }
}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `notBefore` and `notAfter` of an X.509 certificate.
pub fn validity(der: &[u8]) -> Option<(UnixMillis, UnixMillis)> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // [0] version (optional), serialNumber, signature, issuer: skipped.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, validity, _) = element(rest)? else {
        return None;
    };
    let (tag, not_before, rest) = element(validity)?;
    let not_before = asn1_time(tag, not_before)?;
    let (tag, not_after, _) = element(rest)?;
    Some((not_before, asn1_time(tag, not_after)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950-2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn asn1_time(tag: u8, value: &[u8]) -> Option<UnixMillis> {
    let text = std::str::from_utf8(value).ok()?;
    let full = match (tag, text.len()) {
        (0x17, 13) => {
            let yy: u32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy < 50 { "20" } else { "19" })
        }
        (0x18, 15) => text.to_string(),
        _ => return None,
    };
    let b = full.as_bytes();
    if b[14] != b'Z' || !b[..14].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    );
    match parse_timestamp(&iso)? {
        Timestamp::At(at) => Some(at),
        Timestamp::Unset => Some(UnixMillis(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times_read_in_both_forms() {
        let at = |tag, s: &str| asn1_time(tag, s.as_bytes());
        assert_eq!(
            at(0x17, "240502093110Z").unwrap().to_string(),
            "2024-05-02T09:31:10.000Z"
        );
        assert_eq!(
            at(0x17, "991231235959Z").unwrap().to_string(),
            "1999-12-31T23:59:59.000Z"
        );
        assert_eq!(
            at(0x18, "20491231235959Z").unwrap().to_string(),
            "2049-12-31T23:59:59.000Z"
        );
        assert_eq!(
            at(0x18, "99991231235959Z").unwrap().to_string(),
            "9999-12-31T23:59:59.000Z"
        );
        for (tag, bad) in [
            (0x17, "2405020931Z"),
            (0x17, "240502093110+0100"),
            (0x18, "240502093110Z"),
            (0x18, "2024050209311aZ"),
            (0x17, "241302093110Z"),
            (0x0c, "240502093110Z"),
        ] {
            assert_eq!(at(tag, bad), None, "{bad}");
        }
    }

    #[test]
    fn der_elements_need_their_whole_length() {
        assert_eq!(
            element(&[0x30, 0x02, 1, 2, 9]),
            Some((0x30, &[1u8, 2][..], &[9u8][..]))
        );
        assert_eq!(
            element(&[0x30, 0x81, 0x02, 1, 2]),
            Some((0x30, &[1u8, 2][..], &[][..]))
        );
        assert_eq!(element(&[0x30, 0x03, 1, 2]), None);
        assert_eq!(element(&[0x30, 0x80, 1, 2]), None, "indefinite length");
        assert_eq!(element(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(element(&[0x30]), None);
        assert_eq!(validity(&[0x30, 0x00]), None);
        assert_eq!(validity(b"not DER at all"), None);
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest() {
        let certs = Certs::new(SystemTls::default(), Resolve::new());
        for i in 0..CACHE_ENTRIES + 10 {
            certs.slot(&format!("https://sns.eu-west-1.amazonaws.com/{i}.pem"));
        }
        assert_eq!(certs.len(), CACHE_ENTRIES);
        let slots = &certs.slots.lock().unwrap().by_url;
        assert!(!slots.contains_key("https://sns.eu-west-1.amazonaws.com/0.pem"));
        assert!(!slots.contains_key("https://sns.eu-west-1.amazonaws.com/9.pem"));
        assert!(slots.contains_key("https://sns.eu-west-1.amazonaws.com/10.pem"));
        assert!(slots.contains_key(&format!(
            "https://sns.eu-west-1.amazonaws.com/{}.pem",
            CACHE_ENTRIES + 9
        )));
    }
}
