//! The engine against ejabberd's MQTT broker (`mod_mqtt`, Debian's 23.01):
//! a single node, and a two-node cluster with the panel on one node and
//! the devices on the other — what a site that outgrew one Mosquitto runs.
//!
//! Nodes are child processes (`relay_testkit::LocalEjabberd`). To keep
//! the file fast, the tests that leave the broker as they found it share
//! one single node and one cluster (started by the first test that needs
//! them, stopped when the test process exits), each test on topics of its
//! own; the tests that restart a node start their own. Every client sends
//! a user name and a non-empty password: ejabberd refuses a CONNECT
//! without them (CONNACK 135) even with anonymous logins.
//!
//! Needs the `ejabberd` package: without it every test fails saying what
//! to install (`bash .ci/run` installs it).

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{ScriptedDevice, TestEngine, devices};
use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::{ConnectionState, Event};
use relay_panel::outcome::{Evidence, Outcome};
use relay_panel::protocol::{Action, RelayState};
use relay_panel::relay::Availability;
use relay_panel::sim::Faults;
use relay_testkit::LocalEjabberd;

/// Starts ejabberd, or fails the test saying what to install.
fn start(nodes: usize) -> LocalEjabberd {
    LocalEjabberd::start_cluster(nodes).unwrap_or_else(|e| panic!("{e}"))
}

/// The single node the tests that do not restart it share.
fn single() -> &'static LocalEjabberd {
    static SINGLE: OnceLock<&'static LocalEjabberd> = OnceLock::new();
    SINGLE.get_or_init(|| start(1).shared())
}

/// The two-node cluster the tests that do not restart a node share.
fn cluster() -> &'static LocalEjabberd {
    static CLUSTER: OnceLock<&'static LocalEjabberd> = OnceLock::new();
    CLUSTER.get_or_init(|| start(2).shared())
}

/// `relays` relays on unique topics (a query payload each), connecting to
/// `node` of `broker` with the credentials ejabberd needs.
fn config_on(broker: &LocalEjabberd, node: usize, relays: usize) -> Config {
    let mut config = common::config(&broker.url(node), relays);
    config.broker = broker.broker_config(node);
    config
}

/// The same relays, connecting to `node` instead (the devices' side of a
/// cluster).
fn moved_to(config: &Config, broker: &LocalEjabberd, node: usize) -> Config {
    let mut moved = config.clone();
    moved.broker = broker.broker_config(node);
    moved
}

/// Runs blocking node control (stop, start) without stalling the runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Asserts `entry` is a confirmation of `state`.
fn assert_confirmed(entry: &relay_panel::store::AuditEntry, state: RelayState) {
    assert_eq!(
        (entry.outcome, entry.state, entry.evidence),
        (Outcome::Confirmed, Some(state), Some(Evidence::Correlated)),
        "{entry:?}"
    );
}

/// Asks relay 0 `action`, has the scripted `device` answer `payload` to
/// it, and asserts the confirmation of `state`.
async fn confirmed_through(
    engine: &mut TestEngine,
    device: &mut ScriptedDevice,
    action: Action,
    payload: &str,
    state: RelayState,
) {
    engine.handle.request(0, action);
    let request = device.request(Duration::from_secs(5)).await;
    device.answer(&request, payload).await;
    assert_confirmed(&engine.finished(0, Duration::from_secs(5)).await, state);
}

/// On a single node, simulated devices confirm on, off and a query, each
/// answer tied to its request by its Correlation Data: ejabberd forwards
/// Response Topic and Correlation Data (and the panel's credentials get
/// it past anonymous authentication).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_on_a_single_node() {
    let broker = blocking(single);
    let config = config_on(broker, 0, 2);
    let (devices, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;

    assert_confirmed(&engine.request(0, Action::On).await, RelayState::On);
    assert_confirmed(&engine.request(1, Action::Off).await, RelayState::Off);
    assert_confirmed(&engine.request(0, Action::Query).await, RelayState::On);
    assert_confirmed(&engine.request(0, Action::Off).await, RelayState::Off);
    assert_eq!(devices.state("r0"), Some(RelayState::Off));
}

/// A device that receives the request (with the panel's Response Topic
/// and Correlation Data, forwarded by ejabberd) and never answers: the
/// request ends as "no response" after the relay's timeout, the relay
/// keeps no acknowledged state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_ends_as_no_response() {
    let broker = blocking(single);
    let mut config = config_on(broker, 0, 1);
    config.relays[0].timeout_ms = Some(800);
    let mut device =
        ScriptedDevice::start_on(&config.broker, &config.relays[0].request_topic).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;

    engine.handle.request(0, Action::On);
    let request = device.request(Duration::from_secs(5)).await;
    assert_eq!(request.payload, "1");
    assert!(request.response_topic.is_some(), "{request:?}");
    assert_eq!(request.correlation.as_ref().map(|c| c.len()), Some(16));
    let entry = engine.finished(0, Duration::from_secs(5)).await;
    assert_eq!(entry.outcome, Outcome::NoResponse, "{entry:?}");
    assert!(engine.statuses[&0].last_acknowledged.is_none());
}

/// A device answering with someone else's Correlation Data (and with
/// none) changes nothing: the request ends as "no response"; the same
/// device answering properly afterwards confirms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_other_correlation_data_changes_nothing() {
    let broker = blocking(single);
    let mut config = config_on(broker, 0, 1);
    config.relays[0].timeout_ms = Some(1000);
    let mut device =
        ScriptedDevice::start_on(&config.broker, &config.relays[0].request_topic).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;

    engine.handle.request(0, Action::On);
    let request = device.request(Duration::from_secs(5)).await;
    let mut other = request
        .correlation
        .clone()
        .expect("correlation data")
        .to_vec();
    other.iter_mut().for_each(|b| *b ^= 0xff);
    device
        .answer_with(&request, "1", Some(bytes::Bytes::from(other)))
        .await;
    device.answer_with(&request, "1", None).await;
    let entry = engine.finished(0, Duration::from_secs(5)).await;
    assert_eq!(entry.outcome, Outcome::NoResponse, "{entry:?}");
    assert!(engine.statuses[&0].last_acknowledged.is_none());

    confirmed_through(&mut engine, &mut device, Action::On, "1", RelayState::On).await;
}

/// A 1 MiB answer: ejabberd ignores the Maximum Packet Size the panel
/// sends in CONNECT (64 KiB) and delivers it; rumqttc refuses the packet
/// and closes the connection. The request ends at once as "connection
/// lost", its detail saying a message of that size arrived over the
/// limit; the connection state says the same; the panel reconnects and a
/// proper answer confirms again. Nothing hangs, nothing crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_ends_the_request_and_says_why() {
    let broker = blocking(single);
    let config = config_on(broker, 0, 1);
    let mut device =
        ScriptedDevice::start_on(&config.broker, &config.relays[0].request_topic).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;

    engine.handle.request(0, Action::On);
    let request = device.request(Duration::from_secs(5)).await;
    let huge = "1".repeat(1024 * 1024);
    device.answer(&request, &huge).await;
    let entry = engine.finished(0, Duration::from_secs(10)).await;
    assert_eq!(entry.outcome, Outcome::ConnectionLost, "{entry:?}");
    let detail = entry.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("delivered a message of 10486") && detail.contains("over the 65536 bytes"),
        "{detail}"
    );
    assert!(engine.statuses[&0].last_acknowledged.is_none());
    let reason = match engine
        .wait_connection(Duration::from_secs(5), |s| {
            matches!(s, ConnectionState::Reconnecting { .. })
        })
        .await
    {
        ConnectionState::Reconnecting { reason, .. } => reason,
        other => unreachable!("{other:?}"),
    };
    assert_eq!(reason, detail);

    engine.connected().await;
    confirmed_through(&mut engine, &mut device, Action::Off, "0", RelayState::Off).await;
}

/// ejabberd refuses subscriptions to topics deeper than 8 levels (SUBACK
/// 0x8F, `max_topic_depth`): a relay whose last-will topic is that deep
/// gets a warning naming the topic, the relay, what it loses and the
/// limit; the relay still switches (its request and response topics are
/// shallow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deeper_than_8_levels_is_refused_and_said() {
    let broker = blocking(single);
    let mut config = config_on(broker, 0, 1);
    let deep = format!("site/{:08x}/hall/b/c/d/e/f/online", rand::random::<u32>());
    config.relays[0].availability_topic = deep.clone();
    let mut plain = config.clone();
    plain.relays[0].availability_topic.clear();
    let (_devices, _) = devices(&plain, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    let warning = engine
        .wait_for(Duration::from_secs(10), |event| match event {
            Event::Warning(text) => Some(text.clone()),
            _ => None,
        })
        .await;
    assert!(
        warning.contains(&deep)
            && warning.contains("relay(s) r0 cannot tell whether their device is online")
            && warning.contains("more than 8 levels"),
        "{warning}"
    );
    engine.ensure_connected().await;
    assert_confirmed(&engine.request(0, Action::On).await, RelayState::On);
}

/// Panel on node 1, devices on node 2 of a cluster: every request crosses
/// the cluster and back, and is confirmed — 20 in a row, then 40 relays
/// switched at once (ejabberd hands a subscriber one QoS 1 message at a
/// time, so the devices get them one after another, well within the
/// timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_across_cluster_nodes() {
    let broker = blocking(cluster);
    let config = config_on(broker, 0, 40);
    let (devices, _) = devices(&moved_to(&config, broker, 1), Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;

    for i in 0..20 {
        let (action, state) = if i % 2 == 0 {
            (Action::On, RelayState::On)
        } else {
            (Action::Off, RelayState::Off)
        };
        assert_confirmed(&engine.request(0, action).await, state);
    }
    for relay in 0..40 {
        engine.handle.request(relay, Action::On);
    }
    let mut confirmed = 0;
    for _ in 0..40 {
        let entry = engine
            .wait_for(Duration::from_secs(10), |event| match event {
                Event::Finished { entry, .. } => Some(entry.clone()),
                _ => None,
            })
            .await;
        assert_eq!(entry.outcome, Outcome::Confirmed, "{entry:?}");
        confirmed += 1;
    }
    assert_eq!(confirmed, 40);
    assert_eq!(devices.state("r39"), Some(RelayState::On));
}

/// Availability across the cluster. Live messages cross nodes; retained
/// ones do not in 23.01: the device on node 2 publishes its online message
/// retained and has a retained last will there, so
/// - a panel on node 2 hears "online" (retained) on subscribing, a panel
///   on node 1 hears nothing: availability unknown;
/// - when the device drops, the broker publishes its will: both panels,
///   subscribed, hear "offline" live;
/// - a panel connecting to node 1 afterwards again hears nothing
///   (unknown), while one connecting to node 2 hears "offline" (retained).
///
/// So a panel sees a device's availability only if it is connected to the
/// node the device publishes through, or was subscribed when the device
/// last changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_across_cluster_nodes() {
    let broker = blocking(cluster);
    let device = format!("dev-{:08x}", rand::random::<u32>());
    let mut relay = RelayConfig::new("r0", &format!("{device}/relay/0"));
    relay.availability_topic = format!("{device}/online");
    let mut config = Config::new("mqtt://unused");
    config.broker = broker.broker_config(0);
    config.relays.push(relay);
    let on_node2 = moved_to(&config, broker, 1);
    let (devices, _) = devices(&on_node2, Faults::default()).await;

    let mut near = TestEngine::start(&on_node2);
    assert!(
        matches!(
            near.availability(0).await,
            Availability::Online { retained: true, .. }
        ),
        "a panel on the device's node hears the retained online message"
    );
    near.ensure_connected().await;
    let mut far = TestEngine::start(&config);
    far.connected().await;
    far.no_availability_within(
        Duration::from_millis(700),
        "the retained online message on node 2 reached node 1",
    )
    .await;

    assert!(devices.set_online("r0", false));
    for (panel, engine) in [("node 1", &mut far), ("node 2", &mut near)] {
        let availability = engine.availability(0).await;
        assert!(
            matches!(
                availability,
                Availability::Offline {
                    retained: false,
                    ..
                }
            ),
            "the panel on {panel}: {availability:?}"
        );
    }

    let mut later_far = TestEngine::start(&config);
    later_far.connected().await;
    later_far
        .no_availability_within(
            Duration::from_millis(700),
            "the retained will on node 2 reached node 1",
        )
        .await;
    let mut later_near = TestEngine::start(&on_node2);
    assert!(matches!(
        later_near.availability(0).await,
        Availability::Offline { retained: true, .. }
    ));
}

/// A single node restarted (stopped as a service stop does, started again
/// on the same port and spool): the panel says it is reconnecting, comes
/// back, resubscribes, and the devices (reconnected too) confirm again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_single_node_is_reconnected() {
    let broker = blocking(|| start(1));
    let config = config_on(&broker, 0, 1);
    let (mut devices, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    assert_confirmed(&engine.request(0, Action::On).await, RelayState::On);

    blocking(|| broker.stop_node(0));
    engine
        .wait_connection(Duration::from_secs(10), |s| {
            matches!(s, ConnectionState::Reconnecting { .. })
        })
        .await;
    blocking(|| broker.start_node(0)).unwrap_or_else(|e| panic!("{e}"));
    engine
        .wait_connection(Duration::from_secs(20), ConnectionState::is_ready)
        .await;
    tokio::time::timeout(Duration::from_secs(20), devices.ready())
        .await
        .expect("the devices reconnected");
    assert_confirmed(&engine.request(0, Action::Off).await, RelayState::Off);
}

/// Panel on node 1, devices on node 2, and each node restarted in turn.
/// Node 2 (the devices'): the panel's connection never drops; a request
/// while the devices are away ends as "no response"; once they are back it
/// confirms. Node 1 (the panel's): the panel reconnects, resubscribes and
/// confirms through the devices that stayed on node 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_either_cluster_node() {
    let broker = blocking(|| start(2));
    let mut config = config_on(&broker, 0, 1);
    config.relays[0].timeout_ms = Some(1000);
    let (mut devices, _) = devices(&moved_to(&config, &broker, 1), Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    assert_confirmed(&engine.request(0, Action::On).await, RelayState::On);

    // The node the panel is NOT on.
    blocking(|| broker.stop_node(1));
    let entry = engine.request(0, Action::Off).await;
    assert_eq!(entry.outcome, Outcome::NoResponse, "{entry:?}");
    blocking(|| broker.start_node(1)).unwrap_or_else(|e| panic!("{e}"));
    tokio::time::timeout(Duration::from_secs(20), devices.ready())
        .await
        .expect("the devices reconnected to node 2");
    assert_confirmed(&engine.request(0, Action::Off).await, RelayState::Off);
    assert!(
        engine
            .connections
            .iter()
            .all(|s| !matches!(s, ConnectionState::Reconnecting { .. })),
        "the panel's connection to node 1 dropped: {:?}",
        engine.connections
    );

    // The node the panel IS on.
    blocking(|| broker.stop_node(0));
    engine
        .wait_connection(Duration::from_secs(10), |s| {
            matches!(s, ConnectionState::Reconnecting { .. })
        })
        .await;
    blocking(|| broker.start_node(0)).unwrap_or_else(|e| panic!("{e}"));
    engine
        .wait_connection(Duration::from_secs(20), ConnectionState::is_ready)
        .await;
    assert_confirmed(&engine.request(0, Action::On).await, RelayState::On);
    assert_eq!(devices.state("r0"), Some(RelayState::On));
}
