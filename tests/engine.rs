//! The engine against a real Mosquitto and simulated devices.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Mosquitto, Rig, ScriptedDevice, TestEngine, config, devices};
use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::{ConnectionState, EngineOptions, Event, ReconfigureError};
use relay_panel::outcome::Outcome;
use relay_panel::protocol::{Action, RelayState};
use relay_panel::relay::{Failure, Phase};
use relay_panel::sim::{FAIL_TEXT, Faults, SimReply};

const SHORT: Duration = Duration::from_millis(400);

fn last_state(events: &[Event], relay: usize) -> Option<Option<RelayState>> {
    events.iter().rev().find_map(|e| match e {
        Event::Relay { relay: r, status } if *r == relay => {
            Some(status.last_acknowledged.as_ref().map(|a| a.state))
        }
        _ => None,
    })
}

/// On, off and query are confirmed by the device, and the device really
/// switched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_off_query_are_confirmed() {
    let Rig {
        mut engine,
        devices,
        broker: _broker,
        config: _config,
        records: _records,
    } = Rig::start(3, Faults::default(), |_| {}).await;

    let on = engine.request(1, Action::On).await;
    assert_eq!(
        (on.outcome.code(), on.state),
        ("confirmed", Some(RelayState::On))
    );
    assert!(on.rtt.is_some());
    assert_eq!(devices.state("r1"), Some(RelayState::On));

    let query = engine.request(1, Action::Query).await;
    assert_eq!(
        (query.outcome.code(), query.state),
        ("confirmed", Some(RelayState::On))
    );

    let off = engine.request(1, Action::Off).await;
    assert_eq!(
        (off.outcome.code(), off.state),
        ("confirmed", Some(RelayState::Off))
    );
    assert_eq!(devices.state("r1"), Some(RelayState::Off));
    assert_eq!(
        devices.state("r0"),
        Some(RelayState::Off),
        "other relays untouched"
    );
}

/// The status goes Pending (last acknowledged kept) then Confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_pending_until_the_device_answers() {
    let faults = Faults {
        latency: Duration::from_millis(200),
        ..Faults::default()
    };
    let Rig {
        mut engine,
        broker: _broker,
        config: _config,
        devices: _devices,
        records: _records,
    } = Rig::start(1, faults, |_| {}).await;
    engine.handle.request(0, Action::On);
    let mut phases = Vec::new();
    loop {
        match engine.next(Duration::from_secs(5)).await {
            Event::Relay { status, .. } => phases.push(status),
            Event::Finished { .. } => break,
            _ => {}
        }
    }
    assert!(
        matches!(
            phases[0].phase,
            Phase::Pending {
                requested: Action::On,
                ..
            }
        ),
        "{phases:?}"
    );
    assert_eq!(
        phases[0].last_acknowledged, None,
        "nothing confirmed while pending"
    );
    let last = phases.last().unwrap();
    assert!(
        matches!(
            last.phase,
            Phase::Confirmed {
                state: RelayState::On,
                ..
            }
        ),
        "{last:?}"
    );
    assert!(last.last_acknowledged.clone().unwrap().rtt >= Duration::from_millis(200));
}

/// With no device, the request ends as "no response" and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_device_means_no_response() {
    let broker = Mosquitto::start();
    let mut config = config(&broker.url(), 1);
    config.relays[0].timeout_ms = Some(300);
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let entry = engine.request(0, Action::On).await;
    assert_eq!(entry.outcome, Outcome::NoResponse);
    assert_eq!(entry.state, None);
    let events = engine.stop().await;
    assert_ne!(last_state(&events, 0), Some(Some(RelayState::On)));
}

/// A second request for a relay with one in flight is not sent, and says
/// so at once ("busy"), so a caller waiting for its outcome never waits
/// forever; the request in flight is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_in_flight_per_relay() {
    let faults = Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    };
    let Rig {
        mut engine,
        mut records,
        broker: _broker,
        config: _config,
        devices: _devices,
    } = Rig::start(1, faults, |_| {}).await;
    engine.handle.request(0, Action::On);
    engine.handle.request(0, Action::Off);
    let busy = engine.finished(0, Duration::from_millis(200)).await;
    assert_eq!(
        (busy.outcome.code(), busy.action),
        ("busy", Action::Off),
        "{busy:?}"
    );
    assert!(
        busy.detail
            .unwrap()
            .contains("already has a request in flight")
    );
    let entry = engine.finished(0, Duration::from_secs(5)).await;
    assert_eq!(entry.state, Some(RelayState::On));
    let others: Vec<_> = engine.drain(SHORT).await;
    assert!(
        !others.iter().any(|e| matches!(e, Event::Finished { .. })),
        "{others:?}"
    );
    records.recv().await.unwrap();
    assert!(
        records.try_recv().is_err(),
        "the device saw exactly one request"
    );
}

/// Wrong correlation data is ignored: the request times out unconfirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_correlation_is_ignored() {
    let faults = Faults {
        wrong_correlation: 1.0,
        ..Faults::default()
    };
    let Rig {
        mut engine,
        devices,
        mut records,
        broker: _broker,
        config: _config,
    } = Rig::start(1, faults, |config| {
        config.relays[0].timeout_ms = Some(300);
    })
    .await;
    let entry = engine.request(0, Action::On).await;
    assert_eq!(entry.outcome, Outcome::NoResponse);
    assert_eq!(
        records.recv().await.unwrap().reply,
        SimReply::WrongCorrelation
    );
    assert_eq!(
        devices.state("r0"),
        Some(RelayState::On),
        "the device did switch…"
    );
    let events = engine.stop().await;
    assert_ne!(
        last_state(&events, 0),
        Some(Some(RelayState::On)),
        "…but nobody confirmed it to this panel"
    );
}

/// A duplicated answer confirms once; the copy changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_answers_count_once() {
    let faults = Faults {
        duplicate: 1.0,
        ..Faults::default()
    };
    let Rig {
        mut engine,
        broker: _broker,
        config: _config,
        devices: _devices,
        records: _records,
    } = Rig::start(1, faults, |_| {}).await;
    let entry = engine.request(0, Action::On).await;
    assert_eq!(entry.outcome, Outcome::Confirmed);
    let after = engine.drain(SHORT).await;
    assert!(
        !after.iter().any(|e| matches!(
            e,
            Event::Relay { .. } | Event::Finished { .. } | Event::Late { .. }
        )),
        "the duplicate must change nothing: {after:?}"
    );
}

/// Garbage payloads are device errors: shown, but the state is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_answers_change_no_state() {
    let broker = Mosquitto::start();
    let config = config(&broker.url(), 1);
    let (mut devices_ok, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    assert_eq!(
        engine.request(0, Action::On).await.outcome,
        Outcome::Confirmed
    );
    devices_ok.stop();
    let faults = Faults {
        garbage: 1.0,
        ..Faults::default()
    };
    let (_garbage, _) = devices(&config, faults).await;
    engine.handle.request(0, Action::Off);
    let mut last = None;
    loop {
        match engine.next(Duration::from_secs(5)).await {
            Event::Relay { status, .. } => last = Some(status),
            Event::Finished { entry, .. } => {
                assert_eq!(entry.outcome, Outcome::DeviceError);
                break;
            }
            _ => {}
        }
    }
    let last = last.unwrap();
    assert!(matches!(
        last.phase,
        Phase::Failed {
            reason: Failure::DeviceError { .. },
            ..
        }
    ));
    assert_eq!(
        last.last_acknowledged.clone().unwrap().state,
        RelayState::On,
        "still the last confirmed state"
    );
}

/// A device that always fails reports its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_error_text_is_reported() {
    let faults = Faults {
        fail: ["r1".to_owned()].into_iter().collect(),
        ..Faults::default()
    };
    let Rig {
        mut engine,
        broker: _broker,
        config: _config,
        devices: _devices,
        records: _records,
    } = Rig::start(2, faults, |_| {}).await;
    let entry = engine.request(1, Action::On).await;
    assert_eq!(entry.outcome, Outcome::DeviceError);
    assert_eq!(entry.detail.as_deref(), Some(FAIL_TEXT));
    assert_eq!(
        engine.request(0, Action::On).await.outcome,
        Outcome::Confirmed
    );
}

/// Two engines have their own response topics and never see each other's
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_panels_do_not_see_each_others_answers() {
    let broker = Mosquitto::start();
    let config = config(&broker.url(), 2);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut a = TestEngine::start(&config);
    let mut b = TestEngine::start(&config);
    assert_ne!(a.handle.response_topic, b.handle.response_topic);
    a.connected().await;
    b.connected().await;
    assert_eq!(a.request(0, Action::On).await.outcome, Outcome::Confirmed);
    let seen_by_b = b.drain(SHORT).await;
    assert!(
        !seen_by_b
            .iter()
            .any(|e| matches!(e, Event::Relay { .. } | Event::Finished { .. })),
        "{seen_by_b:?}"
    );
    assert_eq!(b.request(1, Action::On).await.outcome, Outcome::Confirmed);
    let seen_by_a = a.drain(SHORT).await;
    assert!(
        !seen_by_a
            .iter()
            .any(|e| matches!(e, Event::Relay { .. } | Event::Finished { .. })),
        "{seen_by_a:?}"
    );
}

/// Broker stopped and restarted: the engine reconnects, resubscribes, and
/// the next request is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_broker_restart() {
    let mut broker = Mosquitto::start();
    let config = config(&broker.url(), 1);
    let (devices_handle, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    assert_eq!(
        engine.request(0, Action::On).await.outcome,
        Outcome::Confirmed
    );

    broker.stop();
    let down = engine
        .wait_connection(Duration::from_secs(5), |s| {
            matches!(s, ConnectionState::Reconnecting { .. })
        })
        .await;
    assert!(matches!(&down, ConnectionState::Reconnecting { reason, .. } if !reason.is_empty()));
    // While down, a request is refused at once, not queued.
    let refused = engine.request(0, Action::Off).await;
    assert_eq!(refused.outcome, Outcome::NotSent);

    broker.resume();
    let started = std::time::Instant::now();
    engine.connected().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "reconnected in {:?}",
        started.elapsed()
    );
    // The devices reconnect too; wait until they are subscribed again.
    let mut devices_handle = devices_handle;
    tokio::time::timeout(Duration::from_secs(5), devices_handle.ready())
        .await
        .unwrap();
    let entry = engine.request(0, Action::Off).await;
    assert_eq!(
        (entry.outcome.code(), entry.state),
        ("confirmed", Some(RelayState::Off))
    );
}

/// A request in flight when the connection drops ends as "connection
/// lost" (or "no response"), never confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_in_flight_at_a_drop_is_never_confirmed() {
    let mut broker = Mosquitto::start();
    let config = config(&broker.url(), 1);
    let faults = Faults {
        latency: Duration::from_millis(500),
        ..Faults::default()
    };
    let (_devices, _) = devices(&config, faults).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    engine.handle.request(0, Action::On);
    tokio::time::sleep(Duration::from_millis(100)).await;
    broker.stop();
    let entry = engine.finished(0, Duration::from_secs(5)).await;
    assert!(
        entry.outcome == Outcome::ConnectionLost || entry.outcome == Outcome::NoResponse,
        "{entry:?}"
    );
    broker.resume();
    // The device may still answer after the reconnect: that is its own
    // report and may be shown, but only marked late, never as the answer
    // that confirmed the request.
    for event in engine.drain(Duration::from_secs(2)).await {
        match event {
            Event::Finished { .. } => panic!("the request already ended: {event:?}"),
            Event::Relay { status, .. } => {
                if let Some(ack) = &status.last_acknowledged {
                    assert!(ack.late, "{status:?}");
                }
            }
            _ => {}
        }
    }
}

/// Late answers (after the timeout) update the last acknowledged state,
/// marked late, without ending a newer request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_answer_is_marked_late() {
    let faults = Faults {
        latency: Duration::from_millis(500),
        ..Faults::default()
    };
    let Rig {
        mut engine,
        broker: _broker,
        config: _config,
        devices: _devices,
        records: _records,
    } = Rig::start(1, faults, |config| {
        config.relays[0].timeout_ms = Some(150);
    })
    .await;
    let entry = engine.request(0, Action::On).await;
    assert_eq!(entry.outcome, Outcome::NoResponse);
    loop {
        match engine.next(Duration::from_secs(3)).await {
            Event::Relay { status, .. } => {
                let ack = status.last_acknowledged.clone().expect("late ack");
                assert!(ack.late);
                assert_eq!(ack.state, RelayState::On);
                // The request ended unanswered; its own late answer
                // replaces the failure text, nothing else.
                assert!(
                    matches!(status.phase, Phase::Late { .. }),
                    "the late answer replaces its request's failure: {status:?}"
                );
                break;
            }
            Event::Finished { .. } => panic!("a late answer must not finish another request"),
            _ => {}
        }
    }
}

/// States are persisted: a new engine on the same store shows the last
/// acknowledged state, marked restored; the audit log has the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_acknowledged_state_survives_restart() {
    let broker = Mosquitto::start();
    let config = config(&broker.url(), 2);
    let data = tempfile::tempdir().unwrap();
    let (_devices, _) = devices(&config, Faults::default()).await;
    let options = || {
        let mut o = EngineOptions::new(config.clone());
        o.data_dir = Some(data.path().to_owned());
        o
    };
    let mut first = TestEngine::start_with(options());
    first.connected().await;
    assert_eq!(
        first.request(1, Action::On).await.outcome,
        Outcome::Confirmed
    );
    first.stop().await;

    let mut second = TestEngine::start_with(options());
    let mut restored = None;
    let mut history = None;
    while restored.is_none() || history.is_none() {
        match second.next(Duration::from_secs(5)).await {
            Event::Relay { relay: 1, status } => restored = Some(status),
            Event::History(entries) => history = Some(entries),
            _ => {}
        }
    }
    let ack = restored
        .unwrap()
        .last_acknowledged
        .clone()
        .expect("restored state");
    assert_eq!(ack.state, RelayState::On);
    assert!(ack.restored);
    let history = history.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].relay_id, "r1");
}

/// A corrupted store is set aside with a warning; the engine still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_store_is_set_aside() {
    let broker = Mosquitto::start();
    let config = config(&broker.url(), 1);
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join(relay_panel::store::STORE_FILE),
        b"this is not sqlite at all, really",
    )
    .unwrap();
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut options = EngineOptions::new(config.clone());
    options.data_dir = Some(data.path().to_owned());
    let mut engine = TestEngine::start_with(options);
    let (mut warned, mut connected) = (false, false);
    while !(warned && connected) {
        match engine.next(Duration::from_secs(5)).await {
            Event::Warning(text) => {
                assert!(text.contains("corrupt"), "{text}");
                warned = true;
            }
            Event::Connection(ConnectionState::Connected) => connected = true,
            _ => {}
        }
    }
    assert_eq!(
        engine.request(0, Action::On).await.outcome,
        Outcome::Confirmed
    );
    let names: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.contains(".corrupt-")), "{names:?}");
}

/// Two panels configured with the same client id. Mosquitto 2.0 closes the
/// older connection without a reason code, which a broker restart also
/// does, so the panel names the suspected take-over and the client id, keeps
/// retrying (never "failed"), and backs off: the pauses between its
/// attempts grow, so the two panels do not fight at full speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspected_takeover_is_named_and_retried_with_backoff() {
    let broker = Mosquitto::start();
    let mut config = config(&broker.url(), 1);
    config.broker.client_id = Some("shared-panel".into());
    let mut first = TestEngine::start(&config);
    first.connected().await;
    let mut second = TestEngine::start(&config);
    second.connected().await;
    let state = first
        .wait_connection(Duration::from_secs(5), |s| {
            matches!(s, ConnectionState::Reconnecting { .. })
        })
        .await;
    let ConnectionState::Reconnecting { reason, .. } = state else {
        unreachable!()
    };
    assert!(
        reason.contains("another client") && reason.contains("\"shared-panel\""),
        "{reason}"
    );
    let events = first.drain(Duration::from_secs(3)).await;
    let pauses: Vec<Duration> = events
        .iter()
        .filter_map(|e| match e {
            Event::Connection(ConnectionState::Reconnecting { retry_in, .. }) => Some(*retry_in),
            Event::Connection(ConnectionState::Failed { reason }) => {
                panic!("a suspected take-over is retried, not failed: {reason}")
            }
            _ => None,
        })
        .collect();
    assert!(
        pauses.windows(2).all(|w| w[1] >= w[0]),
        "the backoff grows: {pauses:?}"
    );
    assert!(
        pauses.len() < 6,
        "at most a few rounds in 3 s, not a fight: {pauses:?}"
    );
}

/// A broker that does not speak MQTT 5 (rumqttd with only a v4 listener
/// closes the connection without a CONNACK): said clearly within seconds,
/// and retried with backoff, since a restarting or full broker closes
/// connections the same way.
#[cfg(feature = "demo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_without_mqtt5_is_named_and_retried() {
    use relay_panel::demo::{Protocol, free_port, start_broker};
    let port = free_port().unwrap();
    start_broker(port, Protocol::V4).unwrap();
    let config = config(&format!("mqtt://127.0.0.1:{port}"), 1);
    let mut engine = TestEngine::start(&config);
    let state = engine
        .wait_connection(Duration::from_secs(5), |s| match s {
            ConnectionState::Reconnecting { reason, .. } => {
                reason.contains("does not accept MQTT 5")
            }
            ConnectionState::Failed { reason } => panic!("retried, not failed: {reason}"),
            _ => false,
        })
        .await;
    let ConnectionState::Reconnecting { reason, .. } = state else {
        unreachable!()
    };
    assert!(reason.contains("in a row"), "{reason}");
}

/// The embedded demo broker forwards request/response properties: the
/// demo works end to end.
#[cfg(feature = "demo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_broker_and_devices_confirm() {
    let demo = relay_panel::demo::start().unwrap();
    tokio::time::timeout(Duration::from_secs(10), demo.ready())
        .await
        .unwrap();
    let mut engine = TestEngine::start(&demo.config);
    engine.connected().await;
    let entry = engine.request(0, Action::On).await;
    assert_eq!(entry.outcome, Outcome::Confirmed);
    let beacon = demo
        .config
        .relays
        .iter()
        .position(|r| r.id == "beacon")
        .unwrap();
    assert_eq!(
        engine.request(beacon, Action::On).await.outcome,
        Outcome::DeviceError
    );
}

/// The wake-up callback runs after events, so a sleeping UI repaints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_callback_runs_on_events() {
    let broker = Mosquitto::start();
    let config = config(&broker.url(), 1);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = woken.clone();
    let mut options = EngineOptions::new(config.clone());
    options.wake = Arc::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let mut engine = TestEngine::start_with(options);
    engine.connected().await;
    let before = woken.load(std::sync::atomic::Ordering::SeqCst);
    engine.request(0, Action::On).await;
    assert!(woken.load(std::sync::atomic::Ordering::SeqCst) >= before + 2);
}

/// A hostile "device" (a raw MQTT 5 client on the request topic) answers
/// with no correlation data, wrong-length correlation data, a flood of
/// unknown correlations, a non-UTF-8 payload and an oversized payload:
/// no state changes, the engine stays connected, and a proper answer still
/// confirms afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_responses_change_nothing() {
    use bytes::Bytes;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::{AsyncClient, Event as MqttEvent, MqttOptions};

    let broker = Mosquitto::start();
    let mut config = config(&broker.url(), 1);
    config.relays[0].timeout_ms = Some(1500);
    let mut engine = TestEngine::start(&config);
    engine.connected().await;

    // Behaviour per request number: what the hostile device sends back.
    let topic = config.relays[0].request_topic.clone();
    let mut options = MqttOptions::new("hostile-device", "127.0.0.1", broker.port);
    options.set_max_packet_size(Some(4 * 1024 * 1024));
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    client
        .subscribe(topic.clone(), QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut request = 0;
        loop {
            let Ok(event) = eventloop.poll().await else {
                return;
            };
            let MqttEvent::Incoming(Packet::Publish(publish)) = event else {
                continue;
            };
            let properties = publish.properties.unwrap_or_default();
            let response_topic = properties.response_topic.unwrap();
            let correlation = properties.correlation_data.unwrap();
            let reply = |payload: Bytes, correlation: Option<Bytes>| {
                let props = PublishProperties {
                    correlation_data: correlation,
                    ..Default::default()
                };
                client
                    .try_publish_with_properties(
                        response_topic.clone(),
                        QoS::AtLeastOnce,
                        false,
                        payload,
                        props,
                    )
                    .unwrap();
            };
            match request {
                0 => {
                    reply(Bytes::from_static(b"1"), None);
                    reply(Bytes::from_static(b"1"), Some(correlation.slice(..3)));
                    let mut long = correlation.to_vec();
                    long.extend_from_slice(&correlation);
                    reply(Bytes::from_static(b"1"), Some(Bytes::from(long)));
                    for n in 0..1000u32 {
                        let mut forged = [0u8; 16];
                        forged[..4].copy_from_slice(&n.to_le_bytes());
                        reply(
                            Bytes::from_static(b"1"),
                            Some(Bytes::copy_from_slice(&forged)),
                        );
                    }
                }
                1 => reply(Bytes::from(vec![b'1'; 1024 * 1024]), Some(correlation)),
                2 => reply(Bytes::from_static(b"\xff\xfe\x00boom"), Some(correlation)),
                _ => reply(Bytes::from_static(b"1"), Some(correlation)),
            }
            request += 1;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let first = engine.request(0, Action::On).await;
    assert_eq!(
        first.outcome,
        Outcome::NoResponse,
        "nothing matched: {first:?}"
    );
    let oversized = engine.request(0, Action::On).await;
    assert_eq!(
        oversized.outcome,
        Outcome::NoResponse,
        "the broker drops what exceeds our maximum packet size"
    );
    let garbage = engine.request(0, Action::On).await;
    assert_eq!(garbage.outcome, Outcome::DeviceError);
    let text = garbage.detail.unwrap();
    assert!(text.contains("boom") && !text.contains('\0'), "{text:?}");
    let proper = engine.request(0, Action::On).await;
    assert_eq!(
        (proper.outcome.code(), proper.state),
        ("confirmed", Some(RelayState::On))
    );
    assert!(
        !engine
            .connections
            .iter()
            .any(|s| matches!(s, ConnectionState::Reconnecting { .. })),
        "the connection never dropped: {:?}",
        engine.connections
    );
}

/// A retained message left on the response topic (a device that wrongly
/// retains its answers) is stale when delivered on subscribe: ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_response_is_ignored() {
    use bytes::Bytes;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::{AsyncClient, MqttOptions};

    let broker = Mosquitto::start();
    let mut config = config(&broker.url(), 1);
    config.broker.client_id = Some("fixed-panel".into());
    let topic = relay_panel::protocol::response_topic("fixed-panel");
    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new("retainer", "127.0.0.1", broker.port), 16);
    let properties = PublishProperties {
        correlation_data: Some(Bytes::from_static(&[7; 16])),
        ..Default::default()
    };
    client
        .publish_with_properties(
            topic,
            QoS::AtLeastOnce,
            true,
            Bytes::from_static(b"1"),
            properties,
        )
        .await
        .unwrap();
    client.disconnect().await.unwrap();
    while eventloop.poll().await.is_ok() {}

    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let events = engine.drain(SHORT).await;
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::Relay { .. } | Event::Finished { .. } | Event::Late { .. }
        )),
        "{events:?}"
    );
}

/// Every event up to and including the first one `last` matches, failing
/// the test when it does not come within a few seconds.
async fn events_until(engine: &mut TestEngine, last: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let event = engine.next(left).await;
        let done = last(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

/// The events a reconfiguration to `config` must produce, from
/// `Reconfigured` on: it, then one status per relay of the new
/// configuration, in order. Returns those statuses; events before it are
/// returned too, in `before`.
async fn reconfigured(
    engine: &mut TestEngine,
    config: &Config,
    before: &mut Vec<Event>,
) -> Vec<relay_panel::relay::RelayStatus> {
    let mut seen = events_until(engine, |e| matches!(e, Event::Reconfigured(_))).await;
    match seen.pop() {
        Some(Event::Reconfigured(applied)) => assert_eq!(*applied, *config),
        other => unreachable!("{other:?}"),
    }
    before.extend(seen);
    let mut statuses = Vec::new();
    for index in 0..config.relays.len() {
        match engine.next(Duration::from_secs(5)).await {
            Event::Relay { relay, status } if relay == index => statuses.push(status),
            other => panic!("status of relay #{index} expected, got {other:?}"),
        }
    }
    statuses
}

fn no_reconnect_or_history(events: &[Event]) {
    for event in events {
        assert!(
            !matches!(event, Event::Connection(_) | Event::History(_)),
            "{event:?} in {events:?}"
        );
    }
}

/// A reconfiguration that adds a relay before a confirmed one, renames one
/// (same id) and changes another's id keeps the connection (no connection
/// event, the same response topic), sends no history, and moves statuses
/// by id: the confirmed relay's status arrives at its new index, confirmed
/// in this session (not "restored"); a new id starts unknown. Requests to
/// the moved relay and to the added one are confirmed afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_keeps_the_connection_and_moves_statuses_by_id() {
    let Rig {
        mut engine,
        broker,
        config,
        devices,
        records: _records,
    } = Rig::start(3, Faults::default(), |_| {}).await;
    for relay in [1, 2] {
        let entry = engine.request(relay, Action::On).await;
        assert_eq!(entry.outcome, Outcome::Confirmed, "{entry:?}");
    }
    let connections = engine.connections.clone();
    let (client_id, response_topic) = (
        engine.handle.client_id.clone(),
        engine.handle.response_topic.clone(),
    );
    // [added, r0 renamed, r1, r2 under a new id].
    let added_topic = format!("{}/added", config.relays[0].request_topic);
    let mut scripted = ScriptedDevice::start(&broker.url(), &added_topic).await;
    let mut new = config.clone();
    new.relays
        .insert(0, RelayConfig::new("added", &added_topic));
    new.relays[1].name = "Renamed relay".into();
    new.relays[3].id = "r2-new".into();
    engine.handle.reconfigure(Arc::new(new.clone())).unwrap();

    let mut before = Vec::new();
    let statuses = reconfigured(&mut engine, &new, &mut before).await;
    no_reconnect_or_history(&before);
    assert_eq!(statuses[0], Default::default(), "the added relay");
    assert_eq!(statuses[1], Default::default(), "r0 was never asked");
    let moved = &statuses[2];
    let ack = moved
        .last_acknowledged
        .clone()
        .expect("r1's confirmed state");
    assert_eq!(ack.state, RelayState::On);
    assert!(!ack.restored, "confirmed in this session, not restored");
    assert!(
        matches!(
            moved.phase,
            Phase::Confirmed {
                state: RelayState::On,
                ..
            }
        ),
        "{moved:?}"
    );
    assert_eq!(statuses[3], Default::default(), "a new id is a new relay");

    // The moved relay answers at its new index.
    engine.handle.request(2, Action::Off);
    let mut after = events_until(&mut engine, |e| matches!(e, Event::Finished { .. })).await;
    match after.last() {
        Some(Event::Finished { relay: 2, entry }) => {
            assert_eq!(
                (entry.outcome, entry.state, entry.relay_id.as_str()),
                (Outcome::Confirmed, Some(RelayState::Off), "r1")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(devices.state("r1"), Some(RelayState::Off));
    // The added relay is asked with the same response topic, and its
    // answer arrives on the subscription made at the start.
    engine.handle.request(0, Action::On);
    let received = scripted.request(Duration::from_secs(5)).await;
    assert_eq!(received.response_topic.as_deref(), Some(&*response_topic));
    scripted.answer(&received, "1").await;
    after.extend(events_until(&mut engine, |e| matches!(e, Event::Finished { .. })).await);
    match after.last() {
        Some(Event::Finished { relay: 0, entry }) => {
            assert_eq!(
                (entry.outcome, entry.state),
                (Outcome::Confirmed, Some(RelayState::On))
            );
        }
        other => panic!("{other:?}"),
    }
    after.extend(engine.drain(SHORT).await);
    no_reconnect_or_history(&after);
    assert_eq!(
        engine.connections, connections,
        "still connected, never left"
    );
    assert_eq!(engine.handle.client_id, client_id);
    assert_eq!(engine.handle.response_topic, response_topic);
}

/// A request in flight (the device is slow) keeps going across a
/// reconfiguration that moves its relay to another index: the relay is
/// still pending at the new index, and the answer lands there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_in_flight_follows_its_relay_across_a_reconfigure() {
    let faults = Faults {
        latency: Duration::from_millis(600),
        ..Faults::default()
    };
    let Rig {
        mut engine,
        config,
        mut records,
        broker: _broker,
        devices: _devices,
    } = Rig::start(2, faults, |_| {}).await;
    engine.handle.request(0, Action::On);
    records.recv().await.expect("the device has the request");
    let mut new = config.clone();
    new.relays.reverse();
    new.relays
        .insert(0, RelayConfig::new("added", "test/reconfigure/added"));
    // r0, asked, is now at 2.
    engine.handle.reconfigure(Arc::new(new.clone())).unwrap();
    let mut before = Vec::new();
    let statuses = reconfigured(&mut engine, &new, &mut before).await;
    assert!(
        !before.iter().any(|e| matches!(e, Event::Finished { .. })),
        "{before:?}"
    );
    assert!(
        matches!(
            statuses[2].phase,
            Phase::Pending {
                requested: Action::On,
                ..
            }
        ),
        "{statuses:?}"
    );
    let answer = events_until(&mut engine, |e| matches!(e, Event::Finished { .. })).await;
    let Some(Event::Finished { relay, entry }) = answer.last() else {
        unreachable!()
    };
    assert_eq!(*relay, 2, "the new index");
    assert_eq!(
        (entry.outcome, entry.state, entry.relay_id.as_str()),
        (Outcome::Confirmed, Some(RelayState::On), "r0")
    );
    assert!(
        entry.rtt.unwrap() >= Duration::from_millis(600),
        "timed from the send"
    );
    let shown = answer.iter().rev().find_map(|e| match e {
        Event::Relay { relay, status } => Some((*relay, status.clone())),
        _ => None,
    });
    let (index, status) = shown.expect("a status event for the answer");
    assert_eq!(index, 2);
    assert_eq!(
        status.last_acknowledged.as_ref().map(|a| a.state),
        Some(RelayState::On)
    );
}

/// A configuration with another broker URL, another operator, or a broken
/// rule is refused without being sent: no event, the engine keeps its
/// configuration and relays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_refuses_what_needs_a_restart() {
    let Rig {
        mut engine,
        config,
        broker: _broker,
        devices: _devices,
        records: _records,
    } = Rig::start(1, Faults::default(), |_| {}).await;
    let mut moved = config.clone();
    moved.broker.url = "mqtt://127.0.0.1:1".into();
    moved
        .relays
        .insert(0, RelayConfig::new("added", "test/reconfigure/x"));
    let refused = engine.handle.reconfigure(Arc::new(moved)).unwrap_err();
    assert_eq!(
        refused,
        ReconfigureError::NeedsRestart { section: "broker" }
    );
    assert!(refused.to_string().contains("must reconnect"), "{refused}");

    let mut operator = config.clone();
    operator.panel.operator = Some("someone else".into());
    assert_eq!(
        engine.handle.reconfigure(Arc::new(operator)).unwrap_err(),
        ReconfigureError::NeedsRestart { section: "panel" }
    );
    let mut broken = config.clone();
    broken.relays.push(broken.relays[0].clone());
    assert!(matches!(
        engine.handle.reconfigure(Arc::new(broken)).unwrap_err(),
        ReconfigureError::Invalid(text) if text.contains("duplicate id")
    ));

    let events = engine.drain(SHORT).await;
    assert!(events.is_empty(), "nothing was applied: {events:?}");
    let entry = engine.request(0, Action::On).await;
    assert_eq!(
        (entry.outcome, entry.relay_id.as_str()),
        (Outcome::Confirmed, "r0")
    );
}

/// A relay removed while its request is in flight: the request ends at
/// once, before `Reconfigured` and under the old index, as "no response"
/// saying why (it was sent: the device may still switch); the device's
/// answer that follows is ignored as unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_relay_ends_its_request_in_flight() {
    let faults = Faults {
        latency: Duration::from_millis(500),
        ..Faults::default()
    };
    let Rig {
        mut engine,
        config,
        mut records,
        broker: _broker,
        devices: _devices,
    } = Rig::start(2, faults, |_| {}).await;
    engine.handle.request(0, Action::On);
    records.recv().await.expect("the device has the request");
    let mut new = config.clone();
    new.relays.remove(0);
    engine.handle.reconfigure(Arc::new(new.clone())).unwrap();
    let mut before = Vec::new();
    let statuses = reconfigured(&mut engine, &new, &mut before).await;
    let ended: Vec<_> = before
        .iter()
        .filter_map(|e| match e {
            Event::Finished { relay, entry } => Some((*relay, entry)),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 1, "{before:?}");
    let (relay, entry) = ended[0];
    assert_eq!((relay, entry.relay_id.as_str()), (0, "r0"), "the old index");
    assert_eq!(entry.outcome, Outcome::NoResponse);
    assert!(
        entry
            .detail
            .as_deref()
            .unwrap()
            .contains("removed from the configuration before the device answered"),
        "{entry:?}"
    );
    assert!(entry.correlation.is_some());
    assert_eq!(statuses, [Default::default()], "r1, never asked");

    let later = engine.drain(Duration::from_millis(1500)).await;
    assert!(
        later
            .iter()
            .any(|e| matches!(e, Event::Ignored { reason, .. } if reason.contains("unknown"))),
        "the answer is ignored: {later:?}"
    );
    assert!(
        !later.iter().any(|e| matches!(
            e,
            Event::Relay { .. } | Event::Finished { .. } | Event::Late { .. }
        )),
        "{later:?}"
    );
}

/// An engine that lost its broker applies a reconfiguration the same way,
/// without a connection event of its own; once the broker is back, the
/// moved relay answers at its new index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_while_reconnecting() {
    let Rig {
        mut engine,
        mut broker,
        config,
        mut devices,
        records: _records,
    } = Rig::start(1, Faults::default(), |_| {}).await;
    assert_eq!(
        engine.request(0, Action::On).await.outcome,
        Outcome::Confirmed
    );
    broker.stop();
    engine
        .wait_connection(Duration::from_secs(5), |s| {
            matches!(s, ConnectionState::Reconnecting { .. })
        })
        .await;
    let mut new = config.clone();
    new.relays
        .insert(0, RelayConfig::new("added", "test/reconfigure/added"));
    engine.handle.reconfigure(Arc::new(new.clone())).unwrap();
    let mut before = Vec::new();
    let statuses = reconfigured(&mut engine, &new, &mut before).await;
    assert!(
        !before.iter().any(|e| matches!(
            e,
            Event::Connection(ConnectionState::Connected | ConnectionState::Connecting)
                | Event::History(_)
        )),
        "{before:?}"
    );
    assert_eq!(
        statuses[1]
            .last_acknowledged
            .as_ref()
            .map(|a| (a.state, a.restored)),
        Some((RelayState::On, false))
    );

    broker.resume();
    engine.connected().await;
    tokio::time::timeout(Duration::from_secs(5), devices.ready())
        .await
        .unwrap();
    let entry = engine.request(1, Action::Off).await;
    assert_eq!(
        (entry.outcome, entry.state, entry.relay_id.as_str()),
        (Outcome::Confirmed, Some(RelayState::Off), "r0")
    );
}
