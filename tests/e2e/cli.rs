//! The `sluice` command line, run as a process: what each subcommand accepts and refuses, and
//! what it prints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::TempDir;

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

/// `check-integration` on the bundled catalog passes (a line per case, exit 0); on a folder
/// with a broken definition it names the file and key and exits 1; `check-config` takes a
/// definitions folder from `SLUICE_INTEGRATIONS_DIR` and names its problems.
#[test]
fn check_integration_runs_a_folder_and_says_what_fails() {
    let out = sluice(&["check-integration", "catalog"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("uptimerobot/down: ok: trigger key="),
        "{stdout}"
    );
    assert!(!stdout.lines().any(|l| l.starts_with("FAIL ")), "{stdout}");

    let dir = std::env::temp_dir().join(format!("sluice-cli-defs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("shop")).unwrap();
    std::fs::write(
        dir.join("shop.toml"),
        "vendor = \"Shop\"\ntitle = \"t\"\ncategory = \"other\"\ndocs = [\"https://shop.example.com\"]\n\
         samples = \"constructed\"\nsignature = \"none\"\n[map]\ndedup_key = \"/id\"\nsumary = \"/x\"\n",
    )
    .unwrap();
    let folder = dir.display().to_string();
    let out = sluice(&["check-integration", &folder], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("shop.toml: map.sumary: unknown key"),
        "{stdout}"
    );
    let out = sluice(
        &["check-config", "config/sluice.toml"],
        &[("SLUICE_INTEGRATIONS_DIR", &folder)],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("integrations.generic.definitions_dir") && stderr.contains("map.sumary"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
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
    for bad in ["not a url", "ftp://127.0.0.1:1"] {
        let out = sluice(&["send", "--url", bad], &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--url") && stderr.contains("is not a URL like http://127.0.0.1:8080"),
            "{stderr}"
        );
    }
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing connected to the server"
    );
}

/// A one-request HTTP server on a loopback port: answers `202 {}` and returns the request line
/// (or `None` when nothing connected within 10 s).
fn one_request_server() -> (u16, std::thread::JoinHandle<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let (stream, _) = loop {
            match listener.accept() {
                Ok(conn) => break conn,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => return None,
            }
        };
        stream.set_nonblocking(false).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        reader.read_exact(&mut vec![0; length]).unwrap();
        (&stream)
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")
            .unwrap();
        Some(request_line.trim().to_string())
    });
    (port, handle)
}

#[test]
fn send_posts_to_the_listen_address_of_its_config_unless_given_a_url() {
    let dir = TempDir::new("cli-send");
    let write_config = |name: &str, port: u16| {
        let path = dir.0.join(name);
        std::fs::write(&path, format!("[server]\nlisten = \"0.0.0.0:{port}\"\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (port, server) = one_request_server();
    let config = write_config("a.toml", port);
    let out = sluice(&["send", "--config", &config], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!(
            "sent 1 trigger event(s) to http://127.0.0.1:{port}: 1 x 202"
        )),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        server.join().unwrap().as_deref(),
        Some("POST /v2/enqueue HTTP/1.1")
    );

    let (port, server) = one_request_server();
    let config = write_config("b.toml", port);
    let out = sluice(&["send"], &[("SLUICE_CONFIG", &config)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        server.join().unwrap().is_some(),
        "SLUICE_CONFIG names it too"
    );

    // --url wins over the file (whose port has nothing listening on it).
    let (port, server) = one_request_server();
    let idle = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config("c.toml", idle.local_addr().unwrap().port());
    drop(idle);
    let url = format!("http://127.0.0.1:{port}");
    let out = sluice(&["send", "--config", &config, "--url", &url], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(server.join().unwrap().is_some());

    // A config it is pointed at must be valid: its problems, exit code 2.
    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let out = sluice(&["send", "--config", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("server.listen: \"nowhere\" is not an address"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tail_reads_brokers_and_topic_from_its_config() {
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("cfg.incidents", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            BaseRecord::to("cfg.incidents")
                .key("inc_1")
                .payload(r#"{"type":"opened"}"#),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();

    let dir = TempDir::new("cli-tail");
    let config = dir.0.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{bootstrap}\"\ntopic = \"cfg.incidents\"\n\
             [kafka.properties]\n\"client.id\" = \"from-config\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = sluice(
        &[
            "tail",
            "--config",
            config,
            "--idle-exit",
            "1s",
            "--format",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        (&line["topic"], &line["key"], &line["value"]),
        (
            &serde_json::json!("cfg.incidents"),
            &serde_json::json!("inc_1"),
            &serde_json::json!({"type": "opened"})
        )
    );
    assert!(
        text(&out.stderr).contains("1 message(s) from cfg.incidents"),
        "{}",
        text(&out.stderr)
    );

    // --topic wins over the file.
    let out = sluice(
        &[
            "tail",
            "--config",
            config,
            "--topic",
            "other",
            "--idle-exit",
            "1s",
        ],
        &[],
    );
    assert!(
        text(&out.stderr).contains("0 message(s) from other"),
        "{}",
        text(&out.stderr)
    );

    // The embedded broker cannot be reached from the file, and without a config the brokers
    // are required: each says what to pass.
    for (args, want) in [
        (
            &["tail", "--config", "config/sluice.toml"][..],
            "tail: kafka.brokers is \"embedded\" in config/sluice.toml: ",
        ),
        (&["tail"][..], "tail: no Kafka brokers: pass --brokers"),
    ] {
        let out = sluice(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with(want) && stderr.contains("--brokers"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn every_option_and_argument_of_every_subcommand_is_described() {
    for sub in subcommands() {
        let sub = sub.as_str();
        let out = sluice(&[sub, "--help"], &[]);
        assert!(out.status.success(), "{sub}: {}", text(&out.stderr));
        let help = text(&out.stdout);
        // Options, and positional arguments (`  <SHELL>`, `  [FILE]`).
        let options: Vec<&str> = help
            .lines()
            .filter(|l| l.trim_start().starts_with(['-', '<', '[']) && l.starts_with("  "))
            .filter(|l| !l.contains("--help"))
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

/// The subcommands `sluice --help` lists, `help` aside.
fn subcommands() -> Vec<String> {
    let out = sluice(&["--help"], &[]);
    let help = text(&out.stdout);
    let subs: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect();
    assert!(subs.len() >= 5, "{help}");
    subs
}

#[test]
fn every_subcommand_help_ends_with_examples_of_itself() {
    for sub in subcommands() {
        let out = sluice(&[&sub, "--help"], &[]);
        assert!(out.status.success(), "{sub}: {}", text(&out.stderr));
        let help = text(&out.stdout);
        let examples: Vec<&str> = help
            .lines()
            .skip_while(|l| *l != "Examples:")
            .skip(1)
            .collect();
        assert!(
            !examples.is_empty()
                && examples
                    .iter()
                    .all(|l| l.starts_with("  ") && l.contains(&format!("sluice {sub}"))),
            "{sub}: {help}"
        );
    }
}

#[test]
fn completions_are_generated_for_every_subcommand() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let out = sluice(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for sub in &subs {
            assert!(script.contains(sub.as_str()), "{shell}: no {sub}");
        }
        assert!(script.contains("idle-exit"), "{shell}: options too");
    }
    let bash = text(&sluice(&["completions", "bash"], &[]).stdout);
    assert!(
        bash.contains("complete -F _sluice") && bash.contains("sluice,check-config)"),
        "{bash}"
    );
    let out = sluice(&["completions", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("[possible values: bash, elvish, fish, powershell, zsh]"),
        "{}",
        text(&out.stderr)
    );
}

/// The roff after clap_mangen's string definitions (`.ie`/`.el`, repeated before each section).
fn requests(page: &str) -> Vec<&str> {
    page.lines()
        .filter(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .collect()
}

#[test]
fn man_pages_are_generated_for_sluice_and_each_subcommand() {
    let subs = subcommands();
    let out = sluice(&["man"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    let lines = requests(&page);
    assert!(lines[0].starts_with(".TH sluice 1 "), "{page}");
    assert!(lines[0].contains(&format!("\"sluice {}", env!("CARGO_PKG_VERSION"))));
    for sub in &subs {
        let entry = format!("sluice\\-{}(1)", sub.replace('-', "\\-"));
        assert!(lines.contains(&entry.as_str()), "no {entry}: {page}");
    }

    let out = sluice(&["man", "tail"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    let lines = requests(&page);
    assert!(lines[0].starts_with(".TH sluice-tail 1 "), "{page}");
    let examples = lines.iter().position(|l| *l == ".SH EXAMPLES").unwrap();
    assert_eq!(lines[examples + 1], ".nf");
    assert!(lines[examples + 2].starts_with("  sluice tail \\-\\-brokers"));

    let dir = TempDir::new("cli-man");
    let out = sluice(&["man", "--dir", dir.0.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut files: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = subs.iter().map(|s| format!("sluice-{s}.1")).collect();
    want.push("sluice.1".into());
    want.sort();
    assert_eq!(files, want);

    let out = sluice(&["man", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("no page sluice-nope.1: the subcommands are serve, "),
        "{}",
        text(&out.stderr)
    );
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

/// The demo stops at once, with sluice's own reason, when sluice exits during start-up (here:
/// an environment override it does not know), instead of waiting out its readiness loop.
#[test]
fn the_demo_fails_at_once_when_sluice_exits_during_start_up() {
    let typo = format!("SLUICE_{}", "DEMO_PORT"); // a script's knob under sluice's prefix
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("SLUICEDEV_DEMO_BIN", env!("CARGO_BIN_EXE_sluice"))
        .env(
            "SLUICEDEV_DEMO_PORT",
            crate::harness::free_port().to_string(),
        )
        .env(&typo, "18081")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sluice exited before it was ready") && stderr.contains(&typo),
        "{stderr}"
    );
}
