//! The `sluice` command line, run as a process: what each subcommand accepts and refuses, and
//! what it prints.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `sluice args...` in the project folder, with `env` and none of the caller's `SLUICE_*`;
/// one still running after 10 s is killed and fails the test.
fn sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("SLUICE_")) {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("sluice runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("sluice {args:?} still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
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

#[test]
fn send_refuses_an_unknown_action_or_severity_before_any_request() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    for (option, value, valid) in [
        ("--action", "explode", "trigger, acknowledge, resolve"),
        ("--severity", "loud", "critical, error, warning, info"),
    ] {
        let out = sluice(&["send", "--url", &url, option, value], &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("invalid value '{value}' for '{option} <"))
                && stderr.contains(&format!("[possible values: {valid}]")),
            "{stderr}"
        );
    }
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing connected to the server"
    );
}

#[test]
fn every_option_of_every_subcommand_is_described() {
    for sub in ["serve", "check-config", "send", "replay", "tail"] {
        let out = sluice(&[sub, "--help"], &[]);
        assert!(out.status.success(), "{sub}: {}", text(&out.stderr));
        let help = text(&out.stdout);
        let options: Vec<&str> = help
            .lines()
            .filter(|l| l.trim_start().starts_with('-') && !l.contains("--help"))
            .collect();
        assert!(!options.is_empty(), "{sub}: {help}");
        for line in options {
            // `  --name <NAME>  Description [default: ...]`: text after the gap.
            let described = line
                .trim_start()
                .split_once("  ")
                .is_some_and(|(_, d)| !d.trim().is_empty() && !d.trim().starts_with('['));
            assert!(described, "{sub}: {line:?} has no description");
        }
    }
}

#[test]
fn version_names_the_commit_and_the_features() {
    let out = sluice(&["--version"], &[]);
    assert!(out.status.success());
    let line = text(&out.stdout);
    assert!(
        line.starts_with(&format!("sluice {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    // The default build has mimalloc, and the commit is a hex prefix (or "unknown" outside git).
    assert!(line.contains("features: mimalloc"), "{line}");
    let commit = line
        .split("(commit ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let hex = commit.trim_end_matches("-modified");
    assert!(
        hex == "unknown" || (hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit())),
        "{line}"
    );
}
