//! Test harness: a real Mosquitto per test on a free loopback port, simulated
//! devices, and helpers to drive the engine.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::{self, ConnectionState, EngineHandle, EngineOptions, Event, Events};
use relay_panel::protocol::Action;
use relay_panel::sim::{self, Faults, SimHandle, SimOptions, SimRecord};
use relay_panel::store::AuditEntry;
use tokio::sync::mpsc;

/// A Mosquitto broker on 127.0.0.1:port, stopped when dropped.
pub struct Mosquitto {
    child: Option<Child>,
    /// The port it listens on (kept across restarts).
    pub port: u16,
    /// Holds the config file and the log.
    dir: tempfile::TempDir,
}

fn mosquitto_binary() -> PathBuf {
    for candidate in [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "mosquitto".into()
}

impl Mosquitto {
    /// Starts a broker with `extra` lines appended to its configuration
    /// (they apply to its one listener).
    pub fn start_with(extra: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let anonymous = if extra.contains("allow_anonymous") {
            ""
        } else {
            "allow_anonymous true\n"
        };
        // Started as root, Mosquitto drops to the `mosquitto` user, which
        // cannot read key files in a private temporary directory.
        let as_root = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| m.uid() == 0)
                .unwrap_or(false)
        };
        let anonymous = if as_root {
            format!("user root\n{anonymous}")
        } else {
            anonymous.to_owned()
        };
        let conf = format!(
            "listener {port} 127.0.0.1\n{anonymous}persistence false\nset_tcp_nodelay true\nmax_inflight_messages 1000\nmax_queued_messages 100000\n{extra}\n"
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut broker = Mosquitto {
            child: None,
            port,
            dir,
        };
        broker.resume();
        broker
    }

    /// Starts a plain broker.
    pub fn start() -> Self {
        Mosquitto::start_with("")
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills the broker (clients see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(
                "mosquitto must be installed (apt-get install -y mosquitto); .ci/run installs it",
            );
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on {}: {}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A configuration with `n` relays `r0..r{n-1}` on unique topics, each
/// with a query payload.
pub fn config(url: &str, n: usize) -> Config {
    let mut config = Config::new(url);
    let run: u32 = rand::random();
    for i in 0..n {
        let mut relay = RelayConfig::new(&format!("r{i}"), &format!("test/{run:08x}/relay/{i}"));
        relay.name = format!("Relay {i}");
        relay.group = if i % 2 == 0 {
            "Even".into()
        } else {
            "Odd".into()
        };
        relay.payload_query = Some("?".into());
        config.relays.push(relay);
    }
    config
}

/// Starts simulated devices for `config` and waits until they are subscribed.
pub async fn devices(
    config: &Config,
    faults: Faults,
) -> (SimHandle, mpsc::UnboundedReceiver<SimRecord>) {
    let (mut handle, records) = sim::spawn(SimOptions {
        config: config.clone(),
        faults,
        client_id: None,
    })
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle.ready())
        .await
        .expect("simulated devices subscribed");
    (handle, records)
}

/// An engine under test and its events.
pub struct TestEngine {
    pub handle: EngineHandle,
    pub events: Events,
    /// Every connection state seen so far, in order.
    pub connections: Vec<ConnectionState>,
}

impl TestEngine {
    /// Starts an engine with no store.
    pub fn start(config: &Config) -> Self {
        TestEngine::start_with(EngineOptions::new(config.clone()))
    }

    /// Starts an engine with these options.
    pub fn start_with(options: EngineOptions) -> Self {
        let (handle, events) = engine::spawn(options).unwrap();
        TestEngine {
            handle,
            events,
            connections: Vec::new(),
        }
    }

    /// Next event, failing the test after `within`.
    pub async fn next(&mut self, within: Duration) -> Event {
        let event = tokio::time::timeout(within, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the engine is running");
        if let Event::Connection(state) = &event {
            self.connections.push(state.clone());
        }
        event
    }

    /// Waits for a connection state matching `want`, returning it.
    pub async fn wait_connection(
        &mut self,
        within: Duration,
        want: impl Fn(&ConnectionState) -> bool,
    ) -> ConnectionState {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Event::Connection(state) = self.next(left).await
                && want(&state)
            {
                return state;
            }
        }
    }

    /// Waits until connected and subscribed.
    pub async fn connected(&mut self) {
        self.wait_connection(Duration::from_secs(10), ConnectionState::is_ready)
            .await;
    }

    /// Waits for the end of the next request on `relay`.
    pub async fn finished(&mut self, relay: usize, within: Duration) -> AuditEntry {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Event::Finished { relay: r, entry } = self.next(left).await
                && r == relay
            {
                return entry;
            }
        }
    }

    /// Sends a request and waits for its end.
    pub async fn request(&mut self, relay: usize, action: Action) -> AuditEntry {
        self.handle.request(relay, action);
        self.finished(relay, Duration::from_secs(10)).await
    }

    /// Collects every event arriving within `window`.
    pub async fn drain(&mut self, window: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            out.push(event);
        }
        out
    }

    /// Shuts down and waits for the event stream to end.
    pub async fn stop(mut self) -> Vec<Event> {
        self.handle.shutdown();
        let mut rest = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(5), self.events.recv()).await
        {
            rest.push(event);
        }
        rest
    }
}
