//! The README's catalog table, generated from the bundled definitions (a test keeps the README
//! in step: `SLUICEDEV_BLESS=1 cargo test --lib catalog` rewrites it).

use std::fmt::Write as _;

use super::{bundled, Definition, Samples, CATEGORIES};

/// Senders that post a native kind's format: listed, not counted as kinds.
pub const NATIVE_ALIASES: [(&str, &str); 5] = [
    ("vmalert (VictoriaMetrics)", "alertmanager_api"),
    ("Grafana Mimir ruler", "alertmanager_api"),
    ("Grafana Loki ruler", "alertmanager_api"),
    ("Thanos ruler", "alertmanager_api"),
    ("Icinga 2", "nagios"),
];

/// Senders a team may expect here that have nothing to receive, and why.
pub const NOT_COVERED: [(&str, &str); 1] = [(
    "DigitalOcean monitoring and uptime alerts",
    "they notify by email and Slack only: no webhook or HTTP payload to receive",
)];

/// A table cell: pipes escaped, in backticks when it is code.
fn cell(text: &str, code: bool) -> String {
    let text = text.replace('|', "\\|").replace('\n', " ");
    if code && !text.is_empty() {
        format!("`{text}`")
    } else {
        text
    }
}

fn row(out: &mut String, d: &Definition) {
    let docs = d
        .docs
        .iter()
        .enumerate()
        .map(|(i, u)| format!("[{}]({u})", i + 1))
        .collect::<Vec<_>>()
        .join(" ");
    let samples = match d.samples {
        Samples::Documented => "documented",
        Samples::Constructed => "constructed",
    };
    let _ = writeln!(
        out,
        "| `{kind}` | {vendor}: {title} | `/integrations/{kind}/<key>`{body} | {key} | {resolve} | {samples} {docs} |",
        kind = d.kind,
        vendor = cell(&d.vendor, false),
        title = cell(&d.title, false),
        body = match d.mapper.body {
            super::super::generic::BodyKind::Json => "",
            super::super::generic::BodyKind::Form(_) => " (form)",
            super::super::generic::BodyKind::Query => " (query)",
        },
        key = cell(&d.mapper.dedup_key_text(), true),
        resolve = cell(&d.mapper.resolve_text(), false),
    );
}

/// The catalog section's generated text: a count, one table per category, then the aliases.
pub fn readme_table() -> String {
    let all = bundled();
    let native = crate::integration::Integration::ALL.len() - all.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} kinds: {native} native (the table above; `heartbeat` and `generic` among them) and {} \
         catalog definitions.\n",
        native + all.len(),
        all.len()
    );
    for category in CATEGORIES {
        let defs: Vec<&Definition> = all.iter().filter(|d| d.category == category).collect();
        if defs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "**{category}** ({})\n", defs.len());
        out.push_str("| kind | sender | endpoint | dedup key | resolves when | samples |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for d in defs {
            row(&mut out, d);
        }
        out.push('\n');
    }
    let mut aliases: Vec<(String, String)> = NATIVE_ALIASES
        .iter()
        .map(|(a, k)| (a.to_string(), k.to_string()))
        .collect();
    for d in all {
        aliases.extend(d.aliases.iter().map(|a| (a.clone(), d.kind.clone())));
    }
    aliases.sort_by_key(|(a, _)| a.to_lowercase());
    out.push_str("**Aliases** (senders that post a listed kind's shape; not counted)\n\n");
    out.push_str("| sender | use the kind |\n|---|---|\n");
    for (alias, kind) in aliases {
        let _ = writeln!(out, "| {} | `{kind}` |", cell(&alias, false));
    }
    out.push_str("\n**Not covered** (nothing to receive)\n\n| sender | why |\n|---|---|\n");
    for (sender, why) in NOT_COVERED {
        let _ = writeln!(out, "| {sender} | {why} |");
    }
    out
}
