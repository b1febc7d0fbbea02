//! Amazon SNS message signatures, checked on `POST /integrations/cloudwatch_sns/...` after the
//! body is read and before the format parses it (`[integrations.cloudwatch_sns]`
//! `verify_signatures = true`, the default; `topic_arns` limits the topics taken).
//!
//! What is checked, in order, on the raw body (read here with serde_json: the parser later
//! rewrites the buffer in place):
//! 1. The body is a JSON object; a signed field given twice or not as a string is refused
//!    (`400`).
//! 2. `TopicArn` is in `topic_arns`, when that list is set (`403`, reason `sns_topic`). This is
//!    checked even with `verify_signatures = false`.
//! 3. `Type` is `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation` (a
//!    body without one, raw message delivery, carries no signature and is refused);
//!    `SignatureVersion` is `"1"` (SHA1withRSA) or `"2"` (SHA256withRSA), and at least
//!    `min_signature_version` (`403`, `sns_signature`).
//! 4. `SigningCertURL` is `https://sns.<region>.amazonaws.com/...pem` (or `.amazonaws.com.cn`
//!    for the `aws-cn` partition), with no port, user info, query or fragment, in the region of
//!    `TopicArn`; any other URL is never fetched (`403`, `sns_cert_url`).
//! 5. The certificate is fetched over HTTPS, the SNS host verified against the system's CA
//!    store, and cached (`certs`); a fetch that fails is answered `503` with `Retry-After`
//!    (SNS retries 5xx, so the message is not lost; `sns_cert_unavailable`).
//! 6. The certificate parses as X.509 and `now` is within its validity period. Its chain is
//!    not built: AWS publishes no CA for SNS signing certificates, and the trust in it comes
//!    from where it was fetched (TLS to the SNS host), as AWS's own validators do.
//! 7. `Signature` (base64) verifies, with the certificate's RSA key, over AWS's string to sign:
//!    `Name\nValue\n` for each signed field present, in byte order of the names
//!    ([`NOTIFICATION`], [`CONFIRMATION`]) (`403`, `sns_signature`).
//!
//! Every field the parser reads from the envelope is signed. Refusals are logged at debug
//! level with the reason and the `SigningCertURL`; the signature itself never is.

pub(crate) mod certs;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;

use http::{Response, StatusCode};
use rustls::pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use crate::clock::Clock;
use crate::ingest::confirm::SystemTls;
use crate::ingest::integrations::cloudwatch_sns::{
    arn_partition_region, sns_url_region, SnsSettings,
};
use crate::ingest::integrations::{self, IntegrationError};
use crate::ingest::response::{self, Body};
use crate::integration::Integration;
use crate::recording::decode_base64;
use crate::time::UnixMillis;

use certs::{CertError, Certs};

const KIND: Integration = Integration::CloudwatchSns;

/// The fields a `Notification`'s signature covers, in the order they are signed.
pub const NOTIFICATION: &[&str] = &[
    "Message",
    "MessageId",
    "Subject",
    "Timestamp",
    "TopicArn",
    "Type",
];

/// The fields a `SubscriptionConfirmation`'s or `UnsubscribeConfirmation`'s signature covers.
pub const CONFIRMATION: &[&str] = &[
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
];

/// Every envelope field read here: the signed ones and the signature's own.
const FIELDS: [&str; 11] = [
    "Message",
    "MessageId",
    "Subject",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
];

/// Why a message was refused; each names the field at fault.
#[derive(Debug, PartialEq, Eq)]
pub enum SnsRefusal {
    /// Not an SNS envelope that can be read (`400`, as the parser would answer).
    Invalid(IntegrationError),
    /// `TopicArn` missing or not in `topic_arns` (`403`).
    Topic(String),
    /// `SigningCertURL` is not an SNS certificate URL; it was not fetched (`403`).
    CertUrl(String),
    /// No signature, an unsupported one, an unusable certificate, or a signature that does not
    /// verify (`403`).
    Signature(String),
    /// The certificate could not be fetched now (`503` with `Retry-After`).
    Unavailable(String),
}

impl fmt::Display for SnsRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnsRefusal::Invalid(e) => write!(f, "{e}"),
            SnsRefusal::Topic(m)
            | SnsRefusal::CertUrl(m)
            | SnsRefusal::Signature(m)
            | SnsRefusal::Unavailable(m) => f.write_str(m),
        }
    }
}

impl SnsRefusal {
    /// The `reason` label of `sluice_events_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            SnsRefusal::Invalid(e) => e.reason(),
            SnsRefusal::Topic(_) => "sns_topic",
            SnsRefusal::CertUrl(_) => "sns_cert_url",
            SnsRefusal::Signature(_) => "sns_signature",
            SnsRefusal::Unavailable(_) => "sns_cert_unavailable",
        }
    }

    /// The answer: `400`, `403` naming the problem, or `503` with `Retry-After`.
    pub fn response(&self) -> Response<Body> {
        let name = KIND.as_str();
        match self {
            SnsRefusal::Invalid(e) => integrations::refused(e),
            SnsRefusal::Unavailable(m) => response::unavailable(&format!(
                "{name}: the SNS signing certificate could not be fetched ({m}); retry after \
                 the given seconds"
            )),
            SnsRefusal::Topic(m) | SnsRefusal::CertUrl(m) | SnsRefusal::Signature(m) => {
                response::error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    &format!("{name}: {m}"),
                    &[],
                )
            }
        }
    }
}

/// The envelope's fields as read from the raw body.
#[derive(Default)]
pub(crate) struct Envelope {
    values: [Option<String>; FIELDS.len()],
    seen: [bool; FIELDS.len()],
    /// The first problem met (a field twice, a field not a string).
    problem: Option<String>,
}

impl Envelope {
    pub(crate) fn read(body: &[u8]) -> Result<Envelope, SnsRefusal> {
        let mut env: Envelope = serde_json::from_slice(body).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "body is not a JSON object",
                _ => "body is not valid JSON",
            };
            SnsRefusal::Invalid(IntegrationError::Malformed { kind: KIND, what })
        })?;
        match env.problem.take() {
            Some(problem) => Err(invalid(problem)),
            None => Ok(env),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        let i = FIELDS.iter().position(|f| *f == name)?;
        self.values[i].as_deref()
    }
}

fn invalid(problem: String) -> SnsRefusal {
    SnsRefusal::Invalid(IntegrationError::Invalid {
        kind: KIND,
        problems: vec![problem],
    })
}

impl<'de> de::Deserialize<'de> for Envelope {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SNS message (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut env = Envelope::default();
        while let Some(key) = map.next_key::<String>()? {
            let Some(i) = FIELDS.iter().position(|f| *f == key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value::<serde_json::Value>()?;
            if env.problem.is_some() {
                continue;
            }
            if std::mem::replace(&mut env.seen[i], true) {
                env.problem = Some(format!("'{key}' appears more than once"));
                continue;
            }
            match value {
                serde_json::Value::String(s) => env.values[i] = Some(s),
                serde_json::Value::Null => {}
                _ => env.problem = Some(format!("'{key}' must be a string")),
            }
        }
        Ok(env)
    }
}

/// AWS's string to sign: `Name\nValue\n` for each of `signed` present in the envelope.
pub(crate) fn string_to_sign(env: &Envelope, signed: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in signed {
        if let Some(value) = env.get(name) {
            for part in [name.as_bytes(), b"\n", value.as_bytes(), b"\n"] {
                out.extend_from_slice(part);
            }
        }
    }
    out
}

/// The region of a `SigningCertURL` SNS may use for `topic` (an ARN): `None` when the URL is
/// anything else (another host, http, a port, user info, a query, not a `.pem` path, another
/// region or partition than the topic's).
pub fn cert_url_region<'u>(url: &'u str, topic: &str) -> Option<&'u str> {
    let region = sns_url_region(url)?;
    let rest = url.strip_prefix("https://")?;
    let (host, path) = rest.split_at(rest.find(['/', '?', '#'])?);
    let path_ok = path.starts_with('/')
        && path.len() > "/.pem".len()
        && path.ends_with(".pem")
        && !path.contains(['?', '#', '\\'])
        && url.parse::<http::Uri>().is_ok();
    let (partition, topic_region) = arn_partition_region(topic)?;
    let partition_ok = (partition == "aws-cn") == host.ends_with(".amazonaws.com.cn");
    (path_ok && partition_ok && region == topic_region).then_some(region)
}

/// `SignatureVersion` 1: RSA PKCS#1 v1.5 with SHA-1, keys of 2048 to 8192 bits.
#[derive(Debug)]
struct RsaPkcs1Sha1;

/// `sha1WithRSAEncryption` (1.2.840.113549.1.1.5) with NULL parameters, as DER contents.
const SHA1_WITH_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
];

impl SignatureVerificationAlgorithm for RsaPkcs1Sha1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SHA1_WITH_RSA)
    }
}

/// Checks CloudWatch-via-SNS messages before they are parsed; one per server.
pub struct SnsVerifier {
    verify_signatures: bool,
    min_signature_version: u8,
    topic_arns: Option<BTreeSet<String>>,
    certs: Certs,
}

impl SnsVerifier {
    /// The verifier `settings` ask for, trusting the system's CA store (loaded in the
    /// background when called inside a runtime); `None` when there is nothing to check
    /// (`verify_signatures = false` and no `topic_arns`).
    pub fn from_settings(settings: &SnsSettings) -> Option<SnsVerifier> {
        let tls = SystemTls::default();
        if settings.verify_signatures && tokio::runtime::Handle::try_current().is_ok() {
            let warm = tls.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = warm.get() {
                    tracing::warn!(
                        error = %e,
                        "SNS signing certificates cannot be fetched: no CA certificates; \
                         CloudWatch-via-SNS messages will be answered 503"
                    );
                }
            });
        }
        SnsVerifier::with_tls(settings, tls)
    }

    /// [`SnsVerifier::from_settings`] with the given TLS trust.
    pub fn with_tls(settings: &SnsSettings, tls: SystemTls) -> Option<SnsVerifier> {
        (settings.verify_signatures || settings.topic_arns.is_some()).then(|| SnsVerifier {
            verify_signatures: settings.verify_signatures,
            min_signature_version: settings.min_signature_version,
            topic_arns: settings.topic_arns.clone(),
            certs: Certs::new(tls, settings.resolve.clone()),
        })
    }

    /// Checks `body` (the raw request body) as the module doc says, at the wall-clock time.
    pub async fn verify(&self, body: &[u8]) -> Result<(), SnsRefusal> {
        self.verify_at(body, Clock::system().now()).await
    }

    /// [`SnsVerifier::verify`] with the certificate's validity checked at `now`.
    pub async fn verify_at(&self, body: &[u8], now: UnixMillis) -> Result<(), SnsRefusal> {
        let outcome = match Envelope::read(body) {
            Ok(env) => self.check(&env, now).await.map_err(|e| (e, env)),
            Err(e) => Err((e, Envelope::default())),
        };
        outcome.map_err(|(refusal, env)| {
            tracing::debug!(
                integration = KIND.as_str(),
                reason = refusal.reason(),
                cert_url = env.get("SigningCertURL"),
                problem = %refusal,
                "SNS message refused"
            );
            refusal
        })
    }

    async fn check(&self, env: &Envelope, now: UnixMillis) -> Result<(), SnsRefusal> {
        let topic = env.get("TopicArn");
        if let Some(topics) = &self.topic_arns {
            match topic {
                Some(t) if topics.contains(t) => {}
                Some(_) => {
                    return Err(SnsRefusal::Topic(
                        "'TopicArn' is not in integrations.cloudwatch_sns.topic_arns".into(),
                    ))
                }
                None => {
                    return Err(SnsRefusal::Topic(
                        "'TopicArn' is missing (raw message delivery?): integrations.\
                         cloudwatch_sns.topic_arns lists the topics taken"
                            .into(),
                    ))
                }
            }
        }
        if !self.verify_signatures {
            return Ok(());
        }
        let signature_problem = |m: &str| SnsRefusal::Signature(m.to_string());
        let signed = match env.get("Type") {
            Some("Notification") => NOTIFICATION,
            Some("SubscriptionConfirmation" | "UnsubscribeConfirmation") => CONFIRMATION,
            Some(other) => {
                return Err(invalid(format!(
                    "'Type' {other:?} is not Notification, SubscriptionConfirmation or \
                     UnsubscribeConfirmation"
                )))
            }
            None => {
                return Err(signature_problem(
                    "'Type' is missing: an unsigned body (raw message delivery) cannot be \
                     verified; turn raw message delivery off for this subscription",
                ))
            }
        };
        let algorithm: &dyn SignatureVerificationAlgorithm = match env.get("SignatureVersion") {
            Some("1") if self.min_signature_version <= 1 => &RsaPkcs1Sha1,
            Some("2") => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
            Some("1") => {
                return Err(signature_problem(
                    "'SignatureVersion' 1 (SHA1withRSA) is below integrations.cloudwatch_sns.\
                     min_signature_version 2",
                ))
            }
            Some(other) => {
                return Err(SnsRefusal::Signature(format!(
                    "'SignatureVersion' {other:?} is not 1 (SHA1withRSA) or 2 (SHA256withRSA)"
                )))
            }
            None => return Err(signature_problem("'SignatureVersion' is missing")),
        };
        let url = env
            .get("SigningCertURL")
            .ok_or_else(|| signature_problem("'SigningCertURL' is missing"))?;
        if cert_url_region(url, topic.unwrap_or_default()).is_none() {
            return Err(SnsRefusal::CertUrl(
                "'SigningCertURL' is not an https URL of a .pem file on \
                 sns.<region>.amazonaws.com in the region of 'TopicArn': refused, not fetched"
                    .into(),
            ));
        }
        let signature = env
            .get("Signature")
            .and_then(decode_base64)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| signature_problem("'Signature' is missing or not base64"))?;
        let cert = self.certs.get(url).await.map_err(|e| match e {
            CertError::Unavailable(m) => SnsRefusal::Unavailable(m),
            CertError::Unusable(m) => SnsRefusal::Signature(m),
        })?;
        cert.check_time(now).map_err(SnsRefusal::Signature)?;
        let verified = webpki::EndEntityCert::try_from(&cert.der)
            .ok()
            .and_then(|ee| {
                ee.verify_signature(algorithm, &string_to_sign(env, signed), &signature)
                    .ok()
            });
        verified.ok_or_else(|| {
            signature_problem(
                "'Signature' does not verify with the certificate at 'SigningCertURL' (a \
                 message changed after signing, or signed with another key)",
            )
        })
    }
}
