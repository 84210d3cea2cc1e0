//! Test harness: a real Mosquitto per test on a free loopback port, simulated
//! devices, and helpers to drive the engine.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::{self, ConnectionState, EngineHandle, EngineOptions, Event, Events};
use relay_panel::protocol::Action;
use relay_panel::sim::{self, Faults, SimHandle, SimOptions, SimRecord};
use relay_panel::store::AuditEntry;
use relay_testkit::LocalMosquitto;
use tokio::sync::mpsc;

/// A Mosquitto on a free loopback port (see `relay_panel::mosquitto`);
/// panics with a clear message when it cannot start.
pub struct Mosquitto(LocalMosquitto);

impl Mosquitto {
    /// Starts a plain broker.
    pub fn start() -> Self {
        Mosquitto::start_with("")
    }

    /// Starts a broker with extra configuration lines for its listener.
    pub fn start_with(extra: &str) -> Self {
        Mosquitto(LocalMosquitto::start_with(extra).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts the broker again on the same port.
    pub fn resume(&mut self) {
        self.0.resume().unwrap_or_else(|e| panic!("{e}"));
    }
}

impl std::ops::Deref for Mosquitto {
    type Target = LocalMosquitto;
    fn deref(&self) -> &LocalMosquitto {
        &self.0
    }
}

impl std::ops::DerefMut for Mosquitto {
    fn deref_mut(&mut self) -> &mut LocalMosquitto {
        &mut self.0
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
    /// Each relay's latest status seen in an event.
    pub statuses: std::collections::HashMap<usize, relay_panel::relay::RelayStatus>,
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
            statuses: std::collections::HashMap::new(),
        }
    }

    /// Next event, failing the test after `within`.
    pub async fn next(&mut self, within: Duration) -> Event {
        let event = tokio::time::timeout(within, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the engine is running");
        match &event {
            Event::Connection(state) => self.connections.push(state.clone()),
            Event::Relay { relay, status } => {
                self.statuses.insert(*relay, status.clone());
            }
            _ => {}
        }
        event
    }

    /// Waits for an event `want` picks (returning what it picked),
    /// failing the test after `within`.
    pub async fn wait_for<T>(&mut self, within: Duration, want: impl Fn(&Event) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(found) = want(&self.next(left).await) {
                return found;
            }
        }
    }

    /// Waits until the relays' latest statuses satisfy `want` (events
    /// arrive in any order across relays), failing the test after
    /// `within`.
    pub async fn statuses_until(
        &mut self,
        within: Duration,
        want: impl Fn(&std::collections::HashMap<usize, relay_panel::relay::RelayStatus>) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !want(&self.statuses) {
            let left = deadline.saturating_duration_since(Instant::now());
            self.next(left).await;
        }
    }

    /// The next change at the device of `relay` (its audit entry).
    pub async fn changed(&mut self, relay: usize) -> AuditEntry {
        self.wait_for(Duration::from_secs(10), |event| match event {
            Event::Changed { relay: r, entry } if *r == relay => Some(entry.clone()),
            _ => None,
        })
        .await
    }

    /// The next availability of `relay` heard.
    pub async fn availability(&mut self, relay: usize) -> relay_panel::relay::Availability {
        self.wait_for(Duration::from_secs(10), |event| match event {
            Event::Availability {
                relay: r,
                availability,
            } if *r == relay => Some(*availability),
            _ => None,
        })
        .await
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

    /// Waits until the engine gives up (`Failed`) and returns its reason.
    pub async fn failure(&mut self, within: Duration) -> String {
        match self
            .wait_connection(within, |s| matches!(s, ConnectionState::Failed { .. }))
            .await
        {
            ConnectionState::Failed { reason } => reason,
            other => unreachable!("{other:?}"),
        }
    }

    /// Waits until connected and subscribed.
    pub async fn connected(&mut self) {
        self.wait_connection(Duration::from_secs(10), ConnectionState::is_ready)
            .await;
    }

    /// Returns at once if the last connection state seen is connected,
    /// else waits until it is.
    pub async fn ensure_connected(&mut self) {
        if !self
            .connections
            .last()
            .is_some_and(ConnectionState::is_ready)
        {
            self.connected().await;
        }
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
            match &event {
                Event::Connection(state) => self.connections.push(state.clone()),
                Event::Relay { relay, status } => {
                    self.statuses.insert(*relay, status.clone());
                }
                _ => {}
            }
            out.push(event);
        }
        out
    }

    /// Asserts that no availability event arrives within `window` (`why`
    /// says what one would mean).
    pub async fn no_availability_within(&mut self, window: Duration, why: &str) {
        let quiet = self.drain(window).await;
        assert!(
            !quiet
                .iter()
                .any(|e| matches!(e, Event::Availability { .. })),
            "{why}: {quiet:?}"
        );
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

/// A request as a [`ScriptedDevice`] received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The payload.
    pub payload: String,
    /// Where to answer.
    pub response_topic: Option<String>,
    /// The request's correlation data.
    pub correlation: Option<bytes::Bytes>,
    /// Its user properties.
    pub user_properties: Vec<(String, String)>,
}

/// A device whose answers the test writes by hand: it receives requests on
/// one topic and answers only when told, in whatever order the test likes
/// (answers overtaking each other, answers after the timeout).
pub struct ScriptedDevice {
    client: rumqttc::v5::AsyncClient,
    requests: mpsc::UnboundedReceiver<Received>,
}

impl ScriptedDevice {
    /// Connects to `url` and subscribes to `topic`; returns once subscribed.
    pub async fn start(url: &str, topic: &str) -> Self {
        ScriptedDevice::start_on(&Config::new(url).broker, topic).await
    }

    /// The same on `broker` (its credentials too: ejabberd needs them).
    pub async fn start_on(broker: &relay_panel::config::BrokerConfig, topic: &str) -> Self {
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::mqttbytes::v5::Packet;
        let id = relay_panel::protocol::random_client_id("scripted-device");
        let (client, mut eventloop) = relay_panel::mqtt::client(broker, &id).unwrap();
        let (tx, requests) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                        let props = p.properties.unwrap_or_default();
                        let _ = tx.send(Received {
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            response_topic: props.response_topic,
                            correlation: props.correlation_data,
                            user_properties: props.user_properties,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("scripted device subscribed")
            .unwrap();
        ScriptedDevice { client, requests }
    }

    /// The next request, failing the test after `within`.
    pub async fn request(&mut self, within: Duration) -> Received {
        tokio::time::timeout(within, self.requests.recv())
            .await
            .expect("a request reached the device")
            .expect("device running")
    }

    /// Whether a request arrives within `within`.
    pub async fn any_request(&mut self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.requests.recv())
            .await
            .ok()
            .flatten()
    }

    /// Answers `request` with `payload`, per the wire contract.
    pub async fn answer(&self, request: &Received, payload: &str) {
        self.answer_with(request, payload, request.correlation.clone())
            .await;
    }

    /// Answers `request` with `payload` and `correlation` as its
    /// Correlation Data (someone else's, none): not per the contract.
    pub async fn answer_with(
        &self,
        request: &Received,
        payload: &str,
        correlation: Option<bytes::Bytes>,
    ) {
        let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
            correlation_data: correlation,
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                request.response_topic.clone().expect("a response topic"),
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                payload.to_owned(),
                properties,
            )
            .await
            .unwrap();
    }
}

/// A broker that speaks only MQTT 3.1.1 and never answers an MQTT 5
/// CONNECT that carries properties (Python's amqtt 0.12), on a free
/// loopback port. `.ci/run` installs it into `target/amqtt-venv`; set
/// `RELAY_PANEL_AMQTT` to use another `amqtt` executable.
pub struct Amqtt {
    child: std::process::Child,
    /// The port it listens on.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Amqtt {
    /// Starts it and waits until its port accepts; panics with what to
    /// install when it is missing.
    pub fn start() -> Self {
        let binary = std::env::var_os("RELAY_PANEL_AMQTT")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/amqtt-venv/bin/amqtt")
            });
        assert!(
            binary.exists(),
            "{} is missing: `bash .ci/run` installs it, or run \
             `python3 -m venv target/amqtt-venv && target/amqtt-venv/bin/pip install amqtt==0.12.1`",
            binary.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("broker.yaml");
        std::fs::write(
            &conf,
            format!(
                "---\nlisteners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n\
                 plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
            ),
        )
        .unwrap();
        let child = std::process::Command::new(&binary)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("amqtt.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "amqtt did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Amqtt {
            child,
            port,
            _dir: dir,
        }
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Amqtt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The set-up most engine tests share: a Mosquitto, a configuration of
/// `relays` relays, simulated devices with `faults` (subscribed) and an
/// engine with no store (connected). Destructure it binding every field
/// (`broker: _broker`, not `..`): a field left out is dropped at once, and
/// a dropped broker is a stopped broker.
pub struct Rig {
    /// The broker (killed when the rig is dropped).
    pub broker: Mosquitto,
    /// The configuration the devices and the engine use.
    pub config: Config,
    /// The simulated devices.
    pub devices: SimHandle,
    /// What the devices did with each request.
    pub records: mpsc::UnboundedReceiver<SimRecord>,
    /// The engine under test, connected and subscribed.
    pub engine: TestEngine,
}

impl Rig {
    /// Starts everything; `adjust` may change the configuration first
    /// (timeouts, payloads).
    pub async fn start(relays: usize, faults: Faults, adjust: impl FnOnce(&mut Config)) -> Rig {
        let broker = Mosquitto::start();
        let mut config = config(&broker.url(), relays);
        adjust(&mut config);
        let (devices, records) = devices(&config, faults).await;
        let mut engine = TestEngine::start(&config);
        engine.connected().await;
        Rig {
            broker,
            config,
            devices,
            records,
            engine,
        }
    }
}

/// A plain MQTT 5 client standing in for a device's own messages: a
/// last will, a state published by itself. Each publish returns once the
/// broker has acknowledged it (QoS 1), so a retained message is at the
/// broker before the next step of the test.
pub struct Wire {
    client: rumqttc::v5::AsyncClient,
    acked: mpsc::UnboundedReceiver<()>,
}

impl Wire {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Self {
        Wire::connect_to(&Config::new(url).broker).await
    }

    /// Connects to `broker` (its credentials too: ejabberd needs them).
    pub async fn connect_to(broker: &relay_panel::config::BrokerConfig) -> Self {
        use rumqttc::v5::mqttbytes::v5::Packet;
        let id = relay_panel::protocol::random_client_id("wire");
        let (client, mut eventloop) = relay_panel::mqtt::client(broker, &id).unwrap();
        let (tx, acked) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(Packet::PubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Wire { client, acked }
    }

    /// Publishes `payload` on `topic` (QoS 1), retained or not, and waits
    /// for the broker's PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: &str, retain: bool) {
        self.publish_with(topic, payload, retain, Vec::new()).await;
    }

    /// The same, with MQTT 5 User Properties.
    pub async fn publish_with(
        &mut self,
        topic: &str,
        payload: &str,
        retain: bool,
        user_properties: Vec<(String, String)>,
    ) {
        let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
            user_properties,
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                retain,
                payload.to_owned(),
                properties,
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.acked.recv())
            .await
            .expect("the broker acknowledged the publish")
            .expect("wire client running");
    }
}
