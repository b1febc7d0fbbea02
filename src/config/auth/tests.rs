use std::path::PathBuf;

use super::*;
use crate::config::Config;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    Config::from_toml(text, env(vars)).unwrap_err().problems
}

/// A file of this test's own, removed when dropped.
struct File(PathBuf);

impl File {
    fn new(tag: &str, text: &str) -> File {
        let path = std::env::temp_dir().join(format!(
            "sluice-auth-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, text).unwrap();
        File(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn without_the_section_everything_is_open() {
    let auth = Config::from_toml("", Vec::new()).unwrap().auth;
    assert!(!auth.has_allowlist());
    assert!(auth.tokens.is_empty());
    assert!(Integration::ALL
        .iter()
        .all(|&k| auth.integrations.get(k).is_none()));
    assert_eq!(auth.max_silence, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(auth.routing_keys_recheck, Duration::from_secs(5));
}

#[test]
fn a_full_section_reads_files_and_keeps_secrets_out_of_debug() {
    let keys = File::new("keys", "# team keys\npayments\n\n  checkout  \npayments\n");
    let secrets = File::new("secrets", "file-secret-1\n");
    let token = File::new("token", "ops-token-0123456789abcdef\n");
    let text = format!(
        r#"
        [auth]
        routing_keys = ["inline"]
        routing_keys_file = "{keys}"
        routing_keys_recheck = "250ms"
        max_silence = "2d"
        [auth.integrations.grafana]
        secrets = ["grafana-new", "grafana-old"]
        secrets_file = "{secrets}"
        header = "X-Sluice-Secret"
        [auth.integrations.pagerduty]
        secrets = ["pd-secret"]
        query = "token"
        [auth.integrations.alertmanager_webhook]
        secrets = ["am-secret"]
        path = true
        [[auth.tokens]]
        name = "ops"
        token_file = "{token}"
        scopes = ["read", "write", "broad_silence"]
        [[auth.tokens]]
        name = "team-a"
        token = "team-a-token-0123456789"
        scopes = ["write"]
        routing_keys = ["payments"]
        "#,
        keys = keys.path(),
        secrets = secrets.path(),
        token = token.path(),
    );
    let auth = Config::from_toml(&text, Vec::new())
        .unwrap_or_else(|e| panic!("{e}"))
        .auth;
    assert_eq!(auth.routing_keys, ["inline"]);
    assert_eq!(auth.routing_keys_from_file, ["checkout", "payments"]);
    assert_eq!(auth.routing_keys_recheck, Duration::from_millis(250));
    assert_eq!(auth.max_silence, Duration::from_secs(2 * 24 * 3600));
    let grafana = auth
        .integrations
        .get(Integration::Grafana)
        .as_ref()
        .unwrap();
    assert_eq!(grafana.secrets.len(), 3);
    assert_eq!(
        grafana.location,
        SecretLocation::Header("x-sluice-secret".into())
    );
    assert_eq!(
        auth.integrations
            .get(Integration::PagerDuty)
            .as_ref()
            .unwrap()
            .location,
        SecretLocation::Query("token".into())
    );
    assert_eq!(
        auth.integrations
            .get(Integration::AlertmanagerWebhook)
            .as_ref()
            .unwrap()
            .location,
        SecretLocation::Path
    );
    assert_eq!(auth.tokens[0].name, "ops");
    assert_eq!(auth.tokens[0].token.expose(), b"ops-token-0123456789abcdef");
    assert_eq!(auth.tokens[0].scopes, Scopes::ALL);
    assert_eq!(
        auth.tokens[1].scopes,
        Scopes {
            write: true,
            ..Scopes::default()
        }
    );
    assert_eq!(
        auth.tokens[1].routing_keys.as_deref(),
        Some(&["payments".to_string()][..])
    );
    let shown = format!("{auth:?}");
    for secret in [
        "grafana-new",
        "grafana-old",
        "file-secret-1",
        "pd-secret",
        "am-secret",
        "ops-token",
        "team-a-token",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn every_problem_names_its_key_and_never_quotes_a_secret() {
    let two = File::new("two-tokens", "a-token-0123456789ab\nanother-0123456789ab\n");
    let empty = File::new("empty-keys", "# nothing yet\n");
    let text = format!(
        r#"
        [auth]
        routing_keys = ["ok", " "]
        routing_keys_file = "{empty}"
        routing_keys_recheck = "0s"
        max_silence = "forever"
        colour = "red"
        [auth.integrations.grafna]
        secrets = ["x"]
        header = "X-S"
        [auth.integrations.grafana]
        secrets = ["grafana-secret"]
        header = "X-S"
        query = "token"
        [auth.integrations.datadog]
        header = "Bad Header"
        [auth.integrations.sentry]
        secrets = ["with space"]
        query = "routing_key"
        [auth.integrations.zabbix]
        secrets_file = "/nonexistent/sluice-secrets"
        path = true
        [[auth.tokens]]
        name = "ops"
        token = "short"
        scopes = []
        [[auth.tokens]]
        name = "ops"
        token = "long-enough-token-0123"
        token_file = "{two}"
        scopes = ["read", "admin"]
        routing_keys = []
        [[auth.tokens]]
        name = "files"
        token_file = "{two}"
        scopes = ["read"]
        "#,
        empty = empty.path(),
        two = two.path(),
    );
    let all = problems(&text, &[]);
    let joined = all.join("\n");
    for needle in [
        "auth.colour: unknown key",
        "auth.routing_keys[1]: must not be blank",
        "auth.routing_keys_file: ",
        "lists no routing key",
        "auth.routing_keys_recheck: must be greater than zero",
        "auth.max_silence: ",
        "auth.integrations.grafna: unknown integration",
        "auth.integrations.grafana: name exactly one place for the secret: header, query or path = true (2 given)",
        "auth.integrations.datadog.header: \"Bad Header\" is not a header name",
        "auth.integrations.sentry.secrets[0]: must be visible ASCII without spaces",
        "auth.integrations.sentry.query: \"routing_key\" names the routing key, not a secret",
        "auth.integrations.zabbix.secrets_file: cannot read /nonexistent/sluice-secrets",
        "auth.tokens[0].token: must be at least 16 characters",
        "auth.tokens[0].scopes: must list at least one of read, write, broad_silence",
        "auth.tokens[1].name: \"ops\" is used twice",
        "auth.tokens[1]: give exactly one of token and token_file",
        "auth.tokens[1].scopes[1]: \"admin\" must be one of read, write, broad_silence",
        "auth.tokens[1].routing_keys: must list at least one routing key",
        "auth.tokens[2].token_file: ",
        "must hold one token (2 lines found)",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
    for secret in ["short", "grafana-secret", "with space", "a-token-0123"] {
        assert!(!joined.contains(secret), "{secret:?} quoted in:\n{joined}");
    }
}

#[test]
fn environment_sets_the_admin_token_and_the_allowlist_file() {
    let keys = File::new("env-keys", "payments\n");
    let vars = [
        ("SLUICE_ADMIN_TOKEN", "env-token-0123456789abc"),
        ("SLUICE_ROUTING_KEYS_FILE", keys.path()),
    ];
    let text = "[[auth.tokens]]\nname = \"ops\"\ntoken = \"ops-token-0123456789ab\"\nscopes = [\"read\"]\n";
    let auth = Config::from_toml(text, env(&vars)).unwrap().auth;
    let token = auth.tokens.iter().find(|t| t.name == "env").unwrap();
    assert_eq!(token.token.expose(), b"env-token-0123456789abc");
    assert_eq!(
        token.scopes,
        Scopes {
            read: true,
            write: true,
            broad_silence: false
        }
    );
    assert_eq!(token.routing_keys, None);
    assert_eq!(auth.tokens.len(), 2);
    assert_eq!(auth.routing_keys_file.as_deref(), Some(keys.0.as_path()));
    assert_eq!(auth.routing_keys_from_file, ["payments"]);

    let all = problems("", &[("SLUICE_ADMIN_TOKEN", "too-short")]);
    assert_eq!(all, ["SLUICE_ADMIN_TOKEN: must be at least 16 characters"]);
    let taken =
        "[[auth.tokens]]\nname = \"env\"\ntoken = \"file-token-0123456789\"\nscopes = [\"read\"]\n";
    let all = problems(taken, &[("SLUICE_ADMIN_TOKEN", "env-token-0123456789abc")]);
    assert_eq!(all, ["SLUICE_ADMIN_TOKEN: \"env\" is used twice"]);
    let all = problems("", &[("SLUICE_ROUTING_KEYS_FILE", "/nonexistent/keys")]);
    assert_eq!(all.len(), 1);
    assert!(
        all[0].starts_with("auth.routing_keys_file: cannot read /nonexistent/keys"),
        "{all:?}"
    );
}

#[test]
fn a_keys_file_with_a_bad_line_is_refused_naming_the_line() {
    let long = "k".repeat(300);
    let file = File::new("bad-line", &format!("ok\n{long}\n"));
    let err = read_routing_keys(&file.0).unwrap_err();
    assert!(
        err.ends_with("line 2: must be at most 255 characters"),
        "{err}"
    );
    let dir = std::env::temp_dir();
    assert!(read_routing_keys(&dir)
        .unwrap_err()
        .ends_with("is not a regular file"));
}
