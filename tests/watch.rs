//! `relayctl watch` driven through stdin the way a script drives it,
//! against a real Mosquitto and simulated devices. Every read has a
//! timeout; a watch that does not answer is killed and the test fails.

mod common;

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Mosquitto, config, devices};
use relay_panel::config::Config;
use relay_panel::sim::Faults;
use serde_json::Value;
use tokio::sync::mpsc;

/// How long any single expected line may take.
const LINE_WAIT: Duration = Duration::from_secs(10);

fn write_config(dir: &Path, config: &Config) -> std::path::PathBuf {
    let path = dir.join("panel.toml");
    config.save(&path).unwrap();
    path
}

/// A running `relayctl watch`, killed when dropped.
struct Watch {
    child: Child,
    /// Its standard input (`None` once closed).
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line, from a reading thread.
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything it wrote to stderr so far.
    stderr: Arc<Mutex<String>>,
    /// Every stdout line read so far (for failure messages).
    seen: Vec<String>,
}

impl Watch {
    fn start(config: &Path, data: &Path, json: bool) -> Watch {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relayctl"));
        command
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data);
        if json {
            command.arg("--json");
        }
        let mut child = command
            .arg("watch")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while err.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Watch {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Writes one command line to its stdin.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes its stdin (end of input).
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next stdout line; fails the test after `within` or at EOF.
    async fn line(&mut self, within: Duration) -> String {
        match tokio::time::timeout(within, self.lines.recv()).await {
            Ok(Some(line)) => {
                self.seen.push(line.clone());
                line
            }
            Ok(None) => panic!(
                "watch ended its output; seen: {:#?}; stderr: {}",
                self.seen,
                self.stderr()
            ),
            Err(_) => panic!(
                "no line within {within:?}; seen: {:#?}; stderr: {}",
                self.seen,
                self.stderr()
            ),
        }
    }

    /// The next line as JSON: every line must be one object with a string
    /// `event` field.
    async fn json(&mut self, within: Duration) -> Value {
        let line = self.line(within).await;
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(value["event"].is_string(), "{line}");
        value
    }

    /// The next JSON line that `want` accepts (others, e.g. a second
    /// reconnecting event, are skipped).
    async fn event(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let value = self.json(left).await;
            if want(&value) {
                return value;
            }
        }
    }

    /// The next text line that `want` accepts.
    async fn text_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.line(left).await;
            if want(&line) {
                return line;
            }
        }
    }

    /// Waits for the process to exit (fails after `within`), returning its
    /// status and the stdout lines it printed after the last one read.
    async fn exit(&mut self, within: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + within;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) => rest.push(line),
                Ok(None) => break,
                Err(_) => panic!("watch did not exit within {within:?}; printed {rest:#?}"),
            }
        }
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, rest);
            }
            assert!(
                Instant::now() < deadline,
                "watch closed stdout but did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == event
}

fn connection(state: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "connection" && v["state"] == state
}

/// A script drives `watch --json`: set, get, status and bad lines (which
/// print an error and change nothing); the broker is stopped and restarted
/// while it runs (reconnecting, then connected, and the next set is
/// confirmed); a set sent just before end of input still gets its outcome;
/// end of input ends the watch with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_follows_a_script_through_an_outage() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 2);
    let path = write_config(dir.path(), &config);
    let (mut devices, _) = devices(&config, Faults::default()).await;
    let mut watch = Watch::start(&path, &dir.path().join("data"), true);

    let first = watch.json(LINE_WAIT).await;
    assert!(connection("connecting")(&first), "{first}");
    assert_eq!(first["reason"], Value::Null);
    watch.event(connection("connected")).await;

    watch.send("set r0 on");
    let outcome = watch.event(is("outcome")).await;
    assert_eq!(
        (&outcome["relay"], &outcome["action"], &outcome["outcome"]),
        (&"r0".into(), &"on".into(), &"confirmed".into()),
        "{outcome}"
    );
    assert_eq!(
        (&outcome["state"], &outcome["exit_code"]),
        (&"on".into(), &0.into())
    );
    assert!(outcome["rtt_ms"].as_f64().unwrap() > 0.0, "{outcome}");
    assert!(outcome.get("detail").is_some(), "{outcome}");

    watch.send("get r0");
    let outcome = watch.event(is("outcome")).await;
    assert_eq!(
        (&outcome["action"], &outcome["state"]),
        (&"query".into(), &"on".into())
    );

    watch.send("status");
    let status = watch.event(is("status")).await;
    let relays = status["relays"].as_array().unwrap();
    assert_eq!(relays.len(), 2, "{status}");
    assert_eq!(
        (
            &relays[0]["relay"],
            &relays[0]["state"],
            &relays[0]["pending"],
            &relays[0]["late"]
        ),
        (&"r0".into(), &"on".into(), &false.into(), &false.into()),
        "{status}"
    );
    assert!(
        relays[0]["acknowledged_at_ms"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert_eq!(
        (&relays[1]["state"], &relays[1]["acknowledged_at_ms"]),
        (&Value::Null, &Value::Null),
        "{status}"
    );

    for (line, says) in [
        ("frobnicate r0", "unknown command"),
        ("set nope on", "no relay \"nope\""),
        ("set r0", "set needs a relay id"),
        ("set r0 sideways", "neither on nor off"),
    ] {
        watch.send(line);
        let error = watch.json(LINE_WAIT).await;
        assert_eq!(error["event"], "error", "{line}: {error}");
        assert!(error["message"].as_str().unwrap().contains(says), "{error}");
        assert_eq!(error["line"], line);
    }

    broker.stop();
    let down = watch.event(connection("reconnecting")).await;
    assert!(!down["reason"].as_str().unwrap().is_empty(), "{down}");
    assert!(down["retry_in_ms"].is_u64(), "{down}");
    // Let the devices notice the outage too before the broker returns.
    let noticed = Instant::now();
    while devices.is_ready() && noticed.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.resume();
    let up = watch.event(connection("connected")).await;
    assert_eq!(up["reason"], Value::Null);
    tokio::time::timeout(Duration::from_secs(10), devices.ready())
        .await
        .expect("devices subscribed again");

    // Sent and at once followed by end of input: the watch waits for it.
    watch.send("set r0 off");
    watch.close_stdin();
    let outcome = watch.event(is("outcome")).await;
    assert_eq!(
        (
            &outcome["outcome"],
            &outcome["state"],
            &outcome["exit_code"]
        ),
        (&"confirmed".into(), &"off".into(), &0.into()),
        "{outcome}"
    );
    let (status, rest) = watch.exit(LINE_WAIT).await;
    assert_eq!(status.code(), Some(0), "{rest:?} {}", watch.stderr());
    for line in rest {
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_ne!(value["event"], "outcome", "nothing else was asked: {line}");
    }
}

/// Text mode prints one readable line per event: the connection, an
/// outcome (`r0 on: confirmed on in …`), one status line per relay, an
/// error for a bad line; end of input ends it with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_text_prints_readable_lines() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 2);
    let path = write_config(dir.path(), &config);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut watch = Watch::start(&path, &dir.path().join("data"), false);

    assert_eq!(watch.line(LINE_WAIT).await, "connection: connecting");
    watch.text_line(|l| l == "connection: connected").await;
    watch.send("set r0 on");
    let line = watch.line(LINE_WAIT).await;
    assert!(line.starts_with("r0 on: confirmed on in "), "{line}");
    watch.send("status");
    let r0 = watch.line(LINE_WAIT).await;
    assert!(r0.starts_with("status r0: on, acknowledged "), "{r0}");
    let r1 = watch.line(LINE_WAIT).await;
    assert_eq!(r1, "status r1: unknown, never acknowledged");
    watch.send("toggle r0");
    let line = watch.line(LINE_WAIT).await;
    assert!(
        line.starts_with("error: unknown command \"toggle\""),
        "{line}"
    );
    watch.close_stdin();
    let (status, rest) = watch.exit(LINE_WAIT).await;
    assert_eq!(status.code(), Some(0), "{}", watch.stderr());
    assert_eq!(
        rest.last().map(String::as_str),
        Some("connection: stopped"),
        "{rest:?}"
    );
}

/// A connection that fails for certain (the broker refuses anonymous
/// clients) ends the watch with exit 1 and the reason on stderr, after a
/// `failed` connection line, although stdin is still open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_exits_1_when_the_connection_fails_for_certain() {
    let broker = Mosquitto::start_with("allow_anonymous false\n");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config(&broker.url(), 1));
    let mut watch = Watch::start(&path, &dir.path().join("data"), true);
    let failed = watch.event(connection("failed")).await;
    let reason = failed["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("refused"), "{reason}");
    let (status, _) = watch.exit(LINE_WAIT).await;
    assert_eq!(status.code(), Some(1));
    assert!(watch.stderr().contains(&reason), "{}", watch.stderr());
}

/// Ctrl+C (SIGINT) ends the watch cleanly with exit 0: a request still in
/// flight is reported as cut off ("connection lost"), never as confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_cleanly_on_sigint() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    // No device: the request stays in flight until the watch stops.
    let path = write_config(dir.path(), &config(&broker.url(), 1));
    let mut watch = Watch::start(&path, &dir.path().join("data"), true);
    watch.event(connection("connected")).await;
    watch.send("set r0 on");
    // Wait until the engine reports it in flight.
    let asked = Instant::now();
    loop {
        watch.send("status");
        let status = watch.event(is("status")).await;
        if status["relays"][0]["pending"] == true {
            break;
        }
        assert!(asked.elapsed() < LINE_WAIT, "never pending: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kill = Command::new("kill")
        .arg("-INT")
        .arg(watch.child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let (status, rest) = watch.exit(LINE_WAIT).await;
    assert_eq!(status.code(), Some(0), "{rest:?} {}", watch.stderr());
    let outcomes: Vec<Value> = rest
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "outcome")
        .collect();
    assert_eq!(outcomes.len(), 1, "{rest:?}");
    assert_eq!(outcomes[0]["outcome"], "connection lost", "{rest:?}");
    assert_eq!(outcomes[0]["exit_code"], 1);
}

/// `watch --json` prints a device going offline and back
/// (`{"event":"availability","online":…}`) and a change made at the device
/// (`{"event":"changed","state":…,"source":…}`), and its `status` command
/// gives the newest evidence with its source; the text form says the same
/// in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_availability_and_changes_at_the_device() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.url(), 1);
    let run: u32 = rand::random();
    let device = format!("shelly-{run:08x}");
    config.relays[0] = relay_panel::config::RelayConfig::shelly("porch", &device, 0);
    let path = write_config(dir.path(), &config);
    let mut wire = common::Wire::connect(&broker.url()).await;
    wire.publish(&format!("{device}/online"), "true", true)
        .await;
    let mut watch = Watch::start(&path, &dir.path().join("data"), true);
    let online = watch.event(is("availability")).await;
    assert_eq!(
        (&online["relay"], &online["online"], &online["retained"]),
        (&"porch".into(), &true.into(), &true.into()),
        "{online}"
    );

    // The device loses power: its will.
    wire.publish(&format!("{device}/online"), "false", true)
        .await;
    let offline = watch.event(is("availability")).await;
    assert_eq!(
        (&offline["online"], &offline["retained"]),
        (&false.into(), &false.into()),
        "{offline}"
    );
    assert!(offline["since_ms"].as_u64().unwrap() > 0, "{offline}");

    wire.publish(&format!("{device}/online"), "true", true)
        .await;
    watch.event(is("availability")).await;
    wire.publish(
        &format!("{device}/events/rpc"),
        r#"{"method":"NotifyStatus","params":{"switch:0":{"id":0,"output":true,"source":"button"}}}"#,
        false,
    )
    .await;
    let changed = watch.event(is("changed")).await;
    assert_eq!(
        (&changed["relay"], &changed["state"], &changed["source"]),
        (&"porch".into(), &"on".into(), &"button".into()),
        "{changed}"
    );
    watch.send("status");
    let status = watch.event(is("status")).await;
    let porch = &status["relays"][0];
    assert_eq!(
        (
            &porch["state"],
            &porch["source"],
            &porch["online"],
            &porch["last_confirmed"]
        ),
        (&"on".into(), &"button".into(), &true.into(), &Value::Null),
        "{status}"
    );
    watch.close_stdin();
    let (exit, _) = watch.exit(Duration::from_secs(10)).await;
    assert!(exit.success());

    // The same in words.
    let mut watch = Watch::start(&path, &dir.path().join("data"), false);
    watch
        .text_line(|l| l.starts_with("connection: connected"))
        .await;
    wire.publish(&format!("{device}/online"), "false", true)
        .await;
    let line = watch
        .text_line(|l| l.starts_with("porch: device online"))
        .await;
    assert_eq!(line, "porch: device online", "the retained will, first");
    let line = watch
        .text_line(|l| l.starts_with("porch: device offline"))
        .await;
    assert!(line.starts_with("porch: device offline since 20"), "{line}");
    wire.publish(
        &format!("{device}/status/switch:0"),
        r#"{"id":0,"source":"HTTP_in","output":false}"#,
        false,
    )
    .await;
    let line = watch
        .text_line(|l| l.contains("changed at the device"))
        .await;
    assert_eq!(line, "porch: changed at the device: off (HTTP_in)");
}
