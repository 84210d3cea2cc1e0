//! Relay kinds against a real Mosquitto: Shelly Gen2+ RPC, Tasmota and
//! command/state devices, each played by a device written in the test
//! (it sees every request and answers only as told), and the evidence of
//! every state: *confirmed* by a reply tied to the request, or *reported*
//! by the device's state message, tied to nothing.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Mosquitto, TestEngine};
use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::Event;
use relay_panel::outcome::{Evidence, Outcome};
use relay_panel::protocol::{Action, RelayState};
use relay_panel::store::AuditEntry;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Timeout of the relays in these tests: long enough for a loaded
/// machine, short enough for the "no reply" cases.
const TIMEOUT_MS: u64 = 1500;
/// Time in which a message that must change nothing would have.
const QUIET: Duration = Duration::from_millis(400);

/// A message the test device received.
#[derive(Debug, Clone)]
struct Heard {
    topic: String,
    payload: String,
    response_topic: Option<String>,
    correlation: Option<Bytes>,
}

impl Heard {
    /// The payload as JSON (a Shelly frame).
    fn json(&self) -> Value {
        serde_json::from_str(&self.payload).expect("a JSON frame")
    }
}

/// A device played by the test: an MQTT 5 client subscribed to the
/// device's command topics that publishes whatever the test tells it.
struct Device {
    client: rumqttc::v5::AsyncClient,
    heard: mpsc::UnboundedReceiver<Heard>,
    /// QoS 1 publishes handed to the client so far.
    handed: std::sync::atomic::AtomicU64,
    /// PUBACKs received so far (the broker acknowledges in order).
    acked: tokio::sync::watch::Receiver<u64>,
}

impl Device {
    /// Connects and subscribes to `topics`; returns once subscribed.
    async fn start(url: &str, topics: &[&str]) -> Device {
        let broker = Config::new(url).broker;
        let id = relay_panel::protocol::random_client_id("kind-device");
        let (client, mut eventloop) = relay_panel::mqtt::client(&broker, &id).unwrap();
        let (tx, heard) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        let (acked_tx, acked) = tokio::sync::watch::channel(0u64);
        let filters = topics
            .iter()
            .map(|t| rumqttc::v5::mqttbytes::v5::Filter::new(*t, QoS::AtLeastOnce));
        client.subscribe_many(filters).await.unwrap();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(rumqttc::v5::Event::Incoming(Packet::PubAck(_))) => {
                        acked_tx.send_modify(|n| *n += 1);
                    }
                    Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                        let props = p.properties.unwrap_or_default();
                        let _ = tx.send(Heard {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            response_topic: props.response_topic,
                            correlation: props.correlation_data,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .expect("test device subscribed")
            .unwrap();
        Device {
            client,
            heard,
            handed: Default::default(),
            acked,
        }
    }

    /// Counts a publish handed to the client; returns how many PUBACKs
    /// mean the broker has it.
    fn hand(&self) -> u64 {
        self.handed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// The next command the device receives.
    async fn command(&mut self) -> Heard {
        tokio::time::timeout(Duration::from_secs(5), self.heard.recv())
            .await
            .expect("a command reached the device")
            .expect("device running")
    }

    /// Publishes `payload` on `topic` (QoS 1), retained or not, and
    /// returns once the broker has it (its PUBACK): a stale retained state
    /// must be there before the panel subscribes, not delivered live.
    async fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_owned())
            .await
            .unwrap();
        let n = self.hand();
        let mut acked = self.acked.clone();
        tokio::time::timeout(Duration::from_secs(10), acked.wait_for(|acked| *acked >= n))
            .await
            .expect("the broker acknowledged the publish")
            .expect("device running");
    }

    /// Answers `command` on its Response Topic with its Correlation Data
    /// (a Tasmota built with MQTT 5).
    async fn answer(&self, command: &Heard, payload: &str) {
        let properties = PublishProperties {
            correlation_data: command.correlation.clone(),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                command.response_topic.clone().expect("a Response Topic"),
                QoS::AtLeastOnce,
                false,
                payload.to_owned(),
                properties,
            )
            .await
            .unwrap();
        self.hand();
    }

    /// Answers a Shelly frame on `<src>/rpc` the way Shelly does, with
    /// `body` (`{"result": …}` or `{"error": …}`) merged in.
    async fn rpc_reply(&self, frame: &Value, device: &str, body: Value) {
        let src = frame["src"].as_str().expect("the request's src");
        let mut reply = json!({"id": frame["id"], "src": device, "dst": src});
        for (key, value) in body.as_object().expect("an object") {
            reply[key] = value.clone();
        }
        self.publish(&format!("{src}/rpc"), &reply.to_string(), false)
            .await;
    }
}

/// A broker and a configuration holding `relays`, with the test timeout.
fn setup(relays: Vec<RelayConfig>) -> (Mosquitto, Config) {
    let broker = Mosquitto::start();
    let mut config = Config::new(&broker.url());
    config.broker.request_timeout_ms = TIMEOUT_MS;
    config.relays = relays;
    (broker, config)
}

/// A device name unique to this test run.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// A started, connected panel.
async fn panel(config: &Config) -> TestEngine {
    let mut engine = TestEngine::start(config);
    engine.connected().await;
    engine
}

/// Asserts how a request ended: outcome, evidence and state.
#[track_caller]
fn assert_ended(
    entry: &AuditEntry,
    outcome: Outcome,
    evidence: Option<Evidence>,
    state: Option<RelayState>,
) {
    assert_eq!(
        (entry.outcome, entry.evidence, entry.state),
        (outcome, evidence, state),
        "{entry:?}"
    );
}

/// No request of `relay` ends within [`QUIET`].
async fn nothing_ends(engine: &mut TestEngine, relay: usize) {
    let events = engine.drain(QUIET).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Finished { relay: r, .. } if *r == relay)),
        "{events:?}"
    );
}

/// The last acknowledged state and its evidence after the latest event.
fn acknowledged(events: &[Event], relay: usize) -> Option<(RelayState, Evidence)> {
    events.iter().rev().find_map(|e| match e {
        Event::Relay { relay: r, status } if *r == relay => status
            .last_acknowledged
            .as_ref()
            .map(|a| (a.state, a.evidence)),
        _ => None,
    })
}

// --- shelly ---------------------------------------------------------------

/// On, off and refresh of a Shelly are confirmed by replies with the
/// request's RPC id sent to this panel's `src`; the frames are Shelly's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_on_off_refresh_are_confirmed_by_the_rpc_id() {
    let device = unique("shellyplus1");
    let (_broker, config) = setup(vec![RelayConfig::shelly("porch", &device, 1)]);
    let mut shelly = Device::start(&config.broker.url, &[&format!("{device}/rpc")]).await;
    let mut engine = panel(&config).await;
    let src = engine.handle.rpc_src.to_string();

    engine.handle.request(0, Action::On);
    let frame = shelly.command().await;
    assert_eq!(frame.topic, format!("{device}/rpc"));
    let request = frame.json();
    assert_eq!(request["method"], "Switch.Set");
    assert_eq!(request["params"], json!({"id": 1, "on": true}));
    assert_eq!(request["src"], src.as_str());
    assert!(request["id"].as_u64().is_some_and(|id| id > 0));
    shelly
        .rpc_reply(&request, &device, json!({"result": {"was_on": false}}))
        .await;
    let on = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &on,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::On),
    );
    assert!(on.rtt.is_some());

    engine.handle.request(0, Action::Off);
    let request = shelly.command().await.json();
    assert_eq!(request["params"], json!({"id": 1, "on": false}));
    shelly
        .rpc_reply(&request, &device, json!({"result": {"was_on": true}}))
        .await;
    let off = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &off,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::Off),
    );

    engine.handle.request(0, Action::Query);
    let request = shelly.command().await.json();
    assert_eq!(request["method"], "Switch.GetStatus");
    assert_eq!(request["params"], json!({"id": 1}));
    shelly
        .rpc_reply(
            &request,
            &device,
            json!({"result": {"id": 1, "source": "button", "output": true}}),
        )
        .await;
    let query = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &query,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::On),
    );
    engine.stop().await;
}

/// A Shelly error object is a device error with its message and code; no
/// reply at all is "no response".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_error_reply_and_no_reply() {
    let device = unique("shellypro4pm");
    let (_broker, config) = setup(vec![RelayConfig::shelly("heater", &device, 0)]);
    let mut shelly = Device::start(&config.broker.url, &[&format!("{device}/rpc")]).await;
    let mut engine = panel(&config).await;

    engine.handle.request(0, Action::On);
    let request = shelly.command().await.json();
    shelly
        .rpc_reply(
            &request,
            &device,
            json!({"error": {"code": -105, "message": "Argument 'id', value 0 not found!"}}),
        )
        .await;
    let error = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &error,
        Outcome::DeviceError,
        Some(Evidence::Correlated),
        None,
    );
    assert_eq!(
        error.detail.as_deref(),
        Some("Argument 'id', value 0 not found! (code -105)")
    );

    engine.handle.request(0, Action::Off);
    let _ignored = shelly.command().await;
    let silent = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(&silent, Outcome::NoResponse, None, None);
    engine.stop().await;
}

/// A reply with another id, from another device, to another `dst`, or
/// without `src`, answers nothing; the right one still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_reply_must_match_id_src_and_dst() {
    let device = unique("shelly1");
    let (_broker, config) = setup(vec![RelayConfig::shelly("gate", &device, 0)]);
    let mut shelly = Device::start(&config.broker.url, &[&format!("{device}/rpc")]).await;
    let mut engine = panel(&config).await;
    let src = engine.handle.rpc_src.to_string();
    let reply_topic = format!("{src}/rpc");

    engine.handle.request(0, Action::On);
    let request = shelly.command().await.json();
    let id = request["id"].as_u64().unwrap();
    let result = json!({"was_on": false});
    let wrong = [
        json!({"id": id + 1, "src": device, "dst": src, "result": result}),
        json!({"id": id, "src": "shelly1-someone-else", "dst": src, "result": result}),
        json!({"id": id, "src": device, "dst": "relay-panel/other-panel", "result": result}),
        json!({"id": id, "dst": src, "result": result}),
        json!({"id": id.to_string(), "src": device, "dst": src, "result": result}),
    ];
    for frame in &wrong {
        shelly
            .publish(&reply_topic, &frame.to_string(), false)
            .await;
    }
    nothing_ends(&mut engine, 0).await;
    let right = json!({"id": id, "src": device, "dst": src, "result": result});
    shelly
        .publish(&reply_topic, &right.to_string(), false)
        .await;
    let on = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &on,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::On),
    );
    engine.stop().await;
}

/// A retained frame waiting on the panel's `<src>/rpc` when it subscribes
/// (a panel with a fixed client id, restarted) is stale and ignored as
/// such; the request that follows is answered by its own reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_retained_reply_is_ignored() {
    let device = unique("shellyplus1");
    let (_broker, mut config) = setup(vec![RelayConfig::shelly("porch", &device, 0)]);
    let client_id = unique("desk");
    config.broker.client_id = Some(client_id.clone());
    let src = format!("relay-panel/{client_id}");
    let mut shelly = Device::start(&config.broker.url, &[&format!("{device}/rpc")]).await;
    let stale = json!({"id": 1, "src": device, "dst": src, "result": {"was_on": true}});
    shelly
        .publish(&format!("{src}/rpc"), &stale.to_string(), true)
        .await;
    let mut engine = TestEngine::start(&config);
    let mut ignored = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while ignored.is_none() && Instant::now() < deadline {
        if let Event::Ignored { reason, .. } = engine.next(Duration::from_secs(5)).await {
            ignored = Some(reason);
        }
    }
    let reason = ignored.expect("the retained frame is ignored");
    assert!(reason.contains("retained"), "{reason}");
    engine.ensure_connected().await;
    engine.handle.request(0, Action::Off);
    let request = shelly.command().await.json();
    shelly
        .rpc_reply(&request, &device, json!({"result": {"was_on": true}}))
        .await;
    let off = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &off,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::Off),
    );
    shelly.publish(&format!("{src}/rpc"), "", true).await;
    engine.stop().await;
}

/// Two panels switch the same Shelly: each hears its own reply on its
/// own `src`, and a reply addressed to the other panel is not its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_two_panels_each_get_their_own_reply() {
    let device = unique("shellyplus2pm");
    let (_broker, config) = setup(vec![RelayConfig::shelly("porch", &device, 0)]);
    let mut shelly = Device::start(&config.broker.url, &[&format!("{device}/rpc")]).await;
    let mut a = panel(&config).await;
    let mut b = panel(&config).await;
    let (src_a, src_b) = (a.handle.rpc_src.to_string(), b.handle.rpc_src.to_string());
    assert_ne!(src_a, src_b, "each panel has its own src");

    a.handle.request(0, Action::On);
    let from_a = shelly.command().await.json();
    b.handle.request(0, Action::Off);
    let from_b = shelly.command().await.json();
    assert_eq!(
        (from_a["src"].as_str(), from_b["src"].as_str()),
        (Some(src_a.as_str()), Some(src_b.as_str()))
    );
    // B's reply, put on A's topic: addressed to B, so not A's answer.
    let to_b = json!({"id": from_b["id"], "src": device, "dst": src_b, "result": {}});
    shelly
        .publish(&format!("{src_a}/rpc"), &to_b.to_string(), false)
        .await;
    nothing_ends(&mut a, 0).await;
    shelly
        .rpc_reply(&from_b, &device, json!({"result": {}}))
        .await;
    shelly
        .rpc_reply(&from_a, &device, json!({"result": {}}))
        .await;
    let on = a.finished(0, Duration::from_secs(5)).await;
    let off = b.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &on,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::On),
    );
    assert_ended(
        &off,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::Off),
    );
    a.stop().await;
    b.stop().await;
}

// --- tasmota --------------------------------------------------------------

/// A Tasmota built with MQTT 5 answers the Response Topic with the
/// Correlation Data, right after its RESULT: confirmed, not reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_mqtt5_answer_is_confirmed() {
    let device = unique("tasmota");
    let (_broker, config) = setup(vec![RelayConfig::tasmota("pump", &device, Some(2))]);
    let mut tasmota = Device::start(&config.broker.url, &[&format!("cmnd/{device}/+")]).await;
    let mut engine = panel(&config).await;

    for (action, payload, state) in [
        (Action::On, "ON", RelayState::On),
        (Action::Off, "OFF", RelayState::Off),
        (Action::Query, "", RelayState::Off),
    ] {
        engine.handle.request(0, action);
        let command = tasmota.command().await;
        assert_eq!(command.topic, format!("cmnd/{device}/POWER2"));
        assert_eq!(command.payload, payload);
        assert!(command.correlation.is_some() && command.response_topic.is_some());
        let text = state.as_str().to_uppercase();
        tasmota
            .publish(
                &format!("stat/{device}/RESULT"),
                &json!({"POWER2": text}).to_string(),
                false,
            )
            .await;
        tasmota
            .answer(&command, &json!({"POWER2": text}).to_string())
            .await;
        let entry = engine.finished(0, Duration::from_secs(5)).await;
        assert_ended(
            &entry,
            Outcome::Confirmed,
            Some(Evidence::Correlated),
            Some(state),
        );
    }
    engine.stop().await;
}

/// A Tasmota without MQTT 5 answers only on `stat/…`: reported, after
/// the short wait for a correlated answer; other messages on RESULT come
/// first and change nothing, only the relay's own key decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_stat_answers_are_reported() {
    let device = unique("tasmota");
    let (_broker, config) = setup(vec![RelayConfig::tasmota("pump", &device, Some(1))]);
    let mut tasmota = Device::start(&config.broker.url, &[&format!("cmnd/{device}/+")]).await;
    let mut engine = panel(&config).await;

    engine.handle.request(0, Action::On);
    let command = tasmota.command().await;
    assert_eq!(command.topic, format!("cmnd/{device}/POWER1"));
    let result = format!("stat/{device}/RESULT");
    tasmota.publish(&result, r#"{"Dimmer":40}"#, false).await;
    tasmota.publish(&result, r#"{"POWER2":"OFF"}"#, false).await;
    let sent = Instant::now();
    tasmota.publish(&result, r#"{"POWER1":"ON"}"#, false).await;
    tasmota
        .publish(&format!("stat/{device}/POWER1"), "ON", false)
        .await;
    let on = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &on,
        Outcome::Reported,
        Some(Evidence::Reported),
        Some(RelayState::On),
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(250),
        "waited for a correlated answer first"
    );

    // Refresh: an empty POWER1, answered on stat/…/POWER1 alone.
    engine.handle.request(0, Action::Query);
    let query = tasmota.command().await;
    assert_eq!(query.payload, "");
    tasmota
        .publish(&format!("stat/{device}/POWER1"), "OFF", false)
        .await;
    let refreshed = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &refreshed,
        Outcome::Reported,
        Some(Evidence::Reported),
        Some(RelayState::Off),
    );
    engine.stop().await;
}

/// A correlated answer that is not a state is a device error; no answer
/// is "no response"; a report of the other state is a failure, with
/// evidence reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_error_no_reply_and_contradicting_report() {
    let device = unique("tasmota");
    let (_broker, config) = setup(vec![RelayConfig::tasmota("lamp", &device, None)]);
    let mut tasmota = Device::start(&config.broker.url, &[&format!("cmnd/{device}/+")]).await;
    let mut engine = panel(&config).await;

    engine.handle.request(0, Action::On);
    let command = tasmota.command().await;
    assert_eq!(command.topic, format!("cmnd/{device}/POWER"));
    tasmota.answer(&command, r#"{"Command":"Unknown"}"#).await;
    let error = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &error,
        Outcome::DeviceError,
        Some(Evidence::Correlated),
        None,
    );
    assert_eq!(error.detail.as_deref(), Some(r#"{"Command":"Unknown"}"#));

    engine.handle.request(0, Action::On);
    let _command = tasmota.command().await;
    let silent = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(&silent, Outcome::NoResponse, None, None);

    engine.handle.request(0, Action::On);
    let _command = tasmota.command().await;
    tasmota
        .publish(
            &format!("stat/{device}/RESULT"),
            r#"{"POWER":"OFF"}"#,
            false,
        )
        .await;
    let contradicted = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &contradicted,
        Outcome::DeviceError,
        Some(Evidence::Reported),
        None,
    );
    assert_eq!(
        contradicted.detail.as_deref(),
        Some("asked on, device reports off on its state topic")
    );
    engine.stop().await;
}

/// A retained state on `stat/…`, present before the panel subscribed,
/// never answers a command sent after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_retained_stale_state_never_answers() {
    let device = unique("tasmota");
    let (_broker, config) = setup(vec![RelayConfig::tasmota("pump", &device, Some(1))]);
    let mut tasmota = Device::start(&config.broker.url, &[&format!("cmnd/{device}/+")]).await;
    tasmota
        .publish(&format!("stat/{device}/POWER1"), "ON", true)
        .await;
    tasmota
        .publish(&format!("stat/{device}/RESULT"), r#"{"POWER1":"ON"}"#, true)
        .await;
    let mut engine = panel(&config).await;
    engine.handle.request(0, Action::On);
    let _command = tasmota.command().await;
    let entry = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(&entry, Outcome::NoResponse, None, None);
    engine.stop().await;
}

/// Once a Tasmota has answered correlated, a RESULT does not settle its
/// next request for *reported*: the panel waits for the correlated answer,
/// even when it comes later than the short wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_known_to_answer_correlated_is_waited_for() {
    let device = unique("tasmota");
    let (_broker, config) = setup(vec![RelayConfig::tasmota("pump", &device, Some(1))]);
    let mut tasmota = Device::start(&config.broker.url, &[&format!("cmnd/{device}/+")]).await;
    let mut engine = panel(&config).await;
    engine.handle.request(0, Action::On);
    let command = tasmota.command().await;
    tasmota.answer(&command, r#"{"POWER1":"ON"}"#).await;
    let first = engine.finished(0, Duration::from_secs(5)).await;
    assert_eq!(first.evidence, Some(Evidence::Correlated));

    engine.handle.request(0, Action::Off);
    let command = tasmota.command().await;
    tasmota
        .publish(
            &format!("stat/{device}/RESULT"),
            r#"{"POWER1":"OFF"}"#,
            false,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    tasmota.answer(&command, r#"{"POWER1":"OFF"}"#).await;
    let second = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &second,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::Off),
    );
    engine.stop().await;
}

/// Two panels at once: each gets the correlated answer to its own
/// request; a panel with nothing in flight takes no report as an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_two_panels_each_get_their_own_answer() {
    let device = unique("tasmota");
    let (_broker, config) = setup(vec![RelayConfig::tasmota("pump", &device, Some(3))]);
    let mut tasmota = Device::start(&config.broker.url, &[&format!("cmnd/{device}/+")]).await;
    let mut a = panel(&config).await;
    let mut b = panel(&config).await;

    a.handle.request(0, Action::On);
    let from_a = tasmota.command().await;
    b.handle.request(0, Action::Off);
    let from_b = tasmota.command().await;
    assert_ne!(from_a.response_topic, from_b.response_topic);
    tasmota.answer(&from_b, r#"{"POWER3":"OFF"}"#).await;
    tasmota.answer(&from_a, r#"{"POWER3":"ON"}"#).await;
    let on = a.finished(0, Duration::from_secs(5)).await;
    let off = b.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &on,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::On),
    );
    assert_ended(
        &off,
        Outcome::Confirmed,
        Some(Evidence::Correlated),
        Some(RelayState::Off),
    );

    // A's request reported on stat/… (after waiting for a correlated
    // answer, as this device gave one); B, with nothing in flight, stays idle.
    a.handle.request(0, Action::Off);
    let _command = tasmota.command().await;
    tasmota
        .publish(&format!("stat/{device}/POWER3"), "OFF", false)
        .await;
    let reported = a.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &reported,
        Outcome::Reported,
        Some(Evidence::Reported),
        Some(RelayState::Off),
    );
    nothing_ends(&mut b, 0).await;
    a.stop().await;
    b.stop().await;
}

// --- state ----------------------------------------------------------------

/// A relay with a command and a state topic: on, off and refresh are
/// reported by the first matching state message after the command, and
/// the last acknowledged state says "reported".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_on_off_refresh_are_reported() {
    let base = unique("bench");
    let (command_topic, state_topic) = (format!("{base}/cmnd"), format!("{base}/stat"));
    let mut relay = RelayConfig::state("bench-1", &command_topic, &state_topic);
    relay.payload_query = Some("STATUS".into());
    let (_broker, config) = setup(vec![relay]);
    let mut device = Device::start(&config.broker.url, &[&command_topic]).await;
    let mut engine = panel(&config).await;

    for (action, payload, state) in [
        (Action::On, "ON", "ON"),
        (Action::Off, "OFF", "OFF"),
        (Action::Query, "STATUS", "OFF"),
    ] {
        engine.handle.request(0, action);
        let command = device.command().await;
        assert_eq!(
            (command.topic.as_str(), command.payload.as_str()),
            (command_topic.as_str(), payload)
        );
        assert_eq!(command.correlation, None, "nothing to tie a report to");
        // Something that is neither state comes first, and says nothing.
        device.publish(&state_topic, "online", false).await;
        device.publish(&state_topic, state, false).await;
        let entry = engine.finished(0, Duration::from_secs(5)).await;
        let expected = if state == "ON" {
            RelayState::On
        } else {
            RelayState::Off
        };
        assert_ended(
            &entry,
            Outcome::Reported,
            Some(Evidence::Reported),
            Some(expected),
        );
    }
    engine.stop().await;
}

/// No state message means no response; the other state is a failure with
/// evidence reported, and the last acknowledged state stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_no_reply_and_contradicting_report() {
    let base = unique("daemon");
    let (command_topic, state_topic) = (format!("{base}/set"), format!("{base}/state"));
    let (_broker, config) = setup(vec![RelayConfig::state(
        "usbrelay",
        &command_topic,
        &state_topic,
    )]);
    let mut device = Device::start(&config.broker.url, &[&command_topic]).await;
    let mut engine = panel(&config).await;

    engine.handle.request(0, Action::Off);
    let _command = device.command().await;
    device.publish(&state_topic, "OFF", false).await;
    let off = engine.finished(0, Duration::from_secs(5)).await;
    assert_eq!(off.outcome, Outcome::Reported);

    engine.handle.request(0, Action::On);
    let _command = device.command().await;
    let silent = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(&silent, Outcome::NoResponse, None, None);

    engine.handle.request(0, Action::On);
    let _command = device.command().await;
    device.publish(&state_topic, "OFF", false).await;
    let contradicted = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &contradicted,
        Outcome::DeviceError,
        Some(Evidence::Reported),
        None,
    );
    assert_eq!(
        contradicted.detail.as_deref(),
        Some("asked on, device reports off on its state topic")
    );
    let events = engine.drain(Duration::from_millis(100)).await;
    assert!(
        acknowledged(&events, 0).is_none_or(|a| a == (RelayState::Off, Evidence::Reported)),
        "{events:?}"
    );
    engine.stop().await;
}

/// A retained state present before the command, and a state message that
/// arrived before it, never count as its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_retained_or_earlier_message_never_answers() {
    let base = unique("z2m");
    let (command_topic, state_topic) = (format!("{base}/set"), format!("{base}/state"));
    let (_broker, config) = setup(vec![RelayConfig::state(
        "plug",
        &command_topic,
        &state_topic,
    )]);
    let mut device = Device::start(&config.broker.url, &[&command_topic]).await;
    device.publish(&state_topic, "ON", true).await;
    let mut engine = panel(&config).await;
    // Not retained, but before the command: no request to answer.
    device.publish(&state_topic, "ON", false).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    engine.handle.request(0, Action::On);
    let _command = device.command().await;
    let entry = engine.finished(0, Duration::from_secs(5)).await;
    assert_ended(&entry, Outcome::NoResponse, None, None);
    device.publish(&state_topic, "", true).await;
    engine.stop().await;
}

/// Two panels on one state device: the report answers each panel's own
/// request in flight, and a panel with none takes nothing from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_two_panels() {
    let base = unique("esphome");
    let (command_topic, state_topic) = (format!("{base}/command"), format!("{base}/state"));
    let (_broker, config) = setup(vec![RelayConfig::state(
        "fan",
        &command_topic,
        &state_topic,
    )]);
    let mut device = Device::start(&config.broker.url, &[&command_topic]).await;
    let mut a = panel(&config).await;
    let mut b = panel(&config).await;

    a.handle.request(0, Action::On);
    let _command = device.command().await;
    device.publish(&state_topic, "ON", false).await;
    let on = a.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &on,
        Outcome::Reported,
        Some(Evidence::Reported),
        Some(RelayState::On),
    );
    nothing_ends(&mut b, 0).await;

    b.handle.request(0, Action::Off);
    let _command = device.command().await;
    device.publish(&state_topic, "OFF", false).await;
    let off = b.finished(0, Duration::from_secs(5)).await;
    assert_ended(
        &off,
        Outcome::Reported,
        Some(Evidence::Reported),
        Some(RelayState::Off),
    );
    nothing_ends(&mut a, 0).await;
    a.stop().await;
    b.stop().await;
}

/// A state relay added while the panel runs is subscribed at once: its
/// first command is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_subscribes_a_new_state_relay() {
    let base = unique("added");
    let (command_topic, state_topic) = (format!("{base}/set"), format!("{base}/state"));
    let other = unique("kept");
    let (_broker, config) = setup(vec![RelayConfig::tasmota("kept", &other, None)]);
    let mut device = Device::start(&config.broker.url, &[&command_topic]).await;
    let mut engine = panel(&config).await;
    let mut new = config.clone();
    new.relays
        .push(RelayConfig::state("added", &command_topic, &state_topic));
    engine.handle.reconfigure(new.into()).unwrap();
    // The subscription's SUBACK comes before any later request is sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    engine.handle.request(1, Action::On);
    let _command = device.command().await;
    device.publish(&state_topic, "ON", false).await;
    let entry = engine.finished(1, Duration::from_secs(5)).await;
    assert_ended(
        &entry,
        Outcome::Reported,
        Some(Evidence::Reported),
        Some(RelayState::On),
    );
    engine.stop().await;
}
