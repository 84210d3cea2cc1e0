//! `relayctl` and `relay-sim` as a user runs them, against a real Mosquitto.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Mosquitto, config, devices};
use relay_panel::config::Config;
use relay_panel::sim::Faults;

fn write_config(dir: &Path, config: &Config) -> std::path::PathBuf {
    let path = dir.join("panel.toml");
    config.save(&path).unwrap();
    path
}

/// Longest a relayctl run may take before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Starts relayctl with its output piped.
fn spawn_relayctl(config: &Path, data: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_relayctl"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a relayctl run to end; kills it and fails the test after
/// [`RUN_LIMIT`] (a hanging relayctl must not hang the test).
fn finish(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("relayctl did not exit within {RUN_LIMIT:?}");
        }
    }
}

fn relayctl(config: &Path, data: &Path, args: &[&str]) -> Output {
    finish(spawn_relayctl(config, data, args))
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
/// that says what to do, within seconds.
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
    // No broker listening: waits out its connect wait (7.5 s), then names the
    // broker and the last reason seen.
    let started = Instant::now();
    let out = relayctl(&path, &data, &["set", "r0", "on"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("within 7.5 s")
            && stderr.contains("connection refused")
            && stderr.contains(&port.to_string()),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
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

    // Bad usage: 1 as well (clap's own 2 would read as "no response").
    let out = relayctl(&path, &data, &["set", "r0", "maybe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("maybe"), "{}", text(&out.stderr));
    let out = relayctl(&path, &data, &["--version"]);
    assert_eq!(out.status.code(), Some(0));
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

/// A "device" that answers every request on `topic` with `payload`,
/// copying Correlation Data to the Response Topic (a relay stuck in one
/// state). Returns once it is subscribed.
async fn stuck_device(port: u16, topic: &str, payload: &'static str) {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};

    let id = format!("stuck-device-{:08x}", rand::random::<u32>());
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 64);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::SubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("stuck device: {e}"),
            }
        }
    })
    .await
    .expect("stuck device subscribed");
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            let MqttEvent::Incoming(Packet::Publish(request)) = event else {
                continue;
            };
            let properties = request.properties.unwrap_or_default();
            let Some(response_topic) = properties.response_topic else {
                continue;
            };
            let reply = PublishProperties {
                correlation_data: properties.correlation_data,
                ..Default::default()
            };
            let _ = client.try_publish_with_properties(
                response_topic,
                QoS::AtLeastOnce,
                false,
                payload,
                reply,
            );
        }
    });
}

/// Asked on, the device reports off: exit 3 with both states named (stderr
/// in text mode, nothing on stdout), and in JSON the reported state and
/// exit code 3. Asked off, the same device confirms: exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_reporting_the_other_state_exits_3() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let path = write_config(dir.path(), &config);
    stuck_device(broker.port, &config.relays[0].request_topic, "0").await;
    let data = dir.path().join("data");

    let out = relayctl(&path, &data, &["set", "r0", "on"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("asked on") && stderr.contains("device reports off"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));

    let out = relayctl(&path, &data, &["--json", "set", "r0", "on"]);
    let json = one_json_object(&out);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        (&json["action"], &json["state"], &json["exit_code"]),
        (&"on".into(), &"off".into(), &3.into()),
        "{json}"
    );

    let out = relayctl(&path, &data, &["set", "r0", "off"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("r0 off (confirmed in "));
}

/// The one JSON object a `--json` run printed, checked to be exactly one
/// (one line, nothing else on stdout) with every documented field and the
/// process's exit code in `exit_code`.
fn one_json_object(out: &Output) -> serde_json::Value {
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    let mut values = serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>();
    let json = values
        .next()
        .expect("a JSON value on stdout")
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(values.next().is_none(), "exactly one value: {stdout}");
    for field in [
        "relay",
        "action",
        "outcome",
        "state",
        "evidence",
        "rtt_ms",
        "detail",
        "exit_code",
    ] {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }
    assert_eq!(
        json["exit_code"].as_i64(),
        out.status.code().map(i64::from),
        "{json}"
    );
    json
}

/// `--json`: exactly one JSON object on stdout for every outcome of `set`
/// and `get` — confirmed (0), no response (2), and the errors that happen
/// before or without a request (1): unknown relay id, no configuration
/// file, an invalid configuration, no broker listening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_prints_exactly_one_object_for_every_outcome() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No broker: started first, it waits out its 7.5 s while the rest runs.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = dir.path().join("nowhere.toml");
    config(&format!("mqtt://127.0.0.1:{port}"), 1)
        .save(&nowhere)
        .unwrap();
    let no_broker = spawn_relayctl(
        &nowhere,
        &dir.path().join("data-2"),
        &["--json", "set", "r0", "on"],
    );

    let config = config(&broker.url(), 2);
    let path = write_config(dir.path(), &config);
    // A device for r0 only: r1 never answers.
    let mut answered = config.clone();
    answered.relays.truncate(1);
    let (_devices, _) = devices(&answered, Faults::default()).await;

    let out = relayctl(&path, &data, &["--json", "set", "r0", "on"]);
    let json = one_json_object(&out);
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(
        (&json["outcome"], &json["state"]),
        (&"confirmed".into(), &"on".into())
    );

    let out = relayctl(&path, &data, &["--json", "get", "r0"]);
    let json = one_json_object(&out);
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(
        (&json["action"], &json["state"]),
        (&"query".into(), &"on".into())
    );

    let out = relayctl(
        &path,
        &data,
        &["--json", "--timeout-ms", "200", "set", "r1", "on"],
    );
    let json = one_json_object(&out);
    assert_eq!(out.status.code(), Some(2), "{json}");
    assert_eq!(
        (&json["outcome"], &json["state"]),
        (&"no response".into(), &serde_json::Value::Null)
    );

    let error = |out: &Output, relay: &str, action: &str, says: &str| {
        let json = one_json_object(out);
        assert_eq!(out.status.code(), Some(1), "{json}");
        assert_eq!(json["outcome"], "error", "{json}");
        assert_eq!(
            (json["relay"].as_str(), json["action"].as_str()),
            (Some(relay), Some(action))
        );
        assert_eq!(
            (&json["state"], &json["rtt_ms"]),
            (&serde_json::Value::Null, &serde_json::Value::Null)
        );
        let detail = json["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{detail}");
        assert!(
            text(&out.stderr).is_empty(),
            "the object carries the reason: {}",
            text(&out.stderr)
        );
    };
    let out = relayctl(&path, &data, &["--json", "set", "nope", "off"]);
    error(&out, "nope", "off", "no relay \"nope\"");
    let out = relayctl(&path, &data, &["--json", "get", "nope"]);
    error(&out, "nope", "query", "known ids: r0, r1");
    let missing = dir.path().join("missing.toml");
    let out = relayctl(&missing, &data, &["--json", "set", "r0", "on"]);
    error(&out, "r0", "on", "no configuration at");
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"x/#\"\n",
    )
    .unwrap();
    let out = relayctl(&broken, &data, &["--json", "get", "a"]);
    error(&out, "a", "query", "wildcard");

    let out = finish(no_broker);
    error(&out, "r0", "on", "within 7.5 s");
    let detail = one_json_object(&out)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains(&port.to_string()),
        "names the broker: {detail}"
    );
}

/// Forwards every connection accepted on `listener` to the broker on
/// `port` (a broker that comes up when the listener is bound).
fn forward(listener: std::net::TcpListener, port: u16) {
    use std::net::{Shutdown, TcpStream};
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    };
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(broker) = TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            let _ = (client.set_nodelay(true), broker.set_nodelay(true));
            pipe(client.try_clone().unwrap(), broker.try_clone().unwrap());
            pipe(broker, client);
        }
    });
}

/// A broker that comes up 1.5 s after `relayctl set` started: relayctl
/// keeps waiting through the reconnects (its connect wait is 7.5 s) and the
/// request is confirmed. (It used to give up after three reconnect events.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_waits_for_a_broker_that_comes_up_late() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    // The devices are subscribed through the real port from the start;
    // relayctl is pointed at a port where nothing listens yet.
    let (_devices, _) = devices(&config, Faults::default()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut late = config.clone();
    late.broker.url = format!("mqtt://127.0.0.1:{port}");
    let path = write_config(dir.path(), &late);

    let started = Instant::now();
    let child = spawn_relayctl(&path, &dir.path().join("data"), &["set", "r0", "on"]);
    std::thread::sleep(Duration::from_millis(1500));
    forward(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        broker.port,
    );
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("r0 on (confirmed in "),
        "{}",
        text(&out.stdout)
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

/// A certain failure (the broker refuses this client) ends relayctl at
/// once with exit 1 and the broker's reason, without waiting out the
/// connect wait.
#[test]
fn refused_connection_exits_1_at_once() {
    let broker = Mosquitto::start_with("allow_anonymous false\n");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config(&broker.url(), 1));
    let started = Instant::now();
    let out = relayctl(
        &path,
        &dir.path().join("data"),
        &["--json", "set", "r0", "on"],
    );
    let json = one_json_object(&out);
    assert_eq!(out.status.code(), Some(1), "{json}");
    let detail = json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("refused"), "{detail}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A command/state device: publishes `state` on `state_topic` (not
/// retained) for every command on `command_topic`. Returns once subscribed.
async fn state_device(port: u16, command_topic: &str, state_topic: &str, state: &'static str) {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};

    let id = format!("state-device-{:08x}", rand::random::<u32>());
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 64);
    client
        .subscribe(command_topic, QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::SubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("state device: {e}"),
            }
        }
    })
    .await
    .expect("state device subscribed");
    let state_topic = state_topic.to_owned();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let MqttEvent::Incoming(Packet::Publish(_)) = event {
                let _ = client.try_publish(&state_topic, QoS::AtLeastOnce, false, state);
            }
        }
    });
}

/// relayctl says how each state is known: `outcome` `confirmed` with
/// `evidence` `correlated` for a correlated reply, `outcome` and
/// `evidence` `reported` for a state device's report; both exit 0, and
/// the text says "reported".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayctl_prints_the_evidence() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.url(), 1);
    let run: u32 = rand::random();
    let (command, state) = (
        format!("bench/{run:08x}/set"),
        format!("bench/{run:08x}/state"),
    );
    config.relays.push(relay_panel::config::RelayConfig::state(
        "bench", &command, &state,
    ));
    let path = write_config(dir.path(), &config);
    stuck_device(broker.port, &config.relays[0].request_topic, "1").await;
    state_device(broker.port, &command, &state, "ON").await;
    let data = dir.path().join("data");

    let out = relayctl(&path, &data, &["--json", "set", "r0", "on"]);
    let json = one_json_object(&out);
    assert_eq!(
        (&json["outcome"], &json["evidence"], &json["exit_code"]),
        (&"confirmed".into(), &"correlated".into(), &0.into()),
        "{json}"
    );

    let out = relayctl(&path, &data, &["--json", "set", "bench", "on"]);
    let json = one_json_object(&out);
    assert_eq!(
        (
            &json["outcome"],
            &json["evidence"],
            &json["state"],
            &json["exit_code"]
        ),
        (
            &"reported".into(),
            &"reported".into(),
            &"on".into(),
            &0.into()
        ),
        "{json}"
    );

    let out = relayctl(&path, &data, &["set", "bench", "on"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("bench on (reported in "), "{stdout}");

    let out = relayctl(&path, &data, &["--json", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status[0]["evidence"], "correlated", "{status}");
    assert_eq!(status[1]["evidence"], "reported", "{status}");
}

/// A relay whose device is offline (its retained last will) is not sent
/// anything by `set` (exit 4, `--json` outcome "offline") unless
/// `--force`; `status` shows it offline (`online: false`), and once the
/// device is back, and after a change made at the device, `status --json`
/// gives both facts: the newest evidence with its source, and the last
/// confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_relay_exits_4_and_status_tells_both_facts() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.url(), 2);
    let run: u32 = rand::random();
    let will = format!("test/{run:08x}/pump/status");
    let state_topic = format!("test/{run:08x}/pump/state");
    config.relays[0].availability_topic = will.clone();
    config.relays[0].state_topic = state_topic.clone();
    config.panel.operator = Some("alice".into());
    let path = write_config(dir.path(), &config);
    let (_devices, mut records) = devices(&config, Faults::default()).await;
    let data = dir.path().join("data");
    let mut wire = common::Wire::connect(&broker.url()).await;
    wire.publish(&will, "offline", true).await;

    let out = relayctl(&path, &data, &["set", "r0", "on"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("r0: device offline since before ") && stderr.contains("--force"),
        "{stderr}"
    );
    let out = relayctl(&path, &data, &["--json", "set", "r0", "off"]);
    let json = one_json_object(&out);
    assert_eq!(
        (&json["outcome"], &json["exit_code"]),
        (&"offline".into(), &4.into()),
        "{json}"
    );
    assert_eq!(out.status.code(), Some(4));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(records.try_recv().is_err(), "nothing reached the device");

    // A relay without a last will is not held back.
    let out = relayctl(&path, &data, &["set", "r1", "on"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = relayctl(&path, &data, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let r0 = table.lines().find(|l| l.starts_with("r0 ")).unwrap();
    assert!(r0.contains("offline since before"), "{table}");
    let out = relayctl(&path, &data, &["--json", "status"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&json[0]["online"], &json[1]["online"]),
        (&false.into(), &serde_json::Value::Null),
        "{json}"
    );

    let out = relayctl(&path, &data, &["set", "r0", "off", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(records.try_recv().is_ok(), "--force sent it");

    // Back online; then switched at the device.
    wire.publish(&will, "online", true).await;
    let out = relayctl(&path, &data, &["set", "r0", "off"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // `watch` hears the change while it runs (a one-shot status reads
    // only what the broker keeps: a retained state).
    wire.publish_with(
        &state_topic,
        "1",
        true,
        vec![("source".into(), "button".into())],
    )
    .await;
    let out = relayctl(&path, &data, &["--json", "status"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r0 = &json[0];
    assert_eq!(
        (&r0["state"], &r0["evidence"], &r0["source"], &r0["online"]),
        (
            &"on".into(),
            &"reported".into(),
            &"retained".into(),
            &true.into()
        ),
        "{r0}"
    );
    assert_eq!(
        (
            &r0["last_confirmed"]["state"],
            &r0["last_confirmed"]["evidence"],
            &r0["last_confirmed"]["operator"]
        ),
        (&"off".into(), &"correlated".into(), &"alice".into()),
        "{r0}"
    );
    assert!(r0["at"].as_u64().unwrap() > 0, "{r0}");
}

/// Each command-line tool names itself in `--version` (not the package).
#[test]
fn versions_name_the_tool() {
    for (tool, exe) in [
        ("relayctl", env!("CARGO_BIN_EXE_relayctl")),
        ("relay-sim", env!("CARGO_BIN_EXE_relay-sim")),
    ] {
        let out = Command::new(exe).arg("--version").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(&format!("{tool} ")),
            "{tool} --version printed {text:?}"
        );
    }
}
