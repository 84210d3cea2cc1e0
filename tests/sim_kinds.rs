//! The simulated devices of every kind against a real Mosquitto, with a
//! raw MQTT client playing the panel: what each kind of device answers,
//! where, in which order, and what the faults do to it. Independent of
//! the engine: these tests pin the devices' side of each contract.
//! `sim_kinds/availability.rs`: presses at the device and last wills.

// Beside this file, not in tests/ (where cargo would build it alone).
#[path = "sim_kinds/availability.rs"]
mod availability;
mod common;

use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Mosquitto;
use relay_panel::config::{Config, RelayConfig};
use relay_panel::mqtt;
use relay_panel::protocol::RelayState;
use relay_panel::sim::{
    self, FAIL_TEXT, Faults, SimHandle, SimOptions, SimRecord, SimReply, SimReport,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// How long a test waits for a message that must come.
const WAIT: Duration = Duration::from_secs(5);
/// How long a test listens to be sure nothing comes.
const QUIET: Duration = Duration::from_millis(300);

/// A raw MQTT 5 client playing the panel.
struct Wire {
    client: AsyncClient,
    /// Messages received, and a `None` for each SUBACK.
    incoming: mpsc::UnboundedReceiver<Option<Publish>>,
    /// Messages that came while waiting for a SUBACK, oldest first.
    early: VecDeque<Publish>,
}

impl Wire {
    async fn connect(config: &Config) -> Wire {
        let id = relay_panel::protocol::random_client_id("wire");
        let (client, mut eventloop) = mqtt::client(&config.broker, &id).unwrap();
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let forward = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(publish))) => Some(publish),
                    Ok(Event::Incoming(Packet::SubAck(_))) => None,
                    Ok(_) => continue,
                    Err(_) => return,
                };
                if tx.send(forward).is_err() {
                    return;
                }
            }
        });
        Wire {
            client,
            incoming,
            early: VecDeque::new(),
        }
    }

    /// Subscribes and waits for the SUBACK (messages before it are kept).
    async fn subscribe(&mut self, topic: &str) {
        self.client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(WAIT, self.incoming.recv()).await {
                Ok(Some(None)) => break,
                Ok(Some(Some(publish))) => self.early.push_back(publish),
                _ => panic!("no SUBACK for {topic}"),
            }
        }
    }

    async fn publish(&self, topic: &str, payload: impl Into<Bytes>) {
        self.publish_with(topic, payload, PublishProperties::default())
            .await;
    }

    async fn publish_with(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        properties: PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload.into(), properties)
            .await
            .unwrap();
    }

    /// Publishes a request with a Response Topic and Correlation Data.
    async fn request(&self, topic: &str, payload: &str, response_topic: &str, correlation: &[u8]) {
        let properties = PublishProperties {
            response_topic: Some(response_topic.to_owned()),
            correlation_data: Some(Bytes::copy_from_slice(correlation)),
            ..Default::default()
        };
        self.publish_with(topic, payload.to_owned(), properties)
            .await;
    }

    /// The next message, failing the test after [`WAIT`].
    async fn next(&mut self) -> Publish {
        if let Some(publish) = self.early.pop_front() {
            return publish;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.incoming.recv()).await {
                Ok(Some(Some(publish))) => return publish,
                Ok(Some(None)) => continue,
                _ => panic!("no message within {WAIT:?}"),
            }
        }
    }

    /// Everything that arrives within [`QUIET`].
    async fn rest(&mut self) -> Vec<Publish> {
        let deadline = tokio::time::Instant::now() + QUIET;
        let mut got: Vec<Publish> = self.early.drain(..).collect();
        while let Ok(Some(item)) = tokio::time::timeout_at(deadline, self.incoming.recv()).await {
            got.extend(item);
        }
        got
    }
}

fn topic(publish: &Publish) -> String {
    String::from_utf8_lossy(&publish.topic).into_owned()
}

fn text(publish: &Publish) -> String {
    String::from_utf8_lossy(&publish.payload).into_owned()
}

fn json(publish: &Publish) -> Value {
    serde_json::from_slice(&publish.payload)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {:?}", topic(publish), text(publish)))
}

fn correlation(publish: &Publish) -> Option<Bytes> {
    publish
        .properties
        .as_ref()
        .and_then(|p| p.correlation_data.clone())
}

/// A broker, devices for `relays` with `faults`, and the panel's wire.
struct Rig {
    /// Keeps the broker running.
    _broker: Mosquitto,
    config: Config,
    devices: SimHandle,
    records: mpsc::UnboundedReceiver<SimRecord>,
    wire: Wire,
    /// A unique name for this test's topics.
    run: String,
}

impl Rig {
    async fn start(faults: Faults, relays: impl FnOnce(&str) -> Vec<RelayConfig>) -> Rig {
        let broker = Mosquitto::start();
        let run = format!("{:08x}", rand::random::<u32>());
        let mut config = Config::new(&broker.url());
        config.relays = relays(&run);
        let (mut devices, records) = sim::spawn(SimOptions {
            config: config.clone(),
            faults,
            client_id: None,
        })
        .unwrap();
        tokio::time::timeout(WAIT, devices.ready())
            .await
            .expect("devices subscribed");
        let wire = Wire::connect(&config).await;
        Rig {
            _broker: broker,
            config,
            devices,
            records,
            wire,
            run,
        }
    }

    /// The next record, failing the test after [`WAIT`].
    async fn record(&mut self) -> SimRecord {
        tokio::time::timeout(WAIT, self.records.recv())
            .await
            .expect("a record in time")
            .expect("the devices run")
    }

    /// Where this test's panel hears Shelly answers (`<src>/rpc`).
    fn src(&self) -> String {
        format!("panel-{}", self.run)
    }
}

fn shelly_call(id: u64, src: &str, method: &str, params: Value) -> String {
    json!({ "id": id, "src": src, "method": method, "params": params }).to_string()
}

/// Shelly: `Switch.Set` is answered on `<src>/rpc` with the call's `id`,
/// the device as `src` and the caller as `dst`, and `was_on`;
/// `Switch.GetStatus` answers `output`; the change is also announced as a
/// `NotifyStatus`; two switches of one device are told apart by
/// `params.id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_answers_rpc_on_src() {
    let mut rig = Rig::start(Faults::default(), |run| {
        vec![
            RelayConfig::shelly("hall", &format!("shellypro2-{run}"), 0),
            RelayConfig::shelly("office", &format!("shellypro2-{run}"), 1),
        ]
    })
    .await;
    let device = rig.config.relays[0].device.clone();
    let src = rig.src();
    rig.wire.subscribe(&format!("{src}/rpc")).await;
    rig.wire.subscribe(&format!("{device}/events/rpc")).await;

    let set = shelly_call(7, &src, "Switch.Set", json!({"id": 1, "on": true}));
    rig.wire
        .publish(&format!("{device}/rpc"), set.clone())
        .await;
    let reply = rig.wire.next().await;
    assert_eq!(topic(&reply), format!("{src}/rpc"));
    assert_eq!(
        json(&reply),
        json!({"id": 7, "src": device, "dst": src, "result": {"was_on": false}})
    );
    let notice = rig.wire.next().await;
    assert_eq!(topic(&notice), format!("{device}/events/rpc"));
    let notice = json(&notice);
    assert_eq!(notice["method"], "NotifyStatus");
    assert_eq!(notice["params"]["switch:1"]["output"], true);

    let record = rig.record().await;
    assert_eq!(record.relay_id, "office");
    assert_eq!(record.request, set);
    assert_eq!(record.rpc_id.as_deref(), Some("7"));
    assert!(record.correlated);
    assert_eq!(record.state_after, RelayState::On);
    assert!(
        matches!(&record.reply, SimReply::Answer { copies: 1, payload } if payload.contains("was_on"))
    );
    assert_eq!(rig.devices.state("office"), Some(RelayState::On));
    assert_eq!(rig.devices.state("hall"), Some(RelayState::Off));

    for (id, switch, output) in [(8, 1, true), (9, 0, false)] {
        let get = shelly_call(id, &src, "Switch.GetStatus", json!({"id": switch}));
        rig.wire.publish(&format!("{device}/rpc"), get).await;
        let reply = json(&rig.wire.next().await);
        assert_eq!(reply["id"], id);
        assert_eq!(reply["dst"], json!(src));
        assert_eq!(reply["result"]["id"], switch);
        assert_eq!(reply["result"]["output"], output);
    }
    // Switching to the state it is in: answered, no NotifyStatus.
    let set = shelly_call(10, &src, "Switch.Set", json!({"id": 1, "on": true}));
    rig.wire.publish(&format!("{device}/rpc"), set).await;
    assert_eq!(json(&rig.wire.next().await)["result"]["was_on"], true);
    assert!(rig.wire.rest().await.is_empty());
}

/// Shelly errors: a relay listed in `fail` answers an error object with
/// code -105 and never switches; a switch the device lacks and an unknown
/// method get the firmware's errors; a frame without `src` and a call
/// without `id` are not answered (the latter still acts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_errors_and_unanswerable_frames() {
    let faults = Faults {
        fail: ["broken".to_owned()].into_iter().collect(),
        ..Faults::default()
    };
    let mut rig = Rig::start(faults, |run| {
        vec![
            RelayConfig::shelly("broken", &format!("shelly-a-{run}"), 0),
            RelayConfig::shelly("fine", &format!("shelly-b-{run}"), 0),
        ]
    })
    .await;
    let (broken, fine) = (
        rig.config.relays[0].device.clone(),
        rig.config.relays[1].device.clone(),
    );
    let src = rig.src();
    rig.wire.subscribe(&format!("{src}/rpc")).await;

    let set = shelly_call(1, &src, "Switch.Set", json!({"id": 0, "on": true}));
    rig.wire.publish(&format!("{broken}/rpc"), set).await;
    let reply = json(&rig.wire.next().await);
    assert_eq!(
        reply,
        json!({"id": 1, "src": broken, "dst": src, "error": {"code": -105, "message": FAIL_TEXT}})
    );
    assert_eq!(rig.devices.state("broken"), Some(RelayState::Off));
    let record = rig.record().await;
    assert_eq!(record.state_after, RelayState::Off);
    assert!(
        matches!(&record.reply, SimReply::Answer { payload, .. } if payload.contains(FAIL_TEXT))
    );

    let absent = shelly_call(2, &src, "Switch.Set", json!({"id": 3, "on": true}));
    rig.wire.publish(&format!("{fine}/rpc"), absent).await;
    let reply = json(&rig.wire.next().await);
    assert_eq!(reply["id"], 2);
    assert_eq!(reply["error"]["code"], sim::SHELLY_NOT_FOUND);
    let unknown = shelly_call(3, &src, "Switch.Frobnicate", json!({"id": 0}));
    rig.wire.publish(&format!("{fine}/rpc"), unknown).await;
    let reply = json(&rig.wire.next().await);
    assert_eq!(reply["error"]["code"], sim::SHELLY_NO_HANDLER);
    assert!(matches!(rig.record().await.reply, SimReply::Answer { .. }));

    let no_src = json!({"id": 4, "method": "Switch.Set", "params": {"id": 0, "on": true}});
    rig.wire
        .publish(&format!("{fine}/rpc"), no_src.to_string())
        .await;
    assert!(matches!(rig.record().await.reply, SimReply::Ignored { .. }));
    assert_eq!(rig.devices.state("fine"), Some(RelayState::Off));
    let no_id = json!({"src": src, "method": "Switch.Set", "params": {"id": 0, "on": true}});
    rig.wire
        .publish(&format!("{fine}/rpc"), no_id.to_string())
        .await;
    let record = rig.record().await;
    assert_eq!(record.reply, SimReply::NoResponseTopic);
    assert_eq!(record.state_after, RelayState::On);
    assert!(rig.wire.rest().await.is_empty(), "neither is answered");
}

/// Shelly faults: wrong correlation answers with another `id` or `dst`
/// (the device still switched); garbage answers bytes that are not JSON;
/// duplicate answers twice; drop neither acts nor answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelly_faults() {
    for (faults, what) in [
        (
            Faults {
                wrong_correlation: 1.0,
                ..Faults::default()
            },
            "wrong",
        ),
        (
            Faults {
                garbage: 1.0,
                ..Faults::default()
            },
            "garbage",
        ),
        (
            Faults {
                duplicate: 1.0,
                ..Faults::default()
            },
            "duplicate",
        ),
        (
            Faults {
                drop: 1.0,
                ..Faults::default()
            },
            "drop",
        ),
    ] {
        let mut rig = Rig::start(faults, |run| {
            vec![RelayConfig::shelly("s", &format!("shelly-{run}"), 0)]
        })
        .await;
        let device = rig.config.relays[0].device.clone();
        let src = rig.src();
        rig.wire.subscribe(&format!("{src}/rpc")).await;
        let set = shelly_call(5, &src, "Switch.Set", json!({"id": 0, "on": true}));
        rig.wire.publish(&format!("{device}/rpc"), set).await;
        let record = rig.record().await;
        let answers: Vec<Publish> = rig
            .wire
            .rest()
            .await
            .into_iter()
            .filter(|p| topic(p) == format!("{src}/rpc"))
            .collect();
        match what {
            "wrong" => {
                assert_eq!(record.reply, SimReply::WrongCorrelation);
                assert_eq!(answers.len(), 1);
                let reply = json(&answers[0]);
                assert!(reply["id"] != 5 || reply["dst"] != json!(src), "{reply}");
                assert_eq!(rig.devices.state("s"), Some(RelayState::On));
            }
            "garbage" => {
                assert_eq!(record.reply, SimReply::Garbage);
                assert_eq!(answers.len(), 1);
                assert!(serde_json::from_slice::<Value>(&answers[0].payload).is_err());
                assert_eq!(rig.devices.state("s"), Some(RelayState::On));
            }
            "duplicate" => {
                assert!(matches!(record.reply, SimReply::Answer { copies: 2, .. }));
                assert_eq!(answers.len(), 2);
                assert_eq!(answers[0].payload, answers[1].payload);
            }
            _ => {
                assert_eq!(record.reply, SimReply::Dropped);
                assert!(answers.is_empty());
                assert_eq!(rig.devices.state("s"), Some(RelayState::Off));
            }
        }
    }
}

/// Tasmota (no MQTT 5 build): `cmnd/<device>/POWER<n>` is answered on
/// `stat/<device>/RESULT` and `stat/<device>/POWER<n>`, not retained and
/// never on the request's Response Topic; an empty payload asks the state;
/// a relay without `power` uses `POWER`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_reports_on_stat() {
    let mut rig = Rig::start(Faults::default(), |run| {
        vec![
            RelayConfig::tasmota("pump", &format!("tasmota_{run}"), Some(2)),
            RelayConfig::tasmota("plug", &format!("plug_{run}"), None),
        ]
    })
    .await;
    let device = rig.config.relays[0].device.clone();
    let plug = rig.config.relays[1].device.clone();
    rig.wire.subscribe(&format!("stat/{device}/#")).await;
    rig.wire.subscribe(&format!("stat/{plug}/#")).await;
    rig.wire.subscribe("panel/response").await;

    rig.wire
        .request(
            &format!("cmnd/{device}/POWER2"),
            "ON",
            "panel/response",
            b"c1",
        )
        .await;
    let result = rig.wire.next().await;
    assert_eq!(topic(&result), format!("stat/{device}/RESULT"));
    assert_eq!(json(&result), json!({"POWER2": "ON"}));
    assert!(!result.retain);
    let power = rig.wire.next().await;
    assert_eq!(topic(&power), format!("stat/{device}/POWER2"));
    assert_eq!(text(&power), "ON");
    assert!(
        rig.wire.rest().await.is_empty(),
        "no answer on the Response Topic"
    );
    let record = rig.record().await;
    assert!(!record.correlated);
    assert_eq!(record.correlation.as_deref(), Some(&b"c1"[..]));
    assert_eq!(
        record.reply,
        SimReply::Answer {
            payload: r#"{"POWER2":"ON"}"#.into(),
            copies: 1
        }
    );
    assert_eq!(rig.devices.state("pump"), Some(RelayState::On));

    rig.wire.publish(&format!("cmnd/{device}/POWER2"), "").await;
    assert_eq!(json(&rig.wire.next().await), json!({"POWER2": "ON"}));
    assert_eq!(text(&rig.wire.next().await), "ON");
    rig.wire
        .publish(&format!("cmnd/{device}/POWER2"), "TOGGLE")
        .await;
    assert_eq!(json(&rig.wire.next().await), json!({"POWER2": "OFF"}));
    assert_eq!(text(&rig.wire.next().await), "OFF");

    rig.wire.publish(&format!("cmnd/{plug}/POWER"), "on").await;
    let result = rig.wire.next().await;
    assert_eq!(topic(&result), format!("stat/{plug}/RESULT"));
    assert_eq!(json(&result), json!({"POWER": "ON"}));
    assert_eq!(topic(&rig.wire.next().await), format!("stat/{plug}/POWER"));
}

/// Tasmota with an MQTT 5 build (`tasmota_mqtt5`): RESULT first, then the
/// answer on the Response Topic with the request's Correlation Data and
/// the RESULT's payload, then `POWER<n>`; wrong correlation forges only
/// that answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_mqtt5_answers_the_response_topic() {
    let faults = Faults {
        tasmota_mqtt5: true,
        ..Faults::default()
    };
    let mut rig = Rig::start(faults, |run| {
        vec![RelayConfig::tasmota(
            "pump",
            &format!("tasmota_{run}"),
            Some(1),
        )]
    })
    .await;
    let device = rig.config.relays[0].device.clone();
    rig.wire.subscribe(&format!("stat/{device}/#")).await;
    rig.wire.subscribe("panel/response").await;
    rig.wire
        .request(
            &format!("cmnd/{device}/POWER1"),
            "ON",
            "panel/response",
            b"corr-1",
        )
        .await;
    let got: Vec<Publish> = [
        rig.wire.next().await,
        rig.wire.next().await,
        rig.wire.next().await,
    ]
    .into();
    let topics: Vec<String> = got.iter().map(topic).collect();
    assert_eq!(
        topics,
        [
            format!("stat/{device}/RESULT"),
            "panel/response".to_owned(),
            format!("stat/{device}/POWER1")
        ]
    );
    assert_eq!(json(&got[1]), json!({"POWER1": "ON"}));
    assert_eq!(correlation(&got[1]).as_deref(), Some(&b"corr-1"[..]));
    let record = rig.record().await;
    assert!(record.correlated);

    // Without a Response Topic there is nothing to answer but stat/….
    rig.wire
        .publish(&format!("cmnd/{device}/POWER1"), "OFF")
        .await;
    assert_eq!(
        topic(&rig.wire.next().await),
        format!("stat/{device}/RESULT")
    );
    assert_eq!(
        topic(&rig.wire.next().await),
        format!("stat/{device}/POWER1")
    );
    assert!(!rig.record().await.correlated);

    let faults = Faults {
        tasmota_mqtt5: true,
        wrong_correlation: 1.0,
        ..Faults::default()
    };
    let mut rig = Rig::start(faults, |run| {
        vec![RelayConfig::tasmota(
            "pump",
            &format!("tasmota_{run}"),
            Some(1),
        )]
    })
    .await;
    let device = rig.config.relays[0].device.clone();
    rig.wire.subscribe("panel/response").await;
    rig.wire
        .request(
            &format!("cmnd/{device}/POWER1"),
            "ON",
            "panel/response",
            b"corr-2",
        )
        .await;
    let answer = rig.wire.next().await;
    assert_eq!(json(&answer), json!({"POWER1": "ON"}));
    assert_ne!(correlation(&answer).as_deref(), Some(&b"corr-2"[..]));
    assert_eq!(rig.record().await.reply, SimReply::WrongCorrelation);
}

/// Tasmota faults: a failing relay does not switch and reports its real
/// state ("asked on, reports off"); garbage spoils RESULT and POWER<n>;
/// duplicate sends each twice; drop sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_faults() {
    let fail = Faults {
        fail: ["pump".to_owned()].into_iter().collect(),
        ..Faults::default()
    };
    for (faults, what) in [
        (fail, "fail"),
        (
            Faults {
                garbage: 1.0,
                ..Faults::default()
            },
            "garbage",
        ),
        (
            Faults {
                duplicate: 1.0,
                ..Faults::default()
            },
            "duplicate",
        ),
        (
            Faults {
                drop: 1.0,
                ..Faults::default()
            },
            "drop",
        ),
    ] {
        let mut rig = Rig::start(faults, |run| {
            vec![RelayConfig::tasmota(
                "pump",
                &format!("tasmota_{run}"),
                Some(1),
            )]
        })
        .await;
        let device = rig.config.relays[0].device.clone();
        rig.wire.subscribe(&format!("stat/{device}/#")).await;
        rig.wire
            .publish(&format!("cmnd/{device}/POWER1"), "ON")
            .await;
        let record = rig.record().await;
        let got = rig.wire.rest().await;
        match what {
            "fail" => {
                assert_eq!(got.len(), 2);
                assert_eq!(json(&got[0]), json!({"POWER1": "OFF"}));
                assert_eq!(text(&got[1]), "OFF");
                assert_eq!(rig.devices.state("pump"), Some(RelayState::Off));
            }
            "garbage" => {
                assert_eq!(record.reply, SimReply::Garbage);
                assert_eq!(got.len(), 2);
                assert!(got.iter().all(|p| std::str::from_utf8(&p.payload).is_err()));
            }
            "duplicate" => {
                let topics: Vec<String> = got.iter().map(topic).collect();
                let (result, power) = (
                    format!("stat/{device}/RESULT"),
                    format!("stat/{device}/POWER1"),
                );
                assert_eq!(topics, [result.clone(), result, power.clone(), power]);
            }
            _ => {
                assert!(got.is_empty());
                assert_eq!(rig.devices.state("pump"), Some(RelayState::Off));
            }
        }
    }
}

/// A state device: its state is on `state_topic`, retained, before any
/// command; it acts on `payload_on` / `payload_off` and publishes its new
/// state; it ignores other payloads; a failing one reports its unchanged
/// state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_device_reports_on_state_topic() {
    let faults = Faults {
        fail: ["stuck".to_owned()].into_iter().collect(),
        ..Faults::default()
    };
    let mut rig = Rig::start(faults, |run| {
        let mut bench = RelayConfig::state(
            "bench",
            &format!("cmnd/{run}/bench"),
            &format!("stat/{run}/bench"),
        );
        bench.payload_on = "power_on".into();
        bench.payload_off = "power_off".into();
        vec![
            bench,
            RelayConfig::state(
                "stuck",
                &format!("cmnd/{run}/stuck"),
                &format!("stat/{run}/stuck"),
            ),
        ]
    })
    .await;
    let (command, state) = (
        rig.config.relays[0].command_topic.clone(),
        rig.config.relays[0].state_topic.clone(),
    );
    rig.wire.subscribe(&state).await;
    let retained = rig.wire.next().await;
    assert!(retained.retain, "the state is retained before any command");
    assert_eq!(text(&retained), "power_off");

    rig.wire.publish(&command, "power_on").await;
    let report = rig.wire.next().await;
    assert_eq!(
        (topic(&report), text(&report)),
        (state.clone(), "power_on".into())
    );
    let record = rig.record().await;
    assert!(!record.correlated);
    assert_eq!(record.state_after, RelayState::On);

    rig.wire.publish(&command, "ON").await;
    assert!(matches!(rig.record().await.reply, SimReply::Ignored { .. }));
    assert!(
        rig.wire.rest().await.is_empty(),
        "an unknown payload is ignored"
    );
    assert_eq!(rig.devices.state("bench"), Some(RelayState::On));

    // A new subscriber gets the latest state, retained.
    let mut late = Wire::connect(&rig.config).await;
    late.subscribe(&state).await;
    let retained = late.next().await;
    assert!(retained.retain);
    assert_eq!(text(&retained), "power_on");

    let stuck = rig.config.relays[1].clone();
    rig.wire.subscribe(&stuck.state_topic).await;
    assert_eq!(text(&rig.wire.next().await), "OFF");
    rig.wire.publish(&stuck.command_topic, "ON").await;
    let report = rig.wire.next().await;
    assert_eq!(text(&report), "OFF", "asked on, reports off");
    assert!(!report.retain);
}

/// A device that reports keeps its messages in the order it acted, even
/// with jitter far longer than the gap between commands: the last report
/// is always its real state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_keep_the_order_of_the_commands() {
    let faults = Faults {
        jitter: Duration::from_millis(150),
        seed: Some(3),
        ..Faults::default()
    };
    let mut rig = Rig::start(faults, |run| {
        vec![
            RelayConfig::state("bench", &format!("cmnd/{run}/b"), &format!("stat/{run}/b")),
            RelayConfig::tasmota("pump", &format!("tasmota_{run}"), Some(1)),
        ]
    })
    .await;
    let bench = rig.config.relays[0].clone();
    let device = rig.config.relays[1].device.clone();
    rig.wire.subscribe(&bench.state_topic).await;
    rig.wire.subscribe(&format!("stat/{device}/POWER1")).await;
    let _retained = rig.wire.next().await;
    let sequence = [
        "ON", "OFF", "ON", "ON", "OFF", "ON", "OFF", "OFF", "ON", "OFF",
    ];
    for payload in sequence {
        rig.wire.publish(&bench.command_topic, payload).await;
        rig.wire
            .publish(&format!("cmnd/{device}/POWER1"), payload)
            .await;
    }
    let mut states = Vec::new();
    let mut powers = Vec::new();
    for _ in 0..sequence.len() * 2 {
        let publish = rig.wire.next().await;
        if topic(&publish) == bench.state_topic {
            states.push(text(&publish));
        } else {
            powers.push(text(&publish));
        }
    }
    assert_eq!(states, sequence);
    assert_eq!(powers, sequence);
}

/// The `mqtt5` kind is unchanged beside the others: answers on the
/// Response Topic with the Correlation Data, in one configuration with
/// every other kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_in_one_configuration() {
    let mut rig = Rig::start(Faults::default(), |run| {
        vec![
            RelayConfig::new("own", &format!("dev/{run}/own")),
            RelayConfig::shelly("shelly", &format!("shelly-{run}"), 0),
            RelayConfig::tasmota("tasmota", &format!("tasmota_{run}"), None),
            RelayConfig::state("state", &format!("cmnd/{run}/s"), &format!("stat/{run}/s")),
        ]
    })
    .await;
    let run = rig.run.clone();
    let src = rig.src();
    rig.wire.subscribe("panel/response").await;
    rig.wire.subscribe(&format!("{src}/rpc")).await;
    rig.wire
        .subscribe(&format!("stat/tasmota_{run}/RESULT"))
        .await;
    rig.wire.subscribe(&format!("stat/{run}/s")).await;
    assert_eq!(text(&rig.wire.next().await), "OFF", "retained state");

    rig.wire
        .request(&format!("dev/{run}/own"), "1", "panel/response", b"own-1")
        .await;
    let answer = rig.wire.next().await;
    assert_eq!(
        (text(&answer), correlation(&answer)),
        ("1".into(), Some(Bytes::from_static(b"own-1")))
    );
    let set = shelly_call(1, &src, "Switch.Set", json!({"id": 0, "on": true}));
    rig.wire.publish(&format!("shelly-{run}/rpc"), set).await;
    assert_eq!(json(&rig.wire.next().await)["result"]["was_on"], false);
    rig.wire
        .publish(&format!("cmnd/tasmota_{run}/POWER"), "ON")
        .await;
    assert_eq!(json(&rig.wire.next().await), json!({"POWER": "ON"}));
    rig.wire.publish(&format!("cmnd/{run}/s"), "ON").await;
    assert_eq!(text(&rig.wire.next().await), "ON");
    for id in ["own", "shelly", "tasmota", "state"] {
        assert_eq!(rig.devices.state(id), Some(RelayState::On), "{id}");
    }
    let kinds: Vec<(String, bool)> = [
        rig.record().await,
        rig.record().await,
        rig.record().await,
        rig.record().await,
    ]
    .into_iter()
    .map(|r| (r.relay_id, r.correlated))
    .collect();
    assert_eq!(
        kinds,
        [
            ("own".into(), true),
            ("shelly".into(), true),
            ("tasmota".into(), false),
            ("state".into(), false)
        ]
    );
}

/// Simulated devices for `relays`, with their report log.
async fn spawn_logged(
    broker: &Mosquitto,
    faults: Faults,
    relays: Vec<RelayConfig>,
) -> (
    SimHandle,
    mpsc::UnboundedReceiver<SimRecord>,
    mpsc::UnboundedReceiver<SimReport>,
) {
    let mut config = Config::new(&broker.url());
    config.relays = relays;
    let (mut devices, records, reports) = sim::spawn_with_reports(SimOptions {
        config,
        faults,
        client_id: None,
    })
    .unwrap();
    tokio::time::timeout(WAIT, devices.ready())
        .await
        .expect("devices subscribed");
    (devices, records, reports)
}

/// The next report told for `relay_id` (others are skipped).
async fn report_of(reports: &mut mpsc::UnboundedReceiver<SimReport>, relay_id: &str) -> SimReport {
    loop {
        let report = tokio::time::timeout(WAIT, reports.recv())
            .await
            .expect("a report in time")
            .expect("the devices run");
        if report.relay_id == relay_id {
            return report;
        }
    }
}

/// The report log: every state message a device publishes on its own
/// state topic is told, with the state and the time it was handed to the
/// client (before anyone heard it), garbage as no state; answers tied to a
/// request are not reports. While the broker is down a device that
/// reports drops what it would send, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_told_with_their_time() {
    let mut broker = Mosquitto::start();
    let run = format!("{:08x}", rand::random::<u32>());
    let (_devices, _records, mut reports) = spawn_logged(
        &broker,
        Faults {
            duplicate: 1.0,
            ..Faults::default()
        },
        vec![
            RelayConfig::new("own", &format!("dev/{run}/own")),
            RelayConfig::tasmota("pump", &format!("tasmota_{run}"), None),
            RelayConfig::state("bench", &format!("cmnd/{run}/b"), &format!("stat/{run}/b")),
        ],
    )
    .await;
    // A state device announces its state when it connects.
    let announced = report_of(&mut reports, "bench").await;
    assert_eq!(
        (announced.state, announced.offline),
        (Some(RelayState::Off), false)
    );

    let mut config = Config::new(&broker.url());
    config.relays = Vec::new();
    let mut wire = Wire::connect(&config).await;
    wire.subscribe("panel/response").await;
    wire.subscribe(&format!("stat/tasmota_{run}/POWER")).await;
    wire.request(&format!("dev/{run}/own"), "1", "panel/response", b"c-1")
        .await;
    assert_eq!(text(&wire.next().await), "1");
    let _copy = wire.rest().await;
    let before = Instant::now();
    wire.publish(&format!("cmnd/tasmota_{run}/POWER"), "ON")
        .await;
    assert_eq!(text(&wire.next().await), "ON");
    let heard = Instant::now();
    let mut told = Vec::new();
    for _ in 0..4 {
        let report = report_of(&mut reports, "pump").await;
        assert_eq!(
            (report.state, report.offline),
            (Some(RelayState::On), false)
        );
        assert!(
            before < report.at && report.at < heard,
            "told as it was handed over"
        );
        told.push(report.topic);
    }
    let (result, power) = (
        format!("stat/tasmota_{run}/RESULT"),
        format!("stat/tasmota_{run}/POWER"),
    );
    assert_eq!(told, [result.clone(), result, power.clone(), power]);
    let _ = wire.rest().await;
    assert!(
        reports.try_recv().is_err(),
        "RESULT, POWER and their copies, nothing for the answer"
    );

    let (_junk, _, mut junk_reports) = spawn_logged(
        &broker,
        Faults {
            garbage: 1.0,
            ..Faults::default()
        },
        vec![RelayConfig::tasmota("junk", &format!("junk_{run}"), None)],
    )
    .await;
    wire.publish(&format!("cmnd/junk_{run}/POWER"), "ON").await;
    assert_eq!(report_of(&mut junk_reports, "junk").await.state, None);

    let (_slow, mut slow_records, mut slow_reports) = spawn_logged(
        &broker,
        Faults {
            latency: Duration::from_millis(500),
            ..Faults::default()
        },
        vec![RelayConfig::state(
            "slow",
            &format!("cmnd/{run}/slow"),
            &format!("stat/{run}/slow"),
        )],
    )
    .await;
    let _announced = report_of(&mut slow_reports, "slow").await;
    wire.publish(&format!("cmnd/{run}/slow"), "ON").await;
    let record = tokio::time::timeout(WAIT, slow_records.recv())
        .await
        .unwrap();
    assert_eq!(record.map(|r| r.state_after), Some(RelayState::On));
    broker.stop();
    let dropped = report_of(&mut slow_reports, "slow").await;
    assert_eq!(
        (dropped.state, dropped.offline),
        (Some(RelayState::On), true)
    );
    broker.resume();
    let again = report_of(&mut slow_reports, "slow").await;
    assert_eq!(
        (again.state, again.offline),
        (Some(RelayState::On), false),
        "announced on reconnecting"
    );
}

/// The `relay-sim` binary with `--tasmota-mqtt5` answers `mosquitto_rr`
/// on its Response Topic, and without it does not.
#[test]
fn relay_sim_tasmota_mqtt5_flag() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let run = format!("{:08x}", rand::random::<u32>());
    let mut config = Config::new(&broker.url());
    config.relays = vec![RelayConfig::tasmota(
        "pump",
        &format!("tasmota_{run}"),
        Some(1),
    )];
    let path = dir.path().join("panel.toml");
    config.save(&path).unwrap();
    let rr = || {
        Command::new("mosquitto_rr")
            .args(["-V", "5", "-p", &broker.port.to_string()])
            .args([
                "-t",
                &format!("cmnd/tasmota_{run}/POWER1"),
                "-e",
                "rr/response",
            ])
            .args(["-m", "ON", "-W", "1"])
            .output()
            .expect("mosquitto_rr (package mosquitto-clients)")
    };
    for (flag, answered) in [(true, true), (false, false)] {
        let mut sim = Command::new(env!("CARGO_BIN_EXE_relay-sim"));
        sim.arg("--config").arg(&path);
        if flag {
            sim.arg("--tasmota-mqtt5");
        }
        let mut sim = sim
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(sim.stderr.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(line.contains("1 relay(s) listening"), "{line}");
        let out = rr();
        let _ = sim.kill();
        let _ = sim.wait();
        if answered {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                r#"{"POWER1":"ON"}"#
            );
        } else {
            assert_eq!(out.status.code(), Some(27), "timed out: no MQTT 5 answer");
        }
    }
}
