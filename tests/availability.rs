//! Is the device there, and did anyone else switch it: the engine against a
//! real Mosquitto, with devices' last wills and their own state messages
//! published on the wire (a [`Wire`] client, or simulated devices), and
//! the store across a restart.

mod common;

use std::time::Duration;

use common::{Mosquitto, TestEngine, Wire, devices};
use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::{EngineOptions, Event};
use relay_panel::outcome::{Evidence, Outcome};
use relay_panel::protocol::{Action, RelayState};
use relay_panel::relay::{Availability, Shown};
use relay_panel::sim::Faults;

/// A configuration on `url` with these relays.
fn config_of(url: &str, relays: Vec<RelayConfig>) -> Config {
    let mut config = Config::new(url);
    config.relays = relays;
    config
}

/// A unique device name for this test run (retained messages outlive a
/// test only with the broker, but names keep runs apart in logs too).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// The changes at the device among `events`.
fn changes(events: &[Event]) -> Vec<(usize, relay_panel::store::AuditEntry)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Changed { relay, entry } => Some((*relay, entry.clone())),
            _ => None,
        })
        .collect()
}

/// A retained last will tells every relay of the device offline, "since
/// before" the panel heard it; a live message then brings them online,
/// and offline again, each once; a relay of another device and an
/// unreadable payload change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_will_tells_every_relay_of_its_device() {
    let broker = Mosquitto::start();
    let device = unique("tasmota");
    let config = config_of(
        &broker.url(),
        vec![
            RelayConfig::tasmota("t1", &device, Some(1)),
            RelayConfig::tasmota("t2", &device, Some(2)),
            RelayConfig::new("plain", &format!("{device}/plain")),
        ],
    );
    let lwt = format!("tele/{device}/LWT");
    let mut wire = Wire::connect(&broker.url()).await;
    wire.publish(&lwt, "Offline", true).await;

    let mut engine = TestEngine::start(&config);
    let first = engine.availability(0).await;
    let second = engine.availability(1).await;
    for availability in [first, second] {
        assert!(
            matches!(availability, Availability::Offline { retained: true, .. }),
            "{availability:?}"
        );
    }
    engine.ensure_connected().await;

    wire.publish(&lwt, "Online", false).await;
    for relay in [0, 1] {
        assert!(matches!(
            engine.availability(relay).await,
            Availability::Online {
                retained: false,
                ..
            }
        ));
    }
    // Unreadable, and the same again: nothing.
    wire.publish(&lwt, "maybe", false).await;
    wire.publish(&lwt, "online", false).await;
    engine
        .no_availability_within(
            Duration::from_millis(300),
            "an unreadable or repeated will changed availability",
        )
        .await;
    wire.publish(&lwt, "Offline", false).await;
    let before = std::time::SystemTime::now();
    match engine.availability(1).await {
        Availability::Offline { since, retained } => {
            assert!(!retained);
            assert!(since + Duration::from_secs(1) > before);
        }
        other => panic!("{other:?}"),
    }
    let statuses = engine.statuses.clone();
    assert_eq!(statuses[&0].availability.online(), Some(false));
    assert!(
        statuses
            .get(&2)
            .is_none_or(|s| s.availability == Availability::Unknown),
        "a relay without a last will stays unknown"
    );
}

/// A Shelly's NotifyStatus and status messages are changes at the device,
/// with their source; the same state again is nothing new; another
/// switch's notification is not this relay's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shelly_tells_changes_with_their_source() {
    let broker = Mosquitto::start();
    let device = unique("shellyplus2pm");
    let config = config_of(
        &broker.url(),
        vec![
            RelayConfig::shelly("porch", &device, 0),
            RelayConfig::shelly("yard", &device, 1),
        ],
    );
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let mut wire = Wire::connect(&broker.url()).await;
    let events = format!("{device}/events/rpc");
    let notify = |switch: u32, on: bool, source: &str| {
        format!(
            r#"{{"src":"{device}","dst":"{device}/events","method":"NotifyStatus","params":{{"ts":1.0,"switch:{switch}":{{"id":{switch},"output":{on},"source":"{source}"}}}}}}"#
        )
    };
    wire.publish(&events, &notify(0, true, "button"), false)
        .await;
    let entry = engine.changed(0).await;
    assert_eq!(entry.outcome, Outcome::ChangedAtDevice);
    assert_eq!(entry.state, Some(RelayState::On));
    assert_eq!(entry.evidence, Some(Evidence::Reported));
    assert_eq!(entry.detail.as_deref(), Some("button"));
    assert_eq!(entry.operator, "", "nobody this panel knows asked");
    let status = engine.statuses[&0].clone();
    match status.shown() {
        Some(Shown::Device(report)) => {
            assert_eq!(report.state, RelayState::On);
            assert_eq!(report.source.as_deref(), Some("button"));
            assert!(!report.retained);
        }
        other => panic!("{other:?}"),
    }

    // The same again is nothing new.
    wire.publish(&events, &notify(0, true, "button"), false)
        .await;
    let quiet = engine.drain(Duration::from_millis(300)).await;
    assert!(changes(&quiet).is_empty(), "{quiet:?}");

    // The status topic of the other switch.
    wire.publish(
        &format!("{device}/status/switch:1"),
        r#"{"id":1,"source":"HTTP_in","output":true}"#,
        false,
    )
    .await;
    let entry = engine.changed(1).await;
    assert_eq!(
        (entry.relay_id.as_str(), entry.detail.as_deref()),
        ("yard", Some("HTTP_in"))
    );
    let quiet = engine.drain(Duration::from_millis(200)).await;
    assert!(changes(&quiet).is_empty(), "only yard: {quiet:?}");
}

/// This panel's own requests are not changes at the device, for every
/// kind: the NotifyStatus a Shelly sends after its reply, the
/// `stat/…/POWER` a Tasmota sends after its RESULT, a state device's
/// report. A switch made at the device afterwards is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_requests_echo_without_being_changes() {
    let broker = Mosquitto::start();
    let run = unique("echo");
    let config = config_of(
        &broker.url(),
        vec![
            RelayConfig::shelly("porch", &format!("{run}-shelly"), 0),
            RelayConfig::tasmota("pump", &format!("{run}-tasmota"), Some(1)),
            RelayConfig::state(
                "bench",
                &format!("{run}/bench/set"),
                &format!("{run}/bench/state"),
            ),
        ],
    );
    let (_devices, _records) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    for relay in 0..config.relays.len() {
        for action in [Action::On, Action::Off] {
            let entry = engine.request(relay, action).await;
            assert!(entry.outcome.has_state(), "{entry:?}");
        }
    }
    let after = engine.drain(Duration::from_millis(800)).await;
    assert!(changes(&after).is_empty(), "{after:?}");

    // A Tasmota's button: RESULT and POWER1, one change.
    let mut wire = Wire::connect(&broker.url()).await;
    let device = format!("{run}-tasmota");
    wire.publish(
        &format!("stat/{device}/RESULT"),
        r#"{"POWER1":"ON"}"#,
        false,
    )
    .await;
    wire.publish(&format!("stat/{device}/POWER1"), "ON", false)
        .await;
    let entry = engine.changed(1).await;
    assert_eq!(
        (entry.state, entry.detail.as_deref()),
        (Some(RelayState::On), None)
    );
    let quiet = engine.drain(Duration::from_millis(300)).await;
    assert!(changes(&quiet).is_empty(), "{quiet:?}");
}

/// A retained state heard on subscribing is shown as reported (retained;
/// time unknown) and not logged as a change; a live one is a change,
/// stored, and shown after a restart while the retained state agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_states_are_shown_not_logged_and_changes_survive_a_restart() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let run = unique("bench");
    let state_topic = format!("{run}/state");
    let config = config_of(
        &broker.url(),
        vec![RelayConfig::state(
            "bench",
            &format!("{run}/set"),
            &state_topic,
        )],
    );
    let mut wire = Wire::connect(&broker.url()).await;
    wire.publish(&state_topic, "ON", true).await;
    let options = || EngineOptions {
        data_dir: Some(dir.path().to_owned()),
        ..EngineOptions::new(config.clone())
    };

    let mut engine = TestEngine::start_with(options());
    let shown = engine
        .wait_for(Duration::from_secs(10), |event| match event {
            Event::Relay { status, .. } => status.shown().map(|s| match s {
                Shown::Device(report) => (report.state, report.retained),
                Shown::Acknowledged(ack) => panic!("{ack:?}"),
            }),
            _ => None,
        })
        .await;
    assert_eq!(shown, (RelayState::On, true));
    // Switched at the device, published retained as such devices do.
    wire.publish(&state_topic, "OFF", true).await;
    let entry = engine.changed(0).await;
    assert_eq!(entry.state, Some(RelayState::Off));
    let events = engine.stop().await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::Changed { .. })),
        "{events:?}"
    );

    let store = relay_panel::store::Store::open_in(dir.path()).unwrap().0;
    let log = store.recent_audit(10).unwrap();
    assert_eq!(log.len(), 1, "only the live change is logged: {log:?}");
    assert_eq!(log[0].outcome, Outcome::ChangedAtDevice);
    drop(store);

    // After a restart: the stored change, from an earlier session; the
    // retained OFF agrees, so it stays so.
    let mut engine = TestEngine::start_with(options());
    engine.connected().await;
    engine.drain(Duration::from_millis(300)).await;
    let status = engine.statuses[&0].clone();
    match status.shown() {
        Some(Shown::Device(report)) => {
            assert_eq!(report.state, RelayState::Off);
            assert!(report.restored && !report.retained, "{report:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// Newest evidence wins: a change at the device (an `mqtt5` relay's
/// state topic, its source in the User Property `source`) replaces the
/// confirmed state, and a confirmation after it wins again; the
/// acknowledgement names who asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_after_a_change_wins_again() {
    let broker = Mosquitto::start();
    let run = unique("pump");
    let mut relay = RelayConfig::new("pump", &format!("{run}/set"));
    relay.state_topic = format!("{run}/state");
    let mut config = config_of(&broker.url(), vec![relay]);
    config.panel.operator = Some("alice".into());
    let (_devices, _records) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    assert_eq!(
        engine.request(0, Action::Off).await.outcome,
        Outcome::Confirmed
    );
    let mut wire = Wire::connect(&broker.url()).await;
    wire.publish_with(
        &format!("{run}/state"),
        "1",
        false,
        vec![("source".into(), "button".into())],
    )
    .await;
    let entry = engine.changed(0).await;
    assert_eq!(
        (entry.state, entry.detail.as_deref()),
        (Some(RelayState::On), Some("button"))
    );
    let status = engine.statuses[&0].clone();
    assert_eq!(status.shown_state(), Some(RelayState::On));
    let ack = status.last_acknowledged.clone().unwrap();
    assert_eq!(
        (ack.state, ack.operator.as_deref()),
        (RelayState::Off, Some("alice"))
    );

    assert_eq!(
        engine.request(0, Action::Off).await.outcome,
        Outcome::Confirmed
    );
    engine.drain(Duration::from_millis(100)).await;
    let status = engine.statuses[&0].clone();
    assert!(
        matches!(status.shown(), Some(Shown::Acknowledged(ack)) if ack.state == RelayState::Off),
        "{status:?}"
    );
}

/// A new relay of a device already heard shares its availability at once
/// (the broker sends a retained will only to a new subscription); a relay
/// moved to another device starts unknown, then hears that one's will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfiguring_keeps_what_each_last_will_said() {
    let broker = Mosquitto::start();
    let first = unique("shelly-a");
    let second = unique("shelly-b");
    let config = config_of(&broker.url(), vec![RelayConfig::shelly("porch", &first, 0)]);
    let mut wire = Wire::connect(&broker.url()).await;
    wire.publish(&format!("{first}/online"), "false", true)
        .await;
    wire.publish(&format!("{second}/online"), "true", true)
        .await;
    let mut engine = TestEngine::start(&config);
    assert!(engine.availability(0).await.is_offline());

    let mut more = config.clone();
    more.relays.push(RelayConfig::shelly("yard", &first, 1));
    engine.handle.reconfigure(more.clone().into()).unwrap();
    let yard = engine
        .wait_for(Duration::from_secs(10), |event| match event {
            Event::Relay { relay: 1, status } => Some(status.availability),
            _ => None,
        })
        .await;
    assert!(yard.is_offline(), "{yard:?}");

    let mut moved = more.clone();
    moved.relays[0] = RelayConfig::shelly("porch", &second, 0);
    engine.handle.reconfigure(moved.into()).unwrap();
    let porch = engine
        .wait_for(Duration::from_secs(10), |event| match event {
            Event::Relay { relay: 0, status } => Some(status.availability),
            _ => None,
        })
        .await;
    assert_eq!(porch, Availability::Unknown, "another device's will");
    assert!(matches!(
        engine.availability(0).await,
        Availability::Online { retained: true, .. }
    ));
}

/// Simulated devices of every kind, with real last wills: the panel hears
/// them online, each wall-button press as a change at the device (with
/// the source the device gives), each cut connection as offline (the
/// broker's will) and each return; requests to them afterwards are not
/// changes. Then the broker restarts twice with a fixed client id: the
/// devices that are there say so again, the one still cut off stays
/// offline, and nothing is reported as changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_devices_go_offline_come_back_and_switch_at_the_device() {
    let mut broker = Mosquitto::start();
    let run = unique("plant");
    let mut bench = RelayConfig::state(
        "bench",
        &format!("{run}/bench/set"),
        &format!("{run}/bench/state"),
    );
    bench.availability_topic = format!("{run}/bench/status");
    let mut plain = RelayConfig::new("plain", &format!("{run}/plain/set"));
    plain.state_topic = format!("{run}/plain/state");
    plain.availability_topic = format!("{run}/plain/status");
    plain.payload_available = "up".into();
    plain.payload_not_available = "down".into();
    let mut config = config_of(
        &broker.url(),
        vec![
            RelayConfig::shelly("porch", &format!("{run}-shelly"), 0),
            RelayConfig::tasmota("pump", &format!("{run}-tasmota"), Some(1)),
            bench,
            plain,
        ],
    );
    config.broker.client_id = Some(format!("{run}-panel"));
    for relay in &mut config.relays {
        relay.timeout_ms = Some(500);
    }
    let (mut devices, _records) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let all = |online: Option<bool>| {
        move |statuses: &std::collections::HashMap<usize, relay_panel::relay::RelayStatus>| {
            (0..4).all(|r| {
                statuses
                    .get(&r)
                    .is_some_and(|s| s.availability.online() == online)
            })
        }
    };
    engine
        .statuses_until(Duration::from_secs(10), all(Some(true)))
        .await;
    // Presses: a change each, with the device's own source.
    let sources = [Some("button"), None, None, Some("button")];
    for (relay, source) in sources.into_iter().enumerate() {
        assert!(devices.press(&config.relays[relay].id));
        let entry = engine.changed(relay).await;
        assert_eq!(
            (entry.state, entry.detail.as_deref()),
            (Some(RelayState::On), source),
            "{}",
            config.relays[relay].id
        );
    }
    let quiet = engine.drain(Duration::from_millis(500)).await;
    assert!(
        changes(&quiet).is_empty(),
        "one change per press: {quiet:?}"
    );

    // Cut off: the broker's will; a request then has no answer.
    for relay in &config.relays {
        assert!(devices.set_online(&relay.id, false));
    }
    engine
        .statuses_until(Duration::from_secs(10), all(Some(false)))
        .await;
    assert!(matches!(
        engine.statuses[&3].availability,
        Availability::Offline {
            retained: false,
            ..
        }
    ));
    let entry = engine.request(0, Action::Off).await;
    assert_eq!(entry.outcome, Outcome::NoResponse);
    // Back, and switched from here: confirmations, not changes.
    for relay in &config.relays {
        assert!(devices.set_online(&relay.id, true));
    }
    engine
        .statuses_until(Duration::from_secs(10), all(Some(true)))
        .await;
    tokio::time::timeout(Duration::from_secs(10), devices.ready())
        .await
        .unwrap();
    for relay in 0..4 {
        let entry = engine.request(relay, Action::Off).await;
        assert!(entry.outcome.has_state(), "{entry:?}");
        assert_eq!(entry.state, Some(RelayState::Off));
    }
    let quiet = engine.drain(Duration::from_millis(800)).await;
    assert!(changes(&quiet).is_empty(), "{quiet:?}");

    // The shelly is cut off again; the broker restarts twice.
    assert!(devices.set_online("porch", false));
    assert!(engine.availability(0).await.is_offline());
    for _ in 0..2 {
        broker.stop();
        broker.resume();
        engine
            .wait_connection(Duration::from_secs(20), |s| s.is_ready())
            .await;
    }
    tokio::time::timeout(Duration::from_secs(20), devices.ready())
        .await
        .unwrap();
    let after = engine.drain(Duration::from_millis(800)).await;
    assert!(changes(&after).is_empty(), "{after:?}");
    let statuses = &engine.statuses;
    assert!(statuses[&0].availability.is_offline(), "still cut off");
    for relay in 1..4 {
        assert_eq!(
            statuses[&relay].availability.online(),
            Some(true),
            "relay {relay}"
        );
    }
    let entry = engine.request(1, Action::On).await;
    assert!(entry.outcome.has_state(), "{entry:?}");
}

/// After a restart, a retained state that says what the store already
/// knows keeps the store's answer, with its time and who asked, whichever
/// of the two the engine hears first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_state_agreeing_with_the_store_keeps_the_stored_answer() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let run = unique("bench");
    let mut config = config_of(
        &broker.url(),
        vec![RelayConfig::state(
            "bench",
            &format!("{run}/set"),
            &format!("{run}/state"),
        )],
    );
    config.panel.operator = Some("alice".into());
    let (_devices, _records) = devices(&config, Faults::default()).await;
    let options = || EngineOptions {
        data_dir: Some(dir.path().to_owned()),
        ..EngineOptions::new(config.clone())
    };
    for round in 0..3 {
        let mut engine = TestEngine::start_with(options());
        engine.connected().await;
        if round == 0 {
            let entry = engine.request(0, Action::On).await;
            assert_eq!(entry.outcome, Outcome::Reported);
        }
        engine.drain(Duration::from_millis(200)).await;
        let status = engine.statuses[&0].clone();
        match status.shown() {
            Some(Shown::Acknowledged(ack)) => {
                assert_eq!(ack.state, RelayState::On);
                assert_eq!(ack.operator.as_deref(), Some("alice"));
                assert_eq!(ack.restored, round > 0, "round {round}");
            }
            other => panic!("round {round}: {other:?}"),
        }
        engine.stop().await;
    }
}
