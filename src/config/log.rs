//! `[log]`: what is logged and how. Every key is optional; the values shown are the defaults:
//!
//! ```toml
//! [log]
//! level = "info"      # trace, debug, info, warn, error, off, or a filter like "info,sluice=debug"
//! format = "pretty"   # or "json"
//! ```
//!
//! Validates that `level` is a level or a filter whose every directive names a level (a bare
//! word that is not a level, such as "loud", is refused: a filter would take it as a target
//! and log nothing) and that `format` is known; unknown keys are rejected.

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

impl LogConfig {
    /// Warnings and errors only, plain text: for the commands whose own output is the point
    /// (`replay`).
    pub fn warnings_only() -> Self {
        LogConfig {
            level: "warn".into(),
            format: LogFormat::Pretty,
        }
    }

    /// Installs the process's log subscriber as configured: to stderr, in colour on a
    /// terminal.
    pub fn install(&self) {
        let filter = tracing_subscriber::EnvFilter::builder()
            .parse(&self.level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        match self.format {
            LogFormat::Json => builder.json().init(),
            LogFormat::Pretty => builder.init(),
        }
    }
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
        if !is_level_or_filter(&level) {
            p.add(
                "log.level",
                format!(
                    "{level:?} is not a level ({}) or a filter like \"info,sluice=debug\"",
                    LEVELS.join(", ")
                ),
            );
        }
        LogConfig { level, format }
    }
}

/// The levels `log.level` and each of its directives may name.
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// A level, or comma-separated directives (`sluice=debug`, `info`) each ending in a level,
/// that tracing parses as a filter.
fn is_level_or_filter(filter: &str) -> bool {
    let is_level = |s: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s.trim()));
    let directives_ok = filter.split(',').all(|directive| {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        is_level(level)
    });
    directives_ok
        && tracing_subscriber::EnvFilter::builder()
            .parse(filter)
            .is_ok()
}
