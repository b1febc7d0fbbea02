//! `sluice check-integration DIR [--bless]`: every definition of a folder (`<kind>.toml`) and
//! every fixture case beside it (`<kind>/<case>.*`), run as the golden test runs the bundled
//! catalog; a user's folder and `catalog/` alike.

use std::path::Path;

use super::cases::{cases, check, Runner};
use super::catalog::read_dir;

/// `sluice check-integration`'s arguments.
#[derive(clap::Args)]
#[command(after_help = crate::manual::examples::EXAMPLES_CHECK_INTEGRATION)]
pub struct CheckArgs {
    /// The folder of definitions: yours (definitions_dir), or the bundled catalog/.
    #[arg(value_name = "DIR")]
    dir: std::path::PathBuf,
    /// Write every case's expected file from what sluice makes of it (review them).
    #[arg(long)]
    bless: bool,
}

impl CheckArgs {
    /// Prints the report; exit code 1 when a definition or case fails.
    pub fn run(self) -> std::process::ExitCode {
        let (lines, ok) = check_dir(&self.dir, self.bless);
        println!("{}", lines.join("\n"));
        std::process::ExitCode::from(if ok { 0 } else { 1 })
    }
}

/// Checks every definition of `dir` and runs every case of its fixture folder `dir/<kind>/`;
/// returns the report's lines and whether all passed.
pub fn check_dir(dir: &Path, bless: bool) -> (Vec<String>, bool) {
    // The bundled catalog's files are its kinds; in any other folder a built-in kind's name is
    // refused, as it is when sluice loads the folder. A broken definition is reported, and the
    // others still run.
    let bundled = dir.canonicalize().ok() == Path::new(super::catalog::ROOT).canonicalize().ok();
    let (definitions, problems) = read_dir(dir, bundled);
    let mut ok = problems.is_empty() && !definitions.is_empty();
    let mut lines: Vec<String> = problems.into_iter().map(|p| format!("FAIL {p}")).collect();
    if definitions.is_empty() {
        lines.push(format!("{}: no definitions (<kind>.toml)", dir.display()));
    }
    for d in &definitions {
        let fixtures = dir.join(&d.kind);
        let names = match cases(&fixtures) {
            Ok(c) => c,
            Err(e) => {
                lines.push(format!("FAIL {}: {e}", d.kind));
                ok = false;
                continue;
            }
        };
        let (mut trigger, mut resolve) = (false, false);
        for case in &names {
            match check(Runner::Definition(d), &fixtures, case, bless) {
                Ok(out) => {
                    let events = out["events"].as_array().cloned().unwrap_or_default();
                    let mut said = Vec::new();
                    for e in &events {
                        trigger |= e["action"] == "trigger";
                        resolve |= e["action"] == "resolve";
                        said.push(format!(
                            "{} key={} {} {:?}",
                            e["action"].as_str().unwrap_or_default(),
                            e["dedup_key"].as_str().unwrap_or_default(),
                            e["severity"].as_str().unwrap_or_default(),
                            e["summary"].as_str().unwrap_or_default()
                        ));
                    }
                    let what = match out.get("error") {
                        Some(err) => format!("refused: {}", err.as_str().unwrap_or_default()),
                        None => said.join("; "),
                    };
                    let verb = if bless { "blessed" } else { "ok" };
                    lines.push(format!("{}/{case}: {verb}: {what}", d.kind));
                }
                Err(e) => {
                    lines.push(format!("FAIL {e}"));
                    ok = false;
                }
            }
        }
        if names.len() < 2 {
            lines.push(format!(
                "FAIL {}: {} case(s), at least 2 needed",
                d.kind,
                names.len()
            ));
            ok = false;
        }
        if !trigger {
            lines.push(format!("FAIL {}: no case maps to a trigger", d.kind));
            ok = false;
        }
        if d.mapper.can_resolve() && !resolve {
            lines.push(format!(
                "FAIL {}: the definition can resolve but no case maps to a resolve",
                d.kind
            ));
            ok = false;
        }
    }
    (lines, ok)
}
