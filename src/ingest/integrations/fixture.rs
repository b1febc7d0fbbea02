//! A fixture case's request context: `tests/fixtures/integrations/<kind>/<case>.context.json`
//! says what the request carries besides its body (see the golden test for the layout). Read
//! by the golden test and by the parse benches, so both build the request the same way.

use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::event::Severity;
use crate::ingest::integrations::settings::{IntegrationSettings, SettingsByKind};
use crate::integration::Integration;
use crate::time::{parse_duration, parse_timestamp, Timestamp as Time, UnixMillis};

use super::IngestRequest;

/// 2024-05-02T09:15:00Z, unless a context file says otherwise.
pub const NOW: UnixMillis = UnixMillis(1_714_641_300_000);
pub const ROUTING_KEY: &str = "fixture-routing-key";

/// What a request carries besides its body.
pub struct CaseContext {
    routing_key: String,
    headers: HeaderMap,
    query: Option<String>,
    now: UnixMillis,
    settings: IntegrationSettings,
    /// `"config"`: a config file's `[integrations.*]`, used instead of `settings`.
    config: Option<SettingsByKind>,
}

impl CaseContext {
    /// The request this context describes, for `kind`, with the format's part of the path.
    pub fn request<'a>(&'a self, kind: Integration, path: &'a str) -> IngestRequest<'a> {
        IngestRequest {
            routing_key: &self.routing_key,
            headers: &self.headers,
            query: self.query.as_deref(),
            path,
            now: self.now,
            settings: self.config.as_ref().map_or(&self.settings, |c| c.get(kind)),
        }
    }
}

pub fn context(path: &Path) -> Result<CaseContext, String> {
    let mut ctx = CaseContext {
        routing_key: ROUTING_KEY.into(),
        headers: HeaderMap::new(),
        query: None,
        now: NOW,
        settings: IntegrationSettings::default(),
        config: None,
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(ctx);
    };
    let bad = |what: &str| format!("{}: {what}", path.display());
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let obj = v.as_object().ok_or_else(|| bad("must be an object"))?;
    for (key, value) in obj {
        match (key.as_str(), value) {
            ("routing_key", Value::String(s)) => ctx.routing_key = s.clone(),
            ("query", Value::String(s)) => ctx.query = Some(s.clone()),
            ("now", Value::String(s)) => match parse_timestamp(s) {
                Some(Time::At(t)) => ctx.now = t,
                _ => return Err(bad("'now' is not a date-time")),
            },
            ("headers", Value::Object(h)) => {
                for (name, value) in h {
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| bad("a header name is invalid"))?;
                    let value = value
                        .as_str()
                        .and_then(|v| HeaderValue::from_str(v).ok())
                        .ok_or_else(|| bad("header values must be strings"))?;
                    ctx.headers.append(name, value);
                }
            }
            ("config", Value::String(toml)) => {
                // A whole config file; the case takes its kind's settings from it.
                let settings =
                    SettingsByKind::from_toml(toml).map_err(|e| bad(&e.problems.join("; ")))?;
                ctx.config = Some(settings);
            }
            ("settings", Value::Object(s)) => {
                for (name, value) in s {
                    let text = value.as_str().ok_or_else(|| bad("settings are strings"))?;
                    match name.as_str() {
                        "default_severity" => {
                            ctx.settings.default_severity = Severity::parse(text)
                                .ok_or_else(|| bad("unknown default_severity"))?;
                        }
                        "resolve_timeout" => {
                            let d = parse_duration(text).map_err(|e| bad(&e))?;
                            ctx.settings.resolve_timeout = (!d.is_zero()).then_some(d);
                        }
                        "routing_key" => ctx.settings.routing_key = Some(text.into()),
                        other => return Err(bad(&format!("unknown setting {other:?}"))),
                    }
                }
            }
            (other, _) => return Err(bad(&format!("unknown or mistyped key {other:?}"))),
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A case's context file is read strictly, so a typo cannot silently change a case.
    #[test]
    fn context_files_are_strict() {
        let dir = std::env::temp_dir().join(format!("sluice-golden-ctx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.context.json");
        std::fs::write(&path, r#"{"routing_key":"rk","settings":{"resolve_timeout":"5m"},"headers":{"x-a":"1"},"now":"2024-05-02T10:00:00Z"}"#).unwrap();
        let ctx = context(&path).unwrap();
        assert_eq!(ctx.routing_key, "rk");
        assert_eq!(
            ctx.settings.resolve_timeout,
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(ctx.headers["x-a"], "1");
        assert_eq!(ctx.now, UnixMillis(1_714_644_000_000));
        std::fs::write(&path, r#"{"routing_kye":"rk"}"#).unwrap();
        assert!(context(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
