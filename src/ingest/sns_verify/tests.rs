//! The verifier without a network: a certificate (RSA 2048, self-signed, valid from
//! 2026-12-06 to 2126-11-12) and signatures made for it with the openssl CLI over AWS's
//! string to sign, kept here without their private key; the certificate is put in the cache
//! at its URL as a fetch would.

use std::net::TcpListener;

use serde_json::{json, Value};

use super::certs::SigningCert;
use super::*;
use crate::ingest::confirm::client_config;
use crate::time::parse_timestamp;

const CERT_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDGzCCAgOgAwIBAgIUTBCLXeELD+Z3WVSWUu9eEqeCjbYwDQYJKoZIhvcNAQEL\n\
BQAwHDEaMBgGA1UEAwwRc25zLmFtYXpvbmF3cy5jb20wIBcNMjYxMjA2MTQxMTM4\n\
WhgPMjEyNjExMTIxNDExMzhaMBwxGjAYBgNVBAMMEXNucy5hbWF6b25hd3MuY29t\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4AETheCcUqR14LhNs4fX\n\
s4bYj75xN+CA9uhHa2LQZUJrSUxLorzAvBKsKx/tfMrWU5Gx+PkBbmAthQl0sFF0\n\
USnC1fwkzu+Iu5w2tVqbc4O/jG/h7Uw3ezzMPhaaleOl76yoM9HXIQdah7dtDPtW\n\
sO7Fo59oKiZt8giOOMJoyY084RtC4xa2I1OQGLjXTRJc4KQYpxbS0Is5qqknRKOi\n\
9Ae4Qtr9Bfd9KwNhNbpRGClbVEoCu61e18w/SddH+uVSG1DyKep2pg4ChXdiB1C3\n\
kA5iunXWBGcSyxAmrBhNk+GMVQzXu8gNtGLuo2z3XoYD1dkVp6Ql46YCYENnKRpO\n\
EQIDAQABo1MwUTAdBgNVHQ4EFgQUdu+16ACGJTk9EFibDhuj42MZk4IwHwYDVR0j\n\
BBgwFoAUdu+16ACGJTk9EFibDhuj42MZk4IwDwYDVR0TAQH/BAUwAwEB/zANBgkq\n\
hkiG9w0BAQsFAAOCAQEAXJqjD9j570Coa9QxZD18+qVWaN2FRbH/mJeRAKfev41O\n\
8T68Yaxkyj2dab98dT4LVKk6ATiy50QgugCz/j0BYEQwViWXuSn6c7LqcK+JiBpq\n\
CHTQ0BQlNiHzirDZNHpts832i0SXmW8MobIKlBEflhBekGMu1g+AGLkdSDI6HHnr\n\
a8uniGkDHmeet42zcwzoWAclyFNcMBK3gR3PABL503Cjpi/LY6Haka9LTLigtahC\n\
8CUrtR0YHHjEWtpPiDwHobxXKCn1fTha+KByMO5k1p8OuxgtO8MND6pAvNokgfS1\n\
poPH7TsFNiUF6SEqfbg9FTQlKSK2PVCB+9vW/pMDdQ==\n\
-----END CERTIFICATE-----\n\
";

const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";
const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:ops-alarms";

/// `NOTIFICATION`'s string to sign of [`notification`], signed with SHA1withRSA.
const NOTIFICATION_SHA1: &str = "E+gUsBuCDes/LWuAbbCF+TblJZpyvWD13Fzg2y6O90g+xwpTmGFzHxK/pynAz0BUsOaJ3bkoKHdPtaRslAnZuWhfMD/XQCZutRpWo7aytIfbowWw16hVUAQJIU8vfsRNHnhYe5OksOnPkH7AAYBoiBtj/6OgdWWolfzy5szgEujeyWJ3SroVPsKOrf1RxZs3cUCRE67ZYN26ZGeEsYZuEMfrliGPaCkTF+3caL+N70kafr4k2inFUq3PEmcv9a6LD+AETiwTJ2UENwbQ3/MzUgYBGoZ8xNF708TYwZESYrEACZ5EUUrAdmuwFRnC/DE8rHGrK4LrWYA/tSAj+wNuew==";
/// The same string signed with SHA256withRSA.
const NOTIFICATION_SHA256: &str = "zULhYCHvkqBCFbqtbdbIAReIy1OinswsSN8m0Da/4kxMizeX931W5/5t+7KBycZohmS0AUadEbsduu/1PHtJCqx1CHNuILQcXk8ENmTwkzpJWbIOgWLrti8BgBYcXVLRtCfy/OwgB03dKOitPaTywL+7oP5M4dRUZ3xLNdXZa42ueZjdvoKP1/pjQdOh5KTYCvIRKw6WvRfDombsXTbDQZaWW38HST7n486WBSQZaCI+srXDLeUfedtteLno8JbPD8t6AgtGCy4pAkv8nFyFY7X5jk5qaprA+XZO6G+6ZP81yrlaDbiTvSyLkWhU2jQYN6EE+l67pak7401ts/AcOg==";
/// `CONFIRMATION`'s string to sign of [`confirmation`], signed with SHA256withRSA.
const CONFIRMATION_SHA256: &str = "3qJKjibyBsgJanbM76uEOS3sGUHmeih+AiYMhb8oux6xVHBeDXW7Arm+nLz81d9wzMhw6+myUG1G+X5Zdwos8a+Jw1VIZxa3VZDZER09Z+7I7G0BqPDsmoS2YIoQZBebYOsimm6nzypp0psW14FtIgbm8v3DJEaPdKVLDqQjPhZzXWFinBgjYdv8benHEEiF54s2IlzXxxbAijE0iMU+HH8AZ5gbL8d9Oe3cjT0o4Ob1xUIocpXiIOb4Wr84C7eaDkH7hHurDuvyg+9u/N5/8jzyAQgVq9/BMFKI5e5+s0OeMBgru/Cv7zzbb+m2GMnrFkF+of7OT35cdjGQWt+Gmw==";

/// 2030-01-01T00:00:00Z: within the certificate's validity.
fn now() -> UnixMillis {
    at("2030-01-01T00:00:00Z")
}

fn at(iso: &str) -> UnixMillis {
    match parse_timestamp(iso) {
        Some(crate::time::Timestamp::At(t)) => t,
        _ => panic!("{iso}"),
    }
}

fn notification() -> Value {
    json!({"Type": "Notification", "MessageId": "9e7c1f3a-0c1b-5a1e-b0b5-2f0c6c3d4e5f", "TopicArn": "arn:aws:sns:us-east-1:111122223333:ops-alarms", "Subject": "ALARM: \"orders-5xx\" in US East (N. Virginia)", "Message": "{\"AlarmName\":\"orders-5xx\",\"AWSAccountId\":\"111122223333\",\"NewStateValue\":\"ALARM\",\"NewStateReason\":\"Threshold Crossed\"}", "Timestamp": "2024-05-02T09:31:10.530Z"})
}

fn confirmation() -> Value {
    json!({"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "Token": "2336412f37fb", "TopicArn": "arn:aws:sns:us-east-1:111122223333:ops-alarms", "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:111122223333:ops-alarms.\nTo confirm the subscription, visit the SubscribeURL included in this message.", "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:111122223333:ops-alarms&Token=2336412f37fb", "Timestamp": "2024-05-02T08:00:00.000Z"})
}

fn signed(mut message: Value, version: &str, signature: &str) -> Vec<u8> {
    message["SignatureVersion"] = json!(version);
    message["Signature"] = json!(signature);
    message["SigningCertURL"] = json!(CERT_URL);
    message.to_string().into_bytes()
}

fn no_roots() -> SystemTls {
    SystemTls::fixed(client_config(rustls::RootCertStore::empty()).unwrap())
}

/// A verifier of `settings` with the test certificate cached at [`CERT_URL`].
fn verifier(settings: &SnsSettings) -> SnsVerifier {
    let v = SnsVerifier::with_tls(settings, no_roots()).unwrap();
    v.certs.insert(
        CERT_URL,
        SigningCert::from_pem(CERT_PEM.as_bytes()).unwrap(),
    );
    v
}

fn listed() -> SnsSettings {
    SnsSettings {
        topic_arns: Some([TOPIC.to_string()].into()),
        ..SnsSettings::default()
    }
}

async fn refusal(v: &SnsVerifier, body: &[u8]) -> (&'static str, String) {
    let e = v.verify_at(body, now()).await.unwrap_err();
    (e.reason(), e.to_string())
}

#[test]
fn the_string_to_sign_follows_aws_layout() {
    let read = |v: Value| Envelope::read(v.to_string().as_bytes()).ok().unwrap();
    let n = read(
        json!({"Type": "Notification", "MessageId": "m-1", "TopicArn": "t",
        "Subject": "s", "Message": "line 1\nline 2", "Timestamp": "ts",
        "Signature": "x", "SignatureVersion": "1", "UnsubscribeURL": "u"}),
    );
    assert_eq!(
        String::from_utf8(string_to_sign(&n, NOTIFICATION)).unwrap(),
        "Message\nline 1\nline 2\nMessageId\nm-1\nSubject\ns\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
    );
    // Without a Subject (or with a null one) its pair is left out.
    for subject in [None, Some(Value::Null)] {
        let mut v = json!({"Type": "Notification", "MessageId": "m-1", "TopicArn": "t",
            "Message": "m", "Timestamp": "ts"});
        if let Some(s) = subject {
            v["Subject"] = s;
        }
        assert_eq!(
            String::from_utf8(string_to_sign(&read(v), NOTIFICATION)).unwrap(),
            "Message\nm\nMessageId\nm-1\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
        );
    }
    for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
        let c = read(json!({"Type": kind, "MessageId": "m-2", "Token": "tok",
            "TopicArn": "t", "Message": "m", "SubscribeURL": "https://sns/x",
            "Timestamp": "ts", "Subject": "not signed"}));
        assert_eq!(
            String::from_utf8(string_to_sign(&c, CONFIRMATION)).unwrap(),
            format!("Message\nm\nMessageId\nm-2\nSubscribeURL\nhttps://sns/x\nTimestamp\nts\nToken\ntok\nTopicArn\nt\nType\n{kind}\n")
        );
    }
}

#[tokio::test]
async fn both_signature_versions_verify() {
    let v = verifier(&listed());
    for (version, signature) in [("1", NOTIFICATION_SHA1), ("2", NOTIFICATION_SHA256)] {
        let body = signed(notification(), version, signature);
        assert_eq!(v.verify_at(&body, now()).await, Ok(()), "version {version}");
    }
    let body = signed(confirmation(), "2", CONFIRMATION_SHA256);
    assert_eq!(v.verify_at(&body, now()).await, Ok(()));
    // Fields no signature covers may change (SNS adds UnsubscribeURL, others may come).
    let mut extra = notification();
    extra["UnsubscribeURL"] = json!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe");
    let body = signed(extra, "2", NOTIFICATION_SHA256);
    assert_eq!(v.verify_at(&body, now()).await, Ok(()));
}

#[tokio::test]
async fn a_changed_message_or_a_wrong_signature_is_refused() {
    let v = verifier(&listed());
    let does_not_verify = "'Signature' does not verify with the certificate at 'SigningCertURL'";
    let mut tampered = notification();
    tampered["Message"] = json!(tampered["Message"].as_str().unwrap().replace("ALARM", "OK"));
    let mut other_subject = notification();
    other_subject["Subject"] = json!("OK");
    let mut no_subject = notification();
    no_subject.as_object_mut().unwrap().remove("Subject");
    let mut retyped = confirmation();
    retyped["Type"] = json!("UnsubscribeConfirmation");
    for (what, body) in [
        (
            "tampered Message",
            signed(tampered, "2", NOTIFICATION_SHA256),
        ),
        (
            "another Subject",
            signed(other_subject, "2", NOTIFICATION_SHA256),
        ),
        (
            "Subject removed",
            signed(no_subject, "2", NOTIFICATION_SHA256),
        ),
        (
            "SHA1 signature as version 2",
            signed(notification(), "2", NOTIFICATION_SHA1),
        ),
        (
            "SHA256 signature as version 1",
            signed(notification(), "1", NOTIFICATION_SHA256),
        ),
        (
            "another message's signature",
            signed(notification(), "2", CONFIRMATION_SHA256),
        ),
        ("Type changed", signed(retyped, "2", CONFIRMATION_SHA256)),
        ("short signature", signed(notification(), "2", "AAAA")),
    ] {
        let (reason, message) = refusal(&v, &body).await;
        assert_eq!(reason, "sns_signature", "{what}");
        assert!(message.starts_with(does_not_verify), "{what}: {message}");
    }
    for (what, signature, says) in [
        ("no signature", None, "'Signature' is missing or not base64"),
        (
            "not base64",
            Some("%%%"),
            "'Signature' is missing or not base64",
        ),
        ("empty", Some(""), "'Signature' is missing or not base64"),
    ] {
        let mut m = notification();
        m["SignatureVersion"] = json!("2");
        m["SigningCertURL"] = json!(CERT_URL);
        if let Some(s) = signature {
            m["Signature"] = json!(s);
        }
        let (reason, message) = refusal(&v, m.to_string().as_bytes()).await;
        assert_eq!(
            (reason, message.as_str()),
            ("sns_signature", says),
            "{what}"
        );
    }
}

#[tokio::test]
async fn versions_other_than_1_and_2_and_below_the_minimum_are_refused() {
    let v = verifier(&listed());
    for (version, says) in [
        (
            Some("3"),
            "'SignatureVersion' \"3\" is not 1 (SHA1withRSA) or 2 (SHA256withRSA)",
        ),
        (
            Some("0"),
            "'SignatureVersion' \"0\" is not 1 (SHA1withRSA) or 2 (SHA256withRSA)",
        ),
        (None, "'SignatureVersion' is missing"),
    ] {
        let mut m = notification();
        m["Signature"] = json!(NOTIFICATION_SHA256);
        m["SigningCertURL"] = json!(CERT_URL);
        if let Some(version) = version {
            m["SignatureVersion"] = json!(version);
        }
        let (reason, message) = refusal(&v, m.to_string().as_bytes()).await;
        assert_eq!((reason, message.as_str()), ("sns_signature", says));
    }
    let strict = verifier(&SnsSettings {
        min_signature_version: 2,
        ..listed()
    });
    let (reason, message) = refusal(&strict, &signed(notification(), "1", NOTIFICATION_SHA1)).await;
    assert_eq!(reason, "sns_signature");
    assert!(message.contains("below integrations.cloudwatch_sns.min_signature_version 2"));
    let body = signed(notification(), "2", NOTIFICATION_SHA256);
    assert_eq!(strict.verify_at(&body, now()).await, Ok(()));
}

#[tokio::test]
async fn topics_off_the_list_are_refused_before_anything_is_fetched() {
    let v = verifier(&listed());
    let mut other = notification();
    other["TopicArn"] = json!("arn:aws:sns:us-east-1:111122223333:someone-elses");
    let (reason, message) = refusal(&v, &signed(other, "2", NOTIFICATION_SHA256)).await;
    assert_eq!(reason, "sns_topic");
    assert_eq!(
        message,
        "'TopicArn' is not in integrations.cloudwatch_sns.topic_arns"
    );
    // Raw message delivery: no TopicArn (and no signature).
    let raw = br#"{"AlarmName":"a","AWSAccountId":"1","NewStateValue":"ALARM"}"#;
    assert_eq!(refusal(&v, raw).await.0, "sns_topic");
    // Without a list any topic is taken; raw delivery is still refused: nothing to verify.
    let any = verifier(&SnsSettings::default());
    let mut other = notification();
    other["TopicArn"] = json!("arn:aws:sns:us-east-1:111122223333:someone-elses");
    assert_eq!(
        refusal(&any, &signed(other, "2", NOTIFICATION_SHA256))
            .await
            .0,
        "sns_signature",
        "another topic is taken, and its signature then checked"
    );
    let (reason, message) = refusal(&any, raw).await;
    assert_eq!(reason, "sns_signature");
    assert!(
        message.starts_with("'Type' is missing: an unsigned body"),
        "{message}"
    );
    // Signatures off: the list still applies, nothing else is checked.
    let unsigned = SnsSettings {
        verify_signatures: false,
        ..listed()
    };
    let v = verifier(&unsigned);
    assert_eq!(
        v.verify_at(notification().to_string().as_bytes(), now())
            .await,
        Ok(())
    );
    assert_eq!(refusal(&v, raw).await.0, "sns_topic");
    let off = SnsSettings {
        verify_signatures: false,
        ..SnsSettings::default()
    };
    assert!(
        SnsVerifier::with_tls(&off, no_roots()).is_none(),
        "nothing to check"
    );
}

#[test]
fn only_https_pem_urls_on_the_topic_region_sns_host_are_fetched() {
    let us = TOPIC;
    let cn = "arn:aws-cn:sns:cn-north-1:111122223333:ops";
    for (url, topic, want) in [
        (CERT_URL, us, Some("us-east-1")),
        (
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
            cn,
            Some("cn-north-1"),
        ),
        (
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
            us,
            None,
        ),
        (
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
            us,
            None,
        ),
        (
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
            "arn:aws:sns:eu-west-1:1:t",
            None,
        ),
        (
            "https://sns.cn-north-1.amazonaws.com/SimpleNotificationService-x.pem",
            cn,
            None,
        ),
        (
            "https://sns.us-east-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
            us,
            None,
        ),
        (
            "https://evil.example/SimpleNotificationService-x.pem",
            us,
            None,
        ),
        (
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            us,
            None,
        ),
        (
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            us,
            None,
        ),
        ("https://sns.us-east-1.amazonaws.com:8443/x.pem", us, None),
        ("https://user@sns.us-east-1.amazonaws.com/x.pem", us, None),
        ("https://sns.us-east-1.amazonaws.com/x.pem?x=1", us, None),
        ("https://sns.us-east-1.amazonaws.com?x=/y.pem", us, None),
        ("https://sns.us-east-1.amazonaws.com/x.pem#f", us, None),
        ("https://sns.us-east-1.amazonaws.com/x.crt", us, None),
        ("https://sns.us-east-1.amazonaws.com/.pem", us, None),
        ("https://sns.us-east-1.amazonaws.com/a b.pem", us, None),
        ("https://sns.us-east-1.amazonaws.com/a\\b.pem", us, None),
        ("https://sns.us-east-1.amazonaws.com", us, None),
        (CERT_URL, "", None),
        (CERT_URL, "not an arn", None),
    ] {
        assert_eq!(cert_url_region(url, topic), want, "{url} for {topic:?}");
    }
}

#[tokio::test]
async fn a_foreign_cert_url_is_refused_by_name() {
    let v = verifier(&listed());
    for url in [
        "https://evil.example/SimpleNotificationService-test.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
    ] {
        let mut m = notification();
        m["SignatureVersion"] = json!("2");
        m["Signature"] = json!(NOTIFICATION_SHA256);
        m["SigningCertURL"] = json!(url);
        let (reason, message) = refusal(&v, m.to_string().as_bytes()).await;
        assert_eq!(reason, "sns_cert_url", "{url}");
        assert!(message.ends_with("refused, not fetched"), "{message}");
    }
    // Missing: nothing to fetch.
    let mut m = notification();
    m["SignatureVersion"] = json!("2");
    m["Signature"] = json!(NOTIFICATION_SHA256);
    assert_eq!(
        refusal(&v, m.to_string().as_bytes()).await,
        ("sns_signature", "'SigningCertURL' is missing".to_string())
    );
}

#[tokio::test]
async fn the_certificate_must_be_valid_now() {
    let v = verifier(&listed());
    let body = signed(notification(), "2", NOTIFICATION_SHA256);
    let before = v
        .verify_at(&body, at("2026-12-06T14:11:37Z"))
        .await
        .unwrap_err();
    assert_eq!(
        before.to_string(),
        "the certificate at 'SigningCertURL' is not valid before 2026-12-06T14:11:38.000Z"
    );
    let after = v
        .verify_at(&body, at("2126-11-12T14:11:39Z"))
        .await
        .unwrap_err();
    assert_eq!(
        after.to_string(),
        "the certificate at 'SigningCertURL' expired at 2126-11-12T14:11:38.000Z"
    );
    assert_eq!(after.reason(), "sns_signature");
    assert_eq!(v.verify_at(&body, at("2126-11-12T14:11:38Z")).await, Ok(()));
    let cert = SigningCert::from_pem(CERT_PEM.as_bytes()).unwrap();
    assert_eq!(cert.not_before, at("2026-12-06T14:11:38Z"), "UTCTime");
    assert_eq!(
        cert.not_after,
        at("2126-11-12T14:11:38Z"),
        "GeneralizedTime"
    );
    for bad in [
        &b""[..],
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"<html>",
    ] {
        assert!(SigningCert::from_pem(bad).is_err());
    }
}

#[tokio::test]
async fn bodies_that_are_not_envelopes_are_refused_as_invalid() {
    let v = verifier(&listed());
    for (body, status, says) in [
        (
            &b"not json"[..],
            400,
            "cloudwatch_sns: body is not valid JSON",
        ),
        (b"[1, 2]", 400, "cloudwatch_sns: body is not a JSON object"),
        (
            b"{\"Type\": \"Notification\"} trailing",
            400,
            "cloudwatch_sns: body is not valid JSON",
        ),
        (
            b"{\"Message\": \"a\", \"Message\": \"b\"}",
            400,
            "cloudwatch_sns: 'Message' appears more than once",
        ),
        (
            b"{\"TopicArn\": 7}",
            400,
            "cloudwatch_sns: 'TopicArn' must be a string",
        ),
    ] {
        let e = v.verify_at(body, now()).await.unwrap_err();
        assert_eq!(e.to_string(), says);
        assert_eq!(e.response().status(), status);
    }
    let mut m = notification();
    m["Type"] = json!("Bogus");
    let e = v
        .verify_at(m.to_string().as_bytes(), now())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cloudwatch_sns: 'Type' \"Bogus\" is not Notification, SubscriptionConfirmation or UnsubscribeConfirmation"
    );
    assert_eq!(e.reason(), "invalid");
}

#[tokio::test]
async fn an_unreachable_certificate_host_answers_503_to_retry() {
    // A port nothing listens on, standing in for sns.us-east-1.amazonaws.com.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = SnsSettings {
        resolve: [("sns.us-east-1.amazonaws.com".to_string(), closed)].into(),
        ..listed()
    };
    let v = SnsVerifier::with_tls(&settings, no_roots()).unwrap();
    let url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-other.pem";
    let mut m = notification();
    m["SignatureVersion"] = json!("2");
    m["Signature"] = json!(NOTIFICATION_SHA256);
    m["SigningCertURL"] = json!(url);
    let e = v
        .verify_at(m.to_string().as_bytes(), now())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "sns_cert_unavailable");
    assert!(
        e.to_string()
            .starts_with("fetching 'SigningCertURL' failed: connect"),
        "{e}"
    );
    let resp = e.response();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key(http::header::RETRY_AFTER));
}

#[test]
fn refusals_answer_403_naming_the_field() {
    for refusal in [
        SnsRefusal::Topic("'TopicArn' is not in integrations.cloudwatch_sns.topic_arns".into()),
        SnsRefusal::CertUrl("'SigningCertURL' is not ...".into()),
        SnsRefusal::Signature("'Signature' does not verify".into()),
    ] {
        let resp = refusal.response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body = full_body(resp);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["message"], format!("cloudwatch_sns: {refusal}"));
        assert_eq!(body["status"], "forbidden");
    }
}

/// The bytes of an in-memory (`Full`) response body.
fn full_body(resp: Response<Body>) -> Vec<u8> {
    use http_body::Body as _;
    use std::task::{Context, Poll, Waker};
    let mut body = resp.into_body();
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().map(|d| d.to_vec()).unwrap_or_default(),
        _ => Vec::new(),
    }
}
