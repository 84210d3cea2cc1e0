//! Truth under faults: the combinations a plant network produces (answers
//! that overtake each other, broker restarts with a fixed client id, a full
//! broker, a stalled broker, a busy store, a crash), each against a real
//! Mosquitto. Every test states the promise it holds the engine to.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Mosquitto, ScriptedDevice, TestEngine, config, devices};
use relay_panel::config::Config;
use relay_panel::engine::{self, ConnectionState, EngineOptions, Event};
use relay_panel::outcome::Outcome;
use relay_panel::protocol::{Action, RelayState};
use relay_panel::sim::{Faults, SimReply};
use relay_panel::store::Store;

fn engine_with_store(config: &Config, data: &Path) -> TestEngine {
    let mut options = EngineOptions::new(config.clone());
    options.data_dir = Some(data.to_owned());
    TestEngine::start_with(options)
}

/// The last acknowledged state the engine reports for `relay`, from the
/// newest `Relay` event among `events`.
fn shown(events: &[Event], relay: usize) -> Option<Option<RelayState>> {
    events.iter().rev().find_map(|e| match e {
        Event::Relay { relay: r, status } if *r == relay => {
            Some(status.last_acknowledged.as_ref().map(|a| a.state))
        }
        _ => None,
    })
}

/// Request A (on) times out; request B (off) is confirmed; then A's late
/// answer arrives. "Newer" means requested later: the relay still shows
/// off, the late answer is logged as older, the store keeps off, and a
/// restarted engine restores off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_answer_never_overwrites_newer_confirmation() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.url(), 1);
    config.broker.request_timeout_ms = 300;
    let mut device = ScriptedDevice::start(&broker.url(), &config.relays[0].request_topic).await;
    let mut engine = engine_with_store(&config, dir.path());
    engine.connected().await;

    engine.handle.request(0, Action::On);
    let a = device.request(Duration::from_secs(5)).await;
    assert_eq!(a.payload, "1");
    let timed_out = engine.finished(0, Duration::from_secs(5)).await;
    assert_eq!(timed_out.outcome, Outcome::NoResponse);

    engine.handle.request(0, Action::Off);
    let b = device.request(Duration::from_secs(5)).await;
    device.answer(&b, "0").await;
    let confirmed = engine.finished(0, Duration::from_secs(5)).await;
    assert_eq!(
        (confirmed.outcome.code(), confirmed.state),
        ("confirmed", Some(RelayState::Off))
    );

    device.answer(&a, "1").await;
    let mut late = None;
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while late.is_none() {
        let event = engine
            .next(deadline.saturating_duration_since(Instant::now()))
            .await;
        if let Event::Late { entry, .. } = &event {
            late = Some(entry.clone());
        }
        events.push(event);
    }
    let late = late.unwrap();
    assert_eq!(late.state, Some(RelayState::On));
    assert!(
        late.detail.as_deref().unwrap_or("").contains("older"),
        "{late:?}"
    );
    assert_eq!(
        shown(&events, 0),
        None,
        "no status change for an older answer"
    );
    let rest = engine.stop().await;
    assert!(!rest.iter().any(|e| matches!(e, Event::Relay { .. })));

    let (store, _) = Store::open_in(dir.path()).unwrap();
    let stored = store.last_acknowledged_of("r0").unwrap().unwrap();
    assert_eq!(stored.state, RelayState::Off, "the store keeps the newer");
    drop(store);

    let mut restarted = engine_with_store(&config, dir.path());
    let restored = loop {
        if let Event::Relay { status, .. } = restarted.next(Duration::from_secs(5)).await {
            break status.last_acknowledged.clone().unwrap();
        }
    };
    assert_eq!(restored.state, RelayState::Off);
    assert!(restored.restored);
}

/// A request topic under `relay-panel/` could be this panel's own response
/// topic: it is refused before connecting. And the response subscription
/// sets No Local, so even a client that publishes on its own response topic
/// never receives that message back as an "answer".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_requests_never_come_back_as_answers() {
    let broker = Mosquitto::start();
    let mut config = config(&broker.url(), 1);
    config.broker.client_id = Some("desk".into());
    config.relays[0].request_topic = "relay-panel/desk/response".into();
    let refused = engine::spawn(EngineOptions::new(config.clone()))
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("relay-panel/"), "{refused}");

    // No Local, at the MQTT level: one client subscribed with the engine's
    // subscription publishes to that topic; a second client sees it, the
    // publisher does not.
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    let topic = "relay-panel/no-local-test/response";
    let broker_config = Config::new(&broker.url()).broker;
    let (own, own_loop) = relay_panel::mqtt::client(&broker_config, "no-local-own").unwrap();
    let (other, other_loop) = relay_panel::mqtt::client(&broker_config, "no-local-other").unwrap();
    relay_panel::mqtt::subscribe(&own, topic).unwrap();
    other.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    for (who, mut eventloop) in [("own", own_loop), ("other", other_loop)] {
        let seen_tx = seen_tx.clone();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                match event {
                    rumqttc::v5::Event::Incoming(Packet::SubAck(_)) => {
                        let _ = seen_tx.send((who, "suback"));
                    }
                    rumqttc::v5::Event::Incoming(Packet::Publish(_)) => {
                        let _ = seen_tx.send((who, "publish"));
                    }
                    _ => {}
                }
            }
        });
    }
    let mut subacks = 0;
    while subacks < 2 {
        let (_, what) = tokio::time::timeout(Duration::from_secs(5), seen.recv())
            .await
            .unwrap()
            .unwrap();
        subacks += usize::from(what == "suback");
    }
    own.publish(topic, QoS::AtLeastOnce, false, "1")
        .await
        .unwrap();
    let (who, what) = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((who, what), ("other", "publish"));
    let echo = tokio::time::timeout(Duration::from_millis(500), seen.recv()).await;
    assert!(echo.is_err(), "the publisher got its own message: {echo:?}");
}

/// A fixed client id and three broker restarts, 3 s apart: every time the
/// engine reconnects and resubscribes, it never ends "failed" (a restart
/// is not a session take-over), and a request is confirmed after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_restarts_with_a_fixed_client_id_are_ridden_out() {
    let mut broker = Mosquitto::start();
    let mut config = config(&broker.url(), 1);
    config.broker.client_id = Some(format!("desk-{:04x}", rand::random::<u16>()));
    let (mut devices, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    for round in 1..=3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        broker.stop();
        broker.resume();
        // The devices reconnect too; wait until they have noticed and are back.
        let noticed = Instant::now();
        while devices.is_ready() && noticed.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::timeout(Duration::from_secs(15), devices.ready())
            .await
            .expect("devices back");
        let state = engine
            .wait_connection(Duration::from_secs(15), |s| match s {
                ConnectionState::Failed { reason } => panic!("round {round}: failed: {reason}"),
                s => s.is_ready(),
            })
            .await;
        assert!(state.is_ready());
        let entry = engine.request(0, Action::On).await;
        assert_eq!(
            entry.outcome,
            Outcome::Confirmed,
            "round {round}: {entry:?}"
        );
    }
    assert!(
        engine
            .connections
            .iter()
            .any(|s| matches!(s, ConnectionState::Reconnecting { .. })),
        "the restarts were seen: {:?}",
        engine.connections
    );
}

/// A broker that closes every connection before CONNACK for 5 s, as a
/// full broker (`max_connections`) or one still starting does: the engine
/// says what it saw, keeps retrying (never "does not speak MQTT 5" for
/// good), and connects once the broker takes connections again.
///
/// (Mosquitto 2.0.11's own `max_connections` miscounts after its first
/// denial and then admits one client too many, so the full broker is
/// played by a listener that accepts and closes, on the broker's port.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_refusing_connections_for_5_s_is_waited_out() {
    let mut broker = Mosquitto::start();
    let port = broker.port;
    broker.stop();
    let full = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    full.set_nonblocking(true).unwrap();
    let closer = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(5);
        let mut refused = 0;
        while Instant::now() < until {
            match full.accept() {
                Ok((stream, _)) => {
                    drop(stream);
                    refused += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        refused
    });
    let config = config(&broker.url(), 1);
    let mut engine = TestEngine::start(&config);
    let refused = tokio::task::spawn_blocking(move || closer.join().unwrap())
        .await
        .unwrap();
    assert!(refused >= 3, "the engine kept trying: {refused} attempts");
    broker.resume();
    let state = engine
        .wait_connection(Duration::from_secs(15), |s| match s {
            ConnectionState::Failed { reason } => {
                panic!("a broker refusing connections is retried: {reason}")
            }
            s => s.is_ready(),
        })
        .await;
    assert!(state.is_ready());
    let reasons: Vec<&str> = engine
        .connections
        .iter()
        .filter_map(|s| match s {
            ConnectionState::Reconnecting { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("before answering the MQTT 5 CONNECT")),
        "what was seen is said: {reasons:?}"
    );
    let pauses: Vec<Duration> = engine
        .connections
        .iter()
        .filter_map(|s| match s {
            ConnectionState::Reconnecting { retry_in, .. } => Some(*retry_in),
            _ => None,
        })
        .collect();
    assert!(
        pauses.iter().all(|p| *p <= relay_panel::mqtt::BACKOFF.1)
            && pauses.windows(2).all(|w| w[1] >= w[0]),
        "backoff grows to its cap: {pauses:?}"
    );
}

/// relayctl with the panel's configured client id: it connects under an id
/// of its own, so the panel is not thrown off the broker, and its request
/// is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayctl_never_takes_over_the_panel_session() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&broker.url(), 1);
    config.broker.client_id = Some("desk-3".into());
    let path = dir.path().join("panel.toml");
    config.save(&path).unwrap();
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut panel = TestEngine::start(&config);
    panel.connected().await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_relayctl"))
            .arg("--config")
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["set", "r0", "on"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = panel.drain(Duration::from_millis(500)).await;
    assert!(
        !after.iter().any(|e| matches!(e, Event::Connection(_))),
        "the panel stayed connected: {after:?}"
    );
    let entry = panel.request(0, Action::Off).await;
    assert_eq!(entry.outcome, Outcome::Confirmed);
}

/// A wrong password is certain to fail again: relayctl exits 1 within
/// seconds and names the reason (it used to hang: the failed engine stopped
/// serving commands).
#[test]
fn relayctl_with_a_wrong_password_exits_1_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["panel", "right"])
        .output()
        .expect("mosquitto_passwd");
    assert!(made.status.success());
    let broker = Mosquitto::start_with(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.display()
    ));
    let mut config = config(&broker.url(), 1);
    config.broker.username = Some("panel".into());
    config.broker.password = Some("wrong".into());
    let path = dir.path().join("panel.toml");
    config.save(&path).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_relayctl"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["set", "r0", "on"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("user name or password"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// A crash inside the engine is not a silent window: it is reported as a
/// failed connection naming the internal error, and a new engine on the
/// same configuration works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_crash_is_reported() {
    let broker = Mosquitto::start();
    let config = config(&broker.url(), 1);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    engine.handle.crash_for_test();
    let reason = engine.failure(Duration::from_secs(5)).await;
    assert!(
        reason.contains("internal error") && reason.contains("Retry"),
        "{reason}"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), engine.events.recv())
        .await
        .unwrap();
    assert!(ended.is_none(), "the event stream ends: {ended:?}");
    let mut again = TestEngine::start(&config);
    again.connected().await;
    assert_eq!(
        again.request(0, Action::On).await.outcome,
        Outcome::Confirmed
    );
}

/// The store is locked by another program while a relay is confirmed: the
/// confirmation is shown at once, one warning says it is kept and retried,
/// and once the lock goes the state is written (nothing dropped) and a
/// second message says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_store_loses_no_confirmation() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 2);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut engine = engine_with_store(&config, dir.path());
    engine.connected().await;
    assert_eq!(
        engine.request(0, Action::On).await.outcome,
        Outcome::Confirmed
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let holder =
        rusqlite::Connection::open(dir.path().join(relay_panel::store::STORE_FILE)).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    assert_eq!(
        engine.request(1, Action::On).await.outcome,
        Outcome::Confirmed
    );
    assert_eq!(
        engine.request(0, Action::Off).await.outcome,
        Outcome::Confirmed
    );
    let mut warnings = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while warnings.is_empty() && Instant::now() < deadline {
        if let Ok(Some(Event::Warning(w))) =
            tokio::time::timeout(Duration::from_millis(200), engine.events.recv()).await
        {
            warnings.push(w);
        }
    }
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("kept in memory"), "{warnings:?}");
    // More confirmations while it fails: no more warnings.
    assert_eq!(
        engine.request(1, Action::Off).await.outcome,
        Outcome::Confirmed
    );
    holder.execute_batch("COMMIT;").unwrap();
    drop(holder);
    let mut resumed = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while resumed.is_none() && Instant::now() < deadline {
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), engine.events.recv()).await
        {
            match event {
                Event::Warning(w) if w.contains("writing again") => resumed = Some(w),
                Event::Warning(w) => panic!("one warning while failing, got another: {w}"),
                _ => {}
            }
        }
    }
    assert!(resumed.is_some(), "told when writes work again");
    engine.stop().await;
    let (store, _) = Store::open_in(dir.path()).unwrap();
    let state = |id: &str| store.last_acknowledged_of(id).unwrap().map(|a| a.state);
    assert_eq!(state("r0"), Some(RelayState::Off));
    assert_eq!(state("r1"), Some(RelayState::Off));
    let outcomes = store.recent_audit(10).unwrap();
    assert_eq!(outcomes.len(), 4, "every audit entry kept: {:?}", outcomes);
}

/// A broker stalled (SIGSTOP) while requests are sent, released after
/// they have ended unanswered. A request already in the socket reaches the
/// device late and carries `expires_at`, which relay-sim honours: not
/// actuated. A request that waited for the broker's window is never sent
/// at all. Either way nothing switches after the panel said "no response".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_broker_never_actuates_an_expired_request() {
    // Receive Maximum 1: the second request must wait for the first's PUBACK.
    let broker = Mosquitto::start_with("max_inflight_messages 1\n");
    let mut config = config(&broker.url(), 2);
    config.broker.request_timeout_ms = 700;
    let (devices, mut records) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;

    broker.pause().unwrap();
    engine.handle.request(0, Action::On);
    engine.handle.request(1, Action::On);
    let mut outcomes = std::collections::HashMap::new();
    while outcomes.len() < 2 {
        if let Event::Finished { relay, entry } = engine.next(Duration::from_secs(5)).await {
            outcomes.insert(relay, entry);
        }
    }
    assert_eq!(
        outcomes[&0].outcome,
        Outcome::NoResponse,
        "{:?}",
        outcomes[&0]
    );
    assert_eq!(outcomes[&1].outcome, Outcome::NotSent, "{:?}", outcomes[&1]);
    assert!(
        outcomes[&1]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("never sent"),
        "{:?}",
        outcomes[&1]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.unpause().unwrap();

    let record = tokio::time::timeout(Duration::from_secs(5), records.recv())
        .await
        .expect("the request in the socket reaches the device after the stall")
        .unwrap();
    assert_eq!(record.relay_id, "r0");
    assert!(
        matches!(record.reply, SimReply::Expired { .. }),
        "{record:?}"
    );
    let more = tokio::time::timeout(Duration::from_secs(2), records.recv()).await;
    assert!(more.is_err(), "the held request never went out: {more:?}");
    assert_eq!(devices.state("r0"), Some(RelayState::Off));
    assert_eq!(devices.state("r1"), Some(RelayState::Off));
    // The connection survived the stall and works.
    engine.ensure_connected().await;
    assert_eq!(
        engine.request(1, Action::On).await.outcome,
        Outcome::Confirmed
    );
}

/// A broker that speaks only MQTT 3.1.1 and simply does not answer an
/// MQTT 5 CONNECT (amqtt): the TCP connection opened, no CONNACK came, so
/// the engine says the broker may not accept MQTT 5, with the time waited,
/// and keeps retrying; relayctl exits 1 with the same words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_answers_connect_may_not_speak_mqtt5() {
    let broker = common::Amqtt::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&broker.url(), 1);
    let path = dir.path().join("panel.toml");
    config.save(&path).unwrap();
    let cli = tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_relayctl"))
            .arg("--config")
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["set", "r0", "on"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    });
    let mut engine = TestEngine::start(&config);
    let state = engine
        .wait_connection(Duration::from_secs(12), |s| match s {
            ConnectionState::Failed { reason } => panic!("retried, not failed: {reason}"),
            s => matches!(s, ConnectionState::Reconnecting { .. }),
        })
        .await;
    let ConnectionState::Reconnecting { reason, .. } = state else {
        unreachable!()
    };
    assert!(
        reason.contains(
            "accepted the TCP connection but did not answer the MQTT 5 CONNECT within 5 s"
        ) && reason.contains("may not accept MQTT 5"),
        "{reason}"
    );
    let (code, stderr) = cli.await.unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("may not accept MQTT 5"), "{stderr}");
}
