use super::*;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

#[test]
fn example_config_parses_as_it_is() {
    let text = include_str!("../../config/sluice.toml");
    let config = Config::from_toml(text, no_env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.kafka.brokers, Brokers::Embedded);
    assert_eq!(config.kafka.topic, "sluice.incidents");
    assert!(!config.correlate.rules.is_empty());
}

#[test]
fn empty_config_takes_every_default() {
    let config = Config::from_toml("", no_env()).unwrap();
    assert_eq!(config.server.listen.to_string(), defaults::LISTEN);
    assert_eq!(config.server.max_body_bytes, 524_288);
    assert_eq!(config.kafka.topic, defaults::TOPIC);
    let rule = &config.correlate.rules[0];
    assert_eq!(rule.name, "default");
    assert_eq!(rule.group_wait, Duration::from_secs(30));
    assert_eq!(rule.group_interval, Duration::from_secs(60));
    assert_eq!(rule.window, WindowKind::Rolling);
}

#[test]
fn reports_every_problem_at_once_naming_each_key() {
    let text = r#"
        listne = "x"
        [server]
        listen = "nowhere"
        max_conections = 5
        [kafka]
        brokers = "kafka-1"
        topic = "bad topic"
        linger = "5 parsecs"
        [[correlate.rules]]
        name = "a"
        group_by = ["hostname"]
        window = "sliding"
        [[correlate.rules]]
        name = "a"
        [log]
        format = "xml"
    "#;
    let err = Config::from_toml(text, no_env()).unwrap_err();
    let all = err.problems.join("\n");
    for needle in [
        "listne: unknown key",
        "server.listen:",
        "server.max_conections: unknown key",
        "kafka.brokers: \"kafka-1\" is not host:port",
        "kafka.topic:",
        "kafka.linger:",
        "correlate.rules[0].group_by: \"hostname\"",
        "correlate.rules[0].window:",
        "correlate.rules[1].name: \"a\" is used twice",
        "log.format:",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(err.problems.len(), 10, "{all}");
}

#[test]
fn environment_overrides_win_and_typos_are_caught() {
    let env = vec![
        ("SLUICE_LISTEN".to_string(), "0.0.0.0:9999".to_string()),
        (
            "SLUICE_KAFKA_BROKERS".to_string(),
            "k1:9092,k2:9092".to_string(),
        ),
        ("SLUICE_CONFIG".to_string(), "ignored.toml".to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    let config = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"", env).unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9999");
    assert_eq!(
        config.kafka.brokers,
        Brokers::List("k1:9092,k2:9092".into())
    );

    let err =
        Config::from_toml("", vec![("SLUICE_KAFKA_BROKER".into(), "k:1".into())]).unwrap_err();
    assert!(err.problems[0].starts_with("SLUICE_KAFKA_BROKER: unknown environment override"));
}

#[test]
fn syntax_errors_name_the_line() {
    let err = Config::from_toml("[server\nlisten=1", no_env()).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].contains("line 1"), "{}", err.problems[0]);
}

#[test]
fn managed_kafka_properties_are_refused() {
    let err = Config::from_toml(
        "[kafka.properties]\n\"enable.idempotence\" = \"false\"\n\"client.id\" = \"x\"",
        no_env(),
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].contains("enable.idempotence"));
}

#[test]
fn pipeline_defaults_to_memory_with_both_roles() {
    let config = Config::from_toml("", no_env()).unwrap();
    assert_eq!(config.pipeline.mode, PipelineMode::Memory);
    assert_eq!(
        config.pipeline.roles,
        Roles {
            ingest: true,
            correlate: true
        }
    );
    assert_eq!(config.pipeline.events_topic, "sluice.events");
    assert_eq!(config.pipeline.partitions, 12);
    assert_eq!(config.pipeline.session_timeout, Duration::from_secs(10));
}

#[test]
fn pipeline_mode_and_roles_come_from_the_environment() {
    let env = vec![
        ("SLUICE_PIPELINE".to_string(), "kafka".to_string()),
        ("SLUICE_ROLES".to_string(), "correlate".to_string()),
    ];
    let config = Config::from_toml("[pipeline]\nmode = \"memory\"", env).unwrap();
    assert_eq!(config.pipeline.mode, PipelineMode::Kafka);
    assert_eq!(
        config.pipeline.roles,
        Roles {
            ingest: false,
            correlate: true
        }
    );
    let array = Config::from_toml(
        "[pipeline]\nmode = \"kafka\"\nroles = [\"ingest\"]",
        no_env(),
    )
    .unwrap();
    assert!(array.pipeline.roles.ingest && !array.pipeline.roles.correlate);
}

#[test]
fn pipeline_problems_name_their_keys() {
    let problems = Config::from_toml(
        r#"
        [pipeline]
        mode = "kafak"
        roles = ["ingest", "corelate"]
        events_topic = "bad topic"
        partitions = 0
        session_timeout = "0s"
        retention = "7d"
        "#,
        no_env(),
    )
    .unwrap_err()
    .problems;
    let all = problems.join("\n");
    for needle in [
        "pipeline.mode: \"kafak\" must be \"memory\" or \"kafka\"",
        "pipeline.roles: \"corelate\" is not a role (roles: ingest, correlate)",
        "pipeline.events_topic: \"bad topic\" is not a Kafka topic name",
        "pipeline.partitions: must be greater than zero",
        "pipeline.session_timeout: must be greater than zero",
        "pipeline.retention: unknown key",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    let split_in_memory = Config::from_toml("[pipeline]\nroles = \"ingest\"", no_env())
        .unwrap_err()
        .problems;
    assert_eq!(
        split_in_memory,
        ["pipeline.roles: memory mode runs ingest and correlate in one process; split roles need mode = \"kafka\""]
    );
}

#[test]
fn log_level_is_a_level_or_a_filter_of_levels() {
    for ok in [
        "info",
        "WARN",
        "off",
        "info,sluice=debug",
        "sluice::ingest=trace",
        "warn,sluice[shard{id=1}]=debug",
    ] {
        let text = format!("[log]\nlevel = {ok:?}");
        let config = Config::from_toml(&text, no_env()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert_eq!(config.log.level, ok);
    }
    for bad in [
        "loud",
        "info,sluice",
        "sluice=loud",
        "info,",
        "",
        "info=debug=x",
    ] {
        let text = format!("[log]\nlevel = {bad:?}");
        let err = Config::from_toml(&text, no_env()).unwrap_err();
        assert_eq!(
            err.problems,
            [format!(
                "log.level: {bad:?} is not a level (trace, debug, info, warn, error, off) or a \
                 filter like \"info,sluice=debug\""
            )]
        );
    }
    // As the environment sets it for `sluice serve` and `check-config`.
    let env = vec![("SLUICE_LOG_LEVEL".to_string(), "loud".to_string())];
    let err = Config::from_toml("", env).unwrap_err();
    assert!(
        err.problems[0].starts_with("log.level: \"loud\" is not a level (trace, debug"),
        "{:?}",
        err.problems
    );
}

/// Every `SLUICE_*` variable named in the project (scripts, tests, docs, deployment examples)
/// is one the binary reads: `SLUICE_*` is the binary's namespace, where an unknown name is an
/// error, so the scripts' and tests' own knobs are `SLUICEDEV_*`. (This file is skipped: it
/// names a typo on purpose.)
#[test]
fn every_sluice_variable_the_project_names_is_one_the_binary_reads() {
    fn walk(path: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                return;
            }
            for entry in std::fs::read_dir(path).unwrap() {
                walk(&entry.unwrap().path(), files);
            }
        } else {
            files.push(path.to_path_buf());
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for top in [
        "README.md",
        ".ci",
        "config",
        "deploy",
        "load-tests",
        "scripts",
        "src",
        "tests",
    ] {
        walk(&root.join(top), &mut files);
    }
    let this = root.join("src/config/tests.rs");
    let known: Vec<&str> = ENV_OVERRIDES
        .iter()
        .map(|(name, _)| *name)
        .chain([ENV_CONFIG_PATH])
        .collect();
    let prefix = "SLUICE_";
    let mut unknown = Vec::new();
    for file in files.iter().filter(|f| **f != this) {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (at, _) in text.match_indices(prefix) {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &text[at + prefix.len()..];
            let len = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            let name = &text[at..at + prefix.len() + len];
            if len > 0 && !known.contains(&name) {
                let place = file.strip_prefix(root).unwrap().display().to_string();
                unknown.push(format!("{place}: {name}"));
            }
        }
    }
    assert!(files.len() > 50, "the walk found the project's files");
    assert_eq!(unknown, Vec::<String>::new());
}

#[test]
fn maintenance_windows_parse_and_each_problem_names_its_key() {
    let good = r#"
        [[maintenance]]
        name = "db-patching"
        matchers = [{ name = "entity.host", op = "=~", value = "db-.*" }]
        time_zone = "Europe/Berlin"
        days = ["Sat", "sun"]
        start = "22:30"
        end = "02:00"
    "#;
    let config = Config::from_toml(good, no_env()).unwrap_or_else(|e| panic!("{e}"));
    let w = &config.correlate.maintenance[0];
    assert_eq!(w.days, [false, false, false, false, false, true, true]);
    assert_eq!((w.start, w.end), (22 * 60 + 30, 120));
    assert_eq!(w.zone_name, "Europe/Berlin");
    let bad = r#"
        [[maintenance]]
        name = "a"
        time_zone = "Mars/Olympus"
        days = ["monday", "sat", "sat"]
        start = "25:00"
        end = "2:00"
        every = "week"
        [[maintenance]]
        name = "a"
        start = "01:00"
        end = "01:00"
        matchers = [{ name = "nope", op = "=", value = "x" }]
        [[maintenance]]
        days = []
    "#;
    let err = Config::from_toml(bad, no_env()).unwrap_err();
    let all = err.problems.join("\n");
    for needle in [
        "maintenance[0].time_zone: \"Mars/Olympus\" is not a time zone",
        "maintenance[0].days: \"monday\" must be one of mon, tue",
        "maintenance[0].days: \"sat\" is listed twice",
        "maintenance[0].start: \"25:00\" is not a time HH:MM",
        "maintenance[0].end: \"2:00\" is not a time HH:MM",
        "maintenance[0].every: unknown key",
        "maintenance[1].end: must differ from start",
        "maintenance[1].matchers[0]",
        "maintenance[1].name: \"a\" is used twice",
        "maintenance[2].name: is required",
        "maintenance[2].days: must name at least one day",
        "maintenance[2].start: is required",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}
