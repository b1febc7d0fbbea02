//! `[integrations.cloudwatch_sns]` keys beyond the common ones: how subscriptions are confirmed
//! (`auto_confirm`, `confirm_url_pattern`) and how messages are verified (`verify_signatures`,
//! `topic_arns`, `min_signature_version`, and `resolve` for tests and air-gapped mirrors):
//!
//! ```toml
//! [integrations.cloudwatch_sns]
//! verify_signatures = true        # check each message's SNS signature (false: LocalStack)
//! topic_arns = ["arn:aws:sns:eu-west-1:111122223333:ops-alarms"]  # absent: any topic
//! min_signature_version = 1       # 2: refuse SHA1withRSA messages
//! auto_confirm = true             # confirm subscriptions of listed topics by one GET
//! confirm_url_pattern = '^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/'
//! resolve = { "sns.us-east-1.amazonaws.com" = "10.0.0.7:443" }  # tests and mirrors only
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;

use regex::Regex;

use crate::config::{Problems, Unknown};
use crate::ingest::confirm::Resolve;

/// What a `SubscribeURL` must match unless configured otherwise: https, an SNS regional host,
/// no port, no user info. A local SNS emulator (LocalStack) needs its own pattern.
pub const DEFAULT_CONFIRM_URL_PATTERN: &str = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/";

/// `[integrations.cloudwatch_sns]` settings beyond the common ones.
#[derive(Clone, Debug)]
pub struct SnsSettings {
    /// Confirm a subscription by fetching its `SubscribeURL` (when it passes the checks and its
    /// topic is in `topic_arns`); off, the URL is logged for an operator.
    pub auto_confirm: bool,
    /// What a whole `SubscribeURL` must match to be confirmed or logged.
    pub confirm_url_pattern: Regex,
    /// Check every message's SNS signature before reading it (`crate::ingest::sns_verify`).
    pub verify_signatures: bool,
    /// The topics messages are taken from; `None`: any topic, and no subscription is confirmed
    /// by sluice itself (each is logged for an operator).
    pub topic_arns: Option<BTreeSet<String>>,
    /// The lowest `SignatureVersion` taken: 1 (SHA1withRSA) or 2 (SHA256withRSA).
    pub min_signature_version: u8,
    /// SNS host names connected to at a fixed address (signing certificates and confirmation
    /// URLs): for tests and air-gapped mirrors. TLS is still checked against the host name.
    pub resolve: Resolve,
}

impl Default for SnsSettings {
    fn default() -> Self {
        SnsSettings {
            auto_confirm: true,
            confirm_url_pattern: Regex::new(DEFAULT_CONFIRM_URL_PATTERN)
                .expect("the default pattern is a regex"),
            verify_signatures: true,
            topic_arns: None,
            min_signature_version: 1,
            resolve: Resolve::new(),
        }
    }
}

impl PartialEq for SnsSettings {
    fn eq(&self, other: &Self) -> bool {
        self.auto_confirm == other.auto_confirm
            && self.confirm_url_pattern.as_str() == other.confirm_url_pattern.as_str()
            && self.verify_signatures == other.verify_signatures
            && self.topic_arns == other.topic_arns
            && self.min_signature_version == other.min_signature_version
            && self.resolve == other.resolve
    }
}

impl Eq for SnsSettings {}

impl SnsSettings {
    /// Whether `topic` is in `topic_arns` (never when the list is absent).
    pub fn lists(&self, topic: &str) -> bool {
        self.topic_arns.as_ref().is_some_and(|t| t.contains(topic))
    }
}

/// Whether `arn` reads as an SNS topic ARN: `arn:<partition>:sns:<region>:<account>:<name>`.
pub fn is_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "sns", region, account, name]
        if [partition, region, account, name].iter().all(|p| !p.is_empty())
            && !arn.chars().any(char::is_whitespace))
}

fn type_problem(p: &mut Problems, key: &str, want: &str, got: &toml::Value) {
    p.add(key, format!("must be {want}, not a {}", got.type_str()));
}

/// Takes the SNS keys out of `own` (the table at `at`) into `sns`, naming every problem.
pub fn read(own: &mut Unknown, at: &str, sns: &mut SnsSettings, p: &mut Problems) {
    for (name, flag) in [
        ("auto_confirm", &mut sns.auto_confirm),
        ("verify_signatures", &mut sns.verify_signatures),
    ] {
        match own.remove(name) {
            None => {}
            Some(toml::Value::Boolean(b)) => *flag = b,
            Some(other) => type_problem(p, &format!("{at}.{name}"), "true or false", &other),
        }
    }
    let key = format!("{at}.confirm_url_pattern");
    match own.remove("confirm_url_pattern") {
        None => {}
        Some(toml::Value::String(pattern)) => match Regex::new(&pattern) {
            Ok(re) => sns.confirm_url_pattern = re,
            Err(e) => p.add(
                &key,
                format!("{pattern:?} is not a regular expression: {e}"),
            ),
        },
        Some(other) => type_problem(p, &key, "a string (a regular expression)", &other),
    }
    let key = format!("{at}.min_signature_version");
    match own.remove("min_signature_version") {
        None => {}
        Some(toml::Value::Integer(v @ (1 | 2))) => sns.min_signature_version = v as u8,
        Some(toml::Value::Integer(v)) => p.add(
            &key,
            format!("{v} must be 1 (SHA1withRSA and SHA256withRSA) or 2 (SHA256withRSA only)"),
        ),
        Some(other) => type_problem(p, &key, "1 or 2", &other),
    }
    let key = format!("{at}.topic_arns");
    match own.remove("topic_arns") {
        None => {}
        Some(toml::Value::Array(items)) => {
            let mut topics = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(arn) if is_topic_arn(arn) => {
                        topics.insert(arn.to_string());
                    }
                    Some(arn) => p.add(
                        &format!("{key}[{i}]"),
                        format!("{arn:?} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)"),
                    ),
                    None => type_problem(p, &format!("{key}[{i}]"), "a string", item),
                }
            }
            if items.is_empty() {
                p.add(
                    &key,
                    "must list at least one topic ARN (leave it out to take any topic)",
                );
            }
            sns.topic_arns = Some(topics);
        }
        Some(other) => type_problem(p, &key, "a list of topic ARNs", &other),
    }
    let key = format!("{at}.resolve");
    match own.remove("resolve") {
        None => {}
        Some(toml::Value::Table(hosts)) => {
            for (host, addr) in hosts {
                let at_host = format!("{key}.{host:?}");
                let valid_host = !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                match addr.as_str() {
                    _ if !valid_host => p.add(&at_host, "is not a host name"),
                    Some(text) => match text.parse::<SocketAddr>() {
                        Ok(socket) => {
                            sns.resolve.insert(host.to_ascii_lowercase(), socket);
                        }
                        Err(_) => p.add(
                            &at_host,
                            format!("{text:?} is not an IP address and port (\"127.0.0.1:8443\")"),
                        ),
                    },
                    None => type_problem(p, &at_host, "a string (\"<ip>:<port>\")", &addr),
                }
            }
        }
        Some(other) => {
            type_problem(p, &key, "a table of host = \"<ip>:<port>\"", &other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::integrations::settings::SettingsByKind;
    use crate::integration::Integration;

    fn load(text: &str) -> Result<SnsSettings, Vec<String>> {
        SettingsByKind::from_toml(text)
            .map(|s| s.get(Integration::CloudwatchSns).sns.clone())
            .map_err(|e| e.problems)
    }

    #[test]
    fn verification_is_on_by_default_and_every_key_reads() {
        let default = load("").unwrap();
        assert!(default.verify_signatures && default.auto_confirm);
        assert_eq!(default.topic_arns, None);
        assert_eq!(default.min_signature_version, 1);
        assert!(!default.lists("arn:aws:sns:eu-west-1:111122223333:ops"));

        let sns = load(
            r#"
            [integrations.cloudwatch_sns]
            verify_signatures = false
            topic_arns = ["arn:aws:sns:eu-west-1:111122223333:ops", "arn:aws-cn:sns:cn-north-1:1:a"]
            min_signature_version = 2
            resolve = { "SNS.us-east-1.amazonaws.com" = "127.0.0.1:8443", "sns.eu-west-1.amazonaws.com" = "[::1]:443" }
            "#,
        )
        .unwrap();
        assert!(!sns.verify_signatures);
        assert!(sns.lists("arn:aws:sns:eu-west-1:111122223333:ops"));
        assert!(!sns.lists("arn:aws:sns:eu-west-1:111122223333:other"));
        assert_eq!(sns.min_signature_version, 2);
        assert_eq!(
            sns.resolve.get("sns.us-east-1.amazonaws.com"),
            Some(&"127.0.0.1:8443".parse().unwrap()),
            "host names are kept in lower case"
        );
        assert_eq!(sns.resolve.len(), 2);
    }

    #[test]
    fn every_bad_value_is_named() {
        let problems = load(
            r#"
            [integrations.cloudwatch_sns]
            verify_signatures = "yes"
            topic_arns = ["arn:aws:sqs:eu-west-1:1:q", 7, "ops-alarms"]
            min_signature_version = 3
            resolve = { "sns.us-east-1.amazonaws.com" = "localhost:443", "bad host" = "127.0.0.1:1", "x" = 5 }
            "#,
        )
        .unwrap_err();
        let all = problems.join("\n");
        for needle in [
            "integrations.cloudwatch_sns.verify_signatures: must be true or false, not a string",
            "integrations.cloudwatch_sns.topic_arns[0]: \"arn:aws:sqs:eu-west-1:1:q\" is not an SNS topic ARN",
            "integrations.cloudwatch_sns.topic_arns[1]: must be a string, not a integer",
            "integrations.cloudwatch_sns.topic_arns[2]: \"ops-alarms\" is not an SNS topic ARN",
            "integrations.cloudwatch_sns.min_signature_version: 3 must be 1 (SHA1withRSA and SHA256withRSA) or 2",
            "integrations.cloudwatch_sns.resolve.\"sns.us-east-1.amazonaws.com\": \"localhost:443\" is not an IP address and port",
            "integrations.cloudwatch_sns.resolve.\"bad host\": is not a host name",
            "integrations.cloudwatch_sns.resolve.\"x\": must be a string",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 8, "{all}");
        let empty = load("[integrations.cloudwatch_sns]\ntopic_arns = []").unwrap_err();
        assert_eq!(
            empty,
            ["integrations.cloudwatch_sns.topic_arns: must list at least one topic ARN (leave it out to take any topic)"]
        );
        let wrong =
            load("[integrations.cloudwatch_sns]\nmin_signature_version = \"2\"").unwrap_err();
        assert_eq!(
            wrong,
            ["integrations.cloudwatch_sns.min_signature_version: must be 1 or 2, not a string"]
        );
    }

    #[test]
    fn topic_arns_are_recognised() {
        for (arn, want) in [
            ("arn:aws:sns:eu-west-1:111122223333:ops-alarms", true),
            ("arn:aws-cn:sns:cn-north-1:111122223333:a.fifo", true),
            ("arn:aws:sns:eu-west-1:111122223333:", false),
            ("arn:aws:sns::111122223333:ops", false),
            ("arn:aws:cloudwatch:eu-west-1:1:alarm:x", false),
            ("arn:aws:sns:eu-west-1:1:ops alarms", false),
            ("", false),
        ] {
            assert_eq!(is_topic_arn(arn), want, "{arn}");
        }
    }
}
