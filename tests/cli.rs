//! `relayctl` and `relay-sim` as a user runs them, against a real Mosquitto.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Mosquitto, config, devices};
use relay_panel::config::Config;
use relay_panel::sim::Faults;

fn write_config(dir: &Path, config: &Config) -> std::path::PathBuf {
    let path = dir.join("panel.toml");
    config.save(&path).unwrap();
    path
}

fn relayctl(config: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relayctl"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `set`, `get`, `status` and `log` against simulated devices, with the
/// documented exit codes and output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayctl_set_get_status_log() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 3);
    let path = write_config(dir.path(), &config);
    let faults = Faults {
        fail: ["r2".to_owned()].into_iter().collect(),
        ..Faults::default()
    };
    let (devices, _) = devices(&config, faults).await;
    let data = dir.path().join("data");

    let out = relayctl(&path, &data, &["set", "r1", "on"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("r1 on (confirmed in "), "{stdout}");
    assert_eq!(devices.state("r1"), Some(relay_panel::RelayState::On));

    let out = relayctl(&path, &data, &["--json", "get", "r1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["state"], "on");
    assert_eq!(json["outcome"], "confirmed");
    assert!(json["rtt_ms"].as_f64().unwrap() > 0.0);

    let out = relayctl(&path, &data, &["set", "r2", "on"]);
    assert_eq!(out.status.code(), Some(3), "device error exit code");
    assert!(
        text(&out.stderr).contains(relay_panel::sim::FAIL_TEXT),
        "{}",
        text(&out.stderr)
    );

    let out = relayctl(&path, &data, &["status"]);
    assert_eq!(out.status.code(), Some(0));
    let status = text(&out.stdout);
    let r1 = status.lines().find(|l| l.starts_with("r1 ")).unwrap();
    assert!(
        r1.contains("ON") && (r1.contains("ago") || r1.contains("just now")),
        "{status}"
    );
    let r0 = status.lines().find(|l| l.starts_with("r0 ")).unwrap();
    assert!(r0.contains("UNKNOWN") && r0.contains("never"), "{status}");

    let out = relayctl(&path, &data, &["log", "-n", "10"]);
    let log = text(&out.stdout);
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(
        log.lines().next().unwrap().contains("device error"),
        "newest first: {log}"
    );

    let out = relayctl(&path, &data, &["--json", "status"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[1]["state"], "on");
    assert_eq!(json[0]["state"], serde_json::Value::Null);
}

/// No device answers: exit code 2 after the timeout, with an explanation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayctl_no_response_exits_2() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config(&broker.url(), 1));
    let started = Instant::now();
    let out = relayctl(
        &path,
        &dir.path().join("data"),
        &["--timeout-ms", "300", "set", "r0", "on"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no response after 0.3 s"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Usage, configuration and connection problems exit 1 with a message
/// that says what to do.
#[test]
fn relayctl_errors_exit_1_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No broker listening: fails fast, names the broker.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = write_config(dir.path(), &config(&format!("mqtt://127.0.0.1:{port}"), 1));
    let started = Instant::now();
    let out = relayctl(&path, &data, &["set", "r0", "on"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("connection refused") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Unknown relay.
    let out = relayctl(&path, &data, &["set", "nope", "on"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no relay \"nope\""),
        "{}",
        text(&out.stderr)
    );

    // Broken configuration: file, line, column.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"x/#\"\n",
    )
    .unwrap();
    let out = relayctl(&broken, &data, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("broken.toml:5:1") && stderr.contains("wildcard"),
        "{stderr}"
    );

    // Missing configuration.
    let out = relayctl(&dir.path().join("missing.toml"), &data, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no configuration at"),
        "{}",
        text(&out.stderr)
    );

    // Bad usage.
    let out = relayctl(&path, &data, &["set", "r0", "maybe"]);
    assert_ne!(out.status.code(), Some(0));
}

/// `RELAY_PANEL_CONFIG` names the configuration when `--config` is absent.
#[test]
fn relayctl_reads_config_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config("mqtt://127.0.0.1:1", 2));
    let out = Command::new(env!("CARGO_BIN_EXE_relayctl"))
        .env("RELAY_PANEL_CONFIG", &path)
        .env("RELAY_PANEL_DATA_DIR", dir.path().join("data"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Relay 1"),
        "{}",
        text(&out.stdout)
    );
}

/// The `relay-sim` binary answers `mosquitto_rr` (which sends no
/// correlation data unless asked), and `-v` logs each request.
#[test]
fn relay_sim_answers_mosquitto_rr() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 2);
    let path = write_config(dir.path(), &config);
    let mut sim = Command::new(env!("CARGO_BIN_EXE_relay-sim"))
        .arg("--config")
        .arg(&path)
        .arg("-v")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the simulator says it listens.
    let mut stderr = std::io::BufReader::new(sim.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("2 relay(s) listening"), "{line}");

    let topic = &config.relays[1].request_topic;
    let rr = |payload: &str, extra: &[&str]| {
        Command::new("mosquitto_rr")
            .args([
                "-V",
                "5",
                "-p",
                &broker.port.to_string(),
                "-t",
                topic,
                "-e",
                "rr/response",
                "-m",
                payload,
                "-W",
                "3",
            ])
            .args(extra)
            .output()
            .expect("mosquitto_rr (package mosquitto-clients)")
    };
    let out = rr("1", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "1");
    let out = rr("?", &["-D", "publish", "correlation-data", "abc"]);
    assert_eq!(text(&out.stdout).trim(), "1", "query answers the state");
    let out = rr("0", &[]);
    assert_eq!(text(&out.stdout).trim(), "0");

    // The simulator logs each request just after answering it: read its
    // three lines (blocking until they come), then stop it.
    let mut stdout = std::io::BufReader::new(sim.stdout.take().unwrap());
    let mut log = String::new();
    for _ in 0..3 {
        std::io::BufRead::read_line(&mut stdout, &mut log).unwrap();
    }
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(
        log.lines()
            .next()
            .unwrap()
            .starts_with("r1 <- \"1\" corr=none now on"),
        "{log}"
    );
}

/// relay-sim with faults against relayctl: with every request dropped,
/// relayctl reports no response rather than a state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayctl_never_reports_unconfirmed_state() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let path = write_config(dir.path(), &config);
    let faults = Faults {
        drop: 1.0,
        ..Faults::default()
    };
    let (_devices, _) = devices(&config, faults).await;
    let data = dir.path().join("data");
    let out = relayctl(&path, &data, &["--timeout-ms", "200", "set", "r0", "on"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).is_empty(),
        "nothing on stdout without confirmation"
    );
    let out = relayctl(&path, &data, &["status"]);
    assert!(
        text(&out.stdout).contains("UNKNOWN"),
        "{}",
        text(&out.stdout)
    );
}

/// A full disk (simulated with a file-size limit, so the store's next write
/// fails): the device's confirmation is still reported, the failed write is
/// named in a warning, and what was stored before is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_keeps_what_was_stored_and_says_so() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 2);
    let path = write_config(dir.path(), &config);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let data = dir.path().join("data");
    let out = relayctl(&path, &data, &["set", "r0", "on"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Every file may grow no further than the store's current size.
    let limit_kb = ["relay-panel.sqlite", "relay-panel.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len() / 1024)
        .max()
        .unwrap();
    let script = format!(
        "trap '' XFSZ; ulimit -f {limit_kb}; exec \"$0\" --config \"$1\" --data-dir \"$2\" set r1 on"
    );
    let out = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_relayctl")])
        .arg(&path)
        .arg(&data)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        text(&out.stdout).starts_with("r1 on (confirmed"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("could not save"),
        "the failed write is reported: {stderr}"
    );
    let status = text(&relayctl(&path, &data, &["status"]).stdout);
    let r0 = status.lines().find(|l| l.starts_with("r0 ")).unwrap();
    assert!(
        r0.contains("ON"),
        "what was stored before is kept: {status}"
    );
}
