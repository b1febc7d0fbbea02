//! The `sluice` command line, run as a process: what each subcommand accepts and refuses, and
//! what it prints.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `sluice args...` in the project folder, with `env` and none of the caller's `SLUICE_*`.
fn sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("SLUICE_")) {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("sluice runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_takes_the_file_as_an_argument_and_prints_config_words() {
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/sluice.toml")
        .is_file());
    let ok_line = |file: &str, brokers: &str| {
        format!("{file}: ok (listen 127.0.0.1:8080, brokers {brokers}, topic sluice.incidents,")
    };
    for (args, env, file) in [
        (
            &["check-config", "config/sluice.toml"][..],
            &[][..],
            "config/sluice.toml",
        ),
        (
            &["check-config", "--config", "config/sluice.toml"][..],
            &[][..],
            "config/sluice.toml",
        ),
        (
            &["check-config"][..],
            &[("SLUICE_CONFIG", "config/sluice.toml")][..],
            "config/sluice.toml",
        ),
        // The command line wins over the environment.
        (
            &["check-config", "config/sluice.toml"][..],
            &[("SLUICE_CONFIG", "elsewhere.toml")][..],
            "config/sluice.toml",
        ),
    ] {
        let out = sluice(args, env);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(
            stdout.starts_with(&ok_line(file, "embedded")),
            "{args:?}: {stdout}"
        );
    }
    let out = sluice(
        &["check-config", "config/sluice.toml"],
        &[("SLUICE_KAFKA_BROKERS", "k1:9092,k2:9092")],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&ok_line("config/sluice.toml", "k1:9092,k2:9092")),
        "{stdout}"
    );

    let out = sluice(&["check-config", "--config", "a.toml", "b.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("'--config <FILE>' cannot be used with '[FILE]'"),
        "{}",
        text(&out.stderr)
    );
    let out = sluice(&["check-config", "missing.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("missing.toml: "),
        "{}",
        text(&out.stderr)
    );
}
