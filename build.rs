//! `sluice --version` names the git commit the binary is built from ("unknown" outside a git
//! checkout; uncommitted changes are not marked) and the enabled cargo features:
//! `SLUICEBUILD_VERSION`, e.g. `0.1.0 (commit 1a2b3c4d5e6f, features: mimalloc)`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let features: Vec<&str> = [
        ("mimalloc", "CARGO_FEATURE_MIMALLOC"),
        ("kafka-ssl", "CARGO_FEATURE_KAFKA_SSL"),
    ]
    .into_iter()
    .filter(|(_, var)| std::env::var_os(var).is_some())
    .map(|(name, _)| name)
    .collect();
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(", ")
    };
    println!(
        "cargo:rustc-env=SLUICEBUILD_VERSION={} (commit {commit}, features: {features})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
    // Rebuilt when HEAD moves: a checkout changes .git/HEAD, a commit the branch it names.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Some(branch) = std::fs::read_to_string(".git/HEAD")
        .ok()
        .and_then(|head| head.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        println!("cargo:rerun-if-changed=.git/{branch}");
    }
}
