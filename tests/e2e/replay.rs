//! `sluice replay` on the storm fixture: the exact messages and summary, byte for byte, and the
//! same on every run.

use std::path::Path;
use std::process::Command;

fn replay() -> (String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("replay")
        .arg("--config")
        .arg(dir.join("sluice.toml"))
        .arg(dir.join("storm.jsonl"))
        .env_remove("SLUICE_CONFIG")
        .output()
        .expect("sluice replay runs");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_storm_replays_to_the_expected_incidents_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay");
    let (stdout, stderr) = replay();
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(dir.join("storm.expected.jsonl"), &stdout).unwrap();
        std::fs::write(dir.join("storm.summary.txt"), &stderr).unwrap();
    }
    assert_eq!(
        stdout,
        std::fs::read_to_string(dir.join("storm.expected.jsonl")).unwrap()
    );
    assert_eq!(
        stderr,
        std::fs::read_to_string(dir.join("storm.summary.txt")).unwrap()
    );
    assert_eq!(replay(), (stdout, stderr), "a second run says the same");
}

#[test]
fn out_of_order_lines_are_refused_with_the_line_number() {
    let dir = std::env::temp_dir().join(format!("sluice-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"at":"2026-11-02T09:00:10Z","path":"/v2/enqueue","body":{"routing_key":"r","event_action":"resolve","dedup_key":"k"}}"#,
            "\n",
            r#"{"at":"2026-11-02T09:00:05Z","path":"/v2/enqueue","body":{"routing_key":"r","event_action":"resolve","dedup_key":"k"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sluice.toml"))
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2: 'at' 2026-11-02T09:00:05Z is before the previous line's"),
        "{err}"
    );
}
