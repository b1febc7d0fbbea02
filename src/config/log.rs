//! `[log]`: what is logged and how. Every key is optional; the values shown are the defaults:
//!
//! ```toml
//! [log]
//! level = "info"      # a level or a filter like "info,sluice=debug"
//! format = "pretty"   # or "json"
//! ```
//!
//! Validates that `level` parses as a tracing filter and `format` is known; unknown keys are
//! rejected.

use serde::Deserialize;

use super::{defaults, Problems, Unknown};

#[derive(Deserialize, Default)]
pub(super) struct RawLog {
    /// Both are set by `SLUICE_LOG_LEVEL` and `SLUICE_LOG_FORMAT` too.
    pub(super) level: Option<String>,
    pub(super) format: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl RawLog {
    pub(super) fn validate(self, p: &mut Problems) -> LogConfig {
        p.unknown("log", &self.unknown);
        let format = p.one_of(
            "log.format",
            self.format.as_deref(),
            defaults::LOG_FORMAT,
            &[("pretty", LogFormat::Pretty), ("json", LogFormat::Json)],
        );
        let level = self.level.unwrap_or_else(|| defaults::LOG_LEVEL.into());
        if tracing_subscriber::EnvFilter::builder()
            .parse(&level)
            .is_err()
        {
            p.add(
                "log.level",
                format!("{level:?} is not a level or filter like \"info,sluice=debug\""),
            );
        }
        LogConfig { level, format }
    }
}
