//! MQTT benchmarks: each figure next to a baseline measured in the same run
//! against the same Mosquitto and the same simulated devices.
//!
//! `cargo bench --bench mqtt` (needs `mosquitto` and `mosquitto_rr`; the
//! ejabberd rows need `ejabberd`, and say so when it is missing). A word
//! after it runs the benchmarks whose name contains it:
//! `cargo bench --bench mqtt ejabberd`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Mosquitto, TestEngine, config, devices};
use relay_panel::config::Config;
use relay_panel::engine::Event;
use relay_panel::outcome::Outcome;
use relay_panel::protocol::{Action, CorrelationId};
use relay_panel::sim::Faults;
use relay_testkit::LocalEjabberd;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event as MqttEvent, EventLoop, MqttOptions};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Asks `relay` `action` and waits for its outcome: how it ended, and how
/// long that took from the request.
async fn timed_request(
    engine: &mut TestEngine,
    relay: usize,
    action: Action,
) -> (relay_panel::store::AuditEntry, Duration) {
    let started = Instant::now();
    engine.handle.request(relay, action);
    loop {
        if let Event::Finished { entry, .. } = engine.next(Duration::from_secs(5)).await {
            return (entry, started.elapsed());
        }
    }
}

/// A minimal raw rumqttc v5 requester: the baseline the engine is held to.
/// It sends the very request the panel sends (the wire contract's
/// Response Topic, Correlation Data, Message Expiry and `operator` /
/// `expires_at` User Properties, which the device reads), so a ratio is
/// the engine's own cost, not the contract's.
struct Raw {
    client: AsyncClient,
    eventloop: EventLoop,
    response_topic: String,
}

impl Raw {
    async fn connect(port: u16) -> Raw {
        let mut options =
            MqttOptions::new(format!("raw-{}", rand::random::<u32>()), "127.0.0.1", port);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        options.set_network_options(network);
        let (client, mut eventloop) = AsyncClient::new(options, 65_536);
        let response_topic = format!("raw/{}/response", rand::random::<u32>());
        client
            .subscribe(response_topic.clone(), QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            if let Ok(MqttEvent::Incoming(Packet::SubAck(_))) = eventloop.poll().await {
                break;
            }
        }
        Raw {
            client,
            eventloop,
            response_topic,
        }
    }

    fn send(&self, topic: &str, payload: &'static [u8], id: CorrelationId) {
        const TIMEOUT: Duration = Duration::from_secs(3);
        let expires_at = chrono::Utc::now() + TIMEOUT;
        let properties = PublishProperties {
            response_topic: Some(self.response_topic.clone()),
            correlation_data: Some(Bytes::copy_from_slice(&id.0)),
            message_expiry_interval: Some(3),
            user_properties: vec![
                ("operator".to_owned(), "bench".to_owned()),
                (
                    relay_panel::protocol::EXPIRES_AT.to_owned(),
                    expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ),
            ],
            ..Default::default()
        };
        self.client
            .try_publish_with_properties(
                topic.to_owned(),
                QoS::AtLeastOnce,
                false,
                Bytes::from_static(payload),
                properties,
            )
            .unwrap();
    }

    /// Next response's correlation id.
    async fn response(&mut self) -> CorrelationId {
        loop {
            if let Ok(MqttEvent::Incoming(Packet::Publish(p))) = self.eventloop.poll().await
                && let Some(id) = p
                    .properties
                    .and_then(|p| p.correlation_data)
                    .and_then(|c| CorrelationId::from_bytes(&c))
            {
                return id;
            }
        }
    }
}

async fn round_trip(broker: &Mosquitto) {
    const N: usize = 2000;
    let config = config(&broker.url(), 1);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let topic = config.relays[0].request_topic.clone();

    let mut raw = Raw::connect(broker.port).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let mut raw_times = Vec::with_capacity(N);
    let mut engine_times = Vec::with_capacity(N);
    // Interleave in blocks so both see the same machine conditions.
    for block in 0..20 {
        for i in 0..N / 20 {
            let payload: &'static [u8] = if i % 2 == 0 { b"1" } else { b"0" };
            let id = CorrelationId::random();
            let started = Instant::now();
            raw.send(&topic, payload, id);
            while raw.response().await != id {}
            raw_times.push(started.elapsed());
        }
        for i in 0..N / 20 {
            let action = if (i + block) % 2 == 0 {
                Action::On
            } else {
                Action::Off
            };
            engine_times.push(timed_request(&mut engine, 0, action).await.1);
        }
    }
    raw_times.sort();
    engine_times.sort();
    let (rp50, rp99) = (percentile(&raw_times, 0.5), percentile(&raw_times, 0.99));
    let (ep50, ep99) = (
        percentile(&engine_times, 0.5),
        percentile(&engine_times, 0.99),
    );
    println!(
        "| round trip, {N} sequential | engine p50 {} p99 {} | raw rumqttc p50 {} p99 {} | p50 ratio {:.2}x (target <= 1.10x) |",
        ms(ep50),
        ms(ep99),
        ms(rp50),
        ms(rp99),
        ep50.as_secs_f64() / rp50.as_secs_f64()
    );
}

/// How many times each side of a throughput comparison runs, taking
/// turns; the median of each is compared (one run of either is half a
/// second, and this machine's neighbours come and go).
const ROUNDS: usize = 3;

/// The median of `rates`.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

async fn throughput(broker: &Mosquitto) {
    const RELAYS: usize = 1000;
    const TOTAL: usize = 20_000;
    let config = config(&broker.url(), RELAYS);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let (mut raw_rates, mut engine_rates, mut confirmed) = (Vec::new(), Vec::new(), 0);
    for _ in 0..ROUNDS {
        // Raw: one in flight per relay, the next sent as each answer arrives.
        raw_rates.push(raw_pipelined(broker, &config, TOTAL).await);
        let started = Instant::now();
        let mut sent = 0;
        for relay in 0..RELAYS {
            engine.handle.request(relay, Action::On);
            sent += 1;
        }
        let mut done = 0;
        confirmed = 0;
        while done < TOTAL {
            if let Event::Finished { relay, entry } = engine.next(Duration::from_secs(10)).await {
                done += 1;
                confirmed += usize::from(entry.outcome == Outcome::Confirmed);
                if sent < TOTAL {
                    engine.handle.request(
                        relay,
                        if sent % 2 == 0 {
                            Action::On
                        } else {
                            Action::Off
                        },
                    );
                    sent += 1;
                }
            }
        }
        engine_rates.push(TOTAL as f64 / started.elapsed().as_secs_f64());
    }
    let (raw_rate, engine_rate) = (median(raw_rates), median(engine_rates));
    println!(
        "| throughput, {TOTAL} over {RELAYS} relays, median of {ROUNDS} taking turns | engine {engine_rate:.0} confirmed/s ({confirmed} confirmed) | raw pipelined rumqttc {raw_rate:.0}/s | ratio {:.2}x (target >= 0.8x) |",
        engine_rate / raw_rate
    );
}

/// Sequential round trips of three relays of different kinds, served by
/// the same simulator through the same broker and engine: Shelly's JSON-RPC
/// and a command/state device against this project's own `mqtt5`
/// contract, interleaved in blocks so all three see the same machine.
async fn kinds_round_trip(broker: &Mosquitto) {
    const N: usize = 2000;
    let run: u32 = rand::random();
    let mut config = relay_panel::config::Config::new(&broker.url());
    config.relays = vec![
        relay_panel::config::RelayConfig::new("own", &format!("bench/{run:08x}/own")),
        relay_panel::config::RelayConfig::shelly("porch", &format!("shelly-{run:08x}"), 0),
        relay_panel::config::RelayConfig::state(
            "bench",
            &format!("bench/{run:08x}/set"),
            &format!("bench/{run:08x}/state"),
        ),
    ];
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let mut times = [
        Vec::with_capacity(N),
        Vec::with_capacity(N),
        Vec::with_capacity(N),
    ];
    for block in 0..20 {
        for (relay, times) in times.iter_mut().enumerate() {
            for i in 0..N / 20 {
                let action = if (i + block) % 2 == 0 {
                    Action::On
                } else {
                    Action::Off
                };
                let (entry, took) = timed_request(&mut engine, relay, action).await;
                assert!(entry.outcome.has_state(), "{entry:?}");
                times.push(took);
            }
        }
    }
    for times in &mut times {
        times.sort();
    }
    let p50 = |t: &Vec<Duration>| percentile(t, 0.5);
    for (name, relay) in [("shelly", 1), ("state", 2)] {
        println!(
            "| round trip by kind, {N} sequential | {name} p50 {} p99 {} | mqtt5 p50 {} p99 {} (same broker, simulator, engine) | p50 ratio {:.2}x (target <= 1.10x) |",
            ms(p50(&times[relay])),
            ms(percentile(&times[relay], 0.99)),
            ms(p50(&times[0])),
            ms(percentile(&times[0], 0.99)),
            p50(&times[relay]).as_secs_f64() / p50(&times[0]).as_secs_f64()
        );
    }
}

/// `relayctl watch --json` driven like a script that keeps every relay
/// busy: 20,000 `set` lines over 1,000 relays on its stdin, the next line
/// for a relay written when its outcome is printed (one in flight each, as
/// the engine allows), against the raw pipelined rumqttc requester doing
/// the same in the same run.
async fn watch_throughput(broker: &Mosquitto) {
    const RELAYS: usize = 1000;
    const TOTAL: usize = 20_000;
    let config = config(&broker.url(), RELAYS);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.toml");
    config.save(&path).unwrap();
    let (mut raw_rates, mut watch_rates, mut confirmed) = (Vec::new(), Vec::new(), 0);
    for _ in 0..ROUNDS {
        raw_rates.push(raw_pipelined(broker, &config, TOTAL).await);
        let (rate, ok) = watch_once(&config, &path, &dir.path().join("data"), TOTAL).await;
        watch_rates.push(rate);
        confirmed = ok;
    }
    let (raw_rate, watch_rate) = (median(raw_rates), median(watch_rates));
    println!(
        "| relayctl watch, {TOTAL} set lines over {RELAYS} relays on stdin, median of {ROUNDS} taking turns | {watch_rate:.0} answered/s ({confirmed} confirmed) | raw pipelined rumqttc {raw_rate:.0}/s | ratio {:.2}x (target >= 0.8x) |",
        watch_rate / raw_rate
    );
}

/// One `relayctl --json watch` answering `total` set lines; answers per
/// second (from its connection to the last outcome) and how many were
/// confirmed.
async fn watch_once(
    config: &relay_panel::config::Config,
    path: &std::path::Path,
    data: &std::path::Path,
    total: usize,
) -> (f64, usize) {
    use std::io::{BufRead, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_relayctl"))
        .arg("--config")
        .arg(path)
        .arg("--data-dir")
        .arg(data)
        .args(["--json", "watch"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    loop {
        let line = lines.recv().await.expect("watch output");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        if value["event"] == "connection" && value["state"] == "connected" {
            break;
        }
    }
    let index: HashMap<&str, usize> = config
        .relays
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let started = Instant::now();
    let mut sent = 0;
    for relay in &config.relays {
        writeln!(stdin, "set {} on", relay.id).unwrap();
        sent += 1;
    }
    stdin.flush().unwrap();
    let (mut done, mut confirmed) = (0, 0);
    while done < total {
        let line = lines.recv().await.expect("watch output");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        if value["event"] != "outcome" {
            continue;
        }
        done += 1;
        confirmed += usize::from(value["outcome"] == "confirmed");
        if sent < total {
            let relay = &config.relays[index[value["relay"].as_str().unwrap()]];
            let state = if sent % 2 == 0 { "on" } else { "off" };
            writeln!(stdin, "set {} {state}", relay.id).unwrap();
            sent += 1;
        }
        // Hand over what is written once nothing more is waiting to be
        // read: a script that answers line by line, without a syscall per
        // line.
        if lines.is_empty() {
            stdin.flush().unwrap();
        }
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    drop(stdin);
    let _ = child.wait();
    (rate, confirmed)
}

/// The raw rumqttc requester keeping every relay of `config` busy until
/// `total` answers came; answers per second.
async fn raw_pipelined(
    broker: &Mosquitto,
    config: &relay_panel::config::Config,
    total: usize,
) -> f64 {
    let relays = config.relays.len();
    let mut raw = Raw::connect(broker.port).await;
    let started = Instant::now();
    let mut in_flight: HashMap<CorrelationId, usize> = HashMap::new();
    let mut sent = 0;
    for relay in 0..relays {
        let id = CorrelationId::random();
        raw.send(&config.relays[relay].request_topic, b"1", id);
        in_flight.insert(id, relay);
        sent += 1;
    }
    let mut done = 0;
    while done < total {
        let id = raw.response().await;
        if let Some(relay) = in_flight.remove(&id) {
            done += 1;
            if sent < total {
                let id = CorrelationId::random();
                raw.send(
                    &config.relays[relay].request_topic,
                    if sent % 2 == 0 { b"1" } else { b"0" },
                    id,
                );
                in_flight.insert(id, relay);
                sent += 1;
            }
        }
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// `relayctl status` on 10,000 relays, process start to exit: the store
/// holds an answer for every relay, and the broker a retained last will
/// for each of their 1,250 devices (8 relays each), which status reads.
async fn status_10k(broker: &Mosquitto) {
    const RELAYS: usize = 10_000;
    const RUNS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let run: u32 = rand::random();
    let mut config = relay_panel::config::Config::new(&broker.url());
    for i in 0..RELAYS {
        let device = format!("plant-{run:08x}/device-{}", i / 8);
        let mut relay = relay_panel::config::RelayConfig::new(
            &format!("relay-{i}"),
            &format!("{device}/relay-{}", i % 8),
        );
        relay.availability_topic = format!("{device}/status");
        relay.group = format!("Cabinet {}", i / 50);
        config.relays.push(relay);
    }
    let path = dir.path().join("big.toml");
    config.save(&path).unwrap();
    let data = dir.path().join("data");
    let (mut store, _) = relay_panel::store::Store::open_in(&data).unwrap();
    let now = std::time::SystemTime::now();
    let acks: Vec<_> = config
        .relays
        .iter()
        .map(|relay| {
            relay_panel::store::Record::Ack(relay_panel::store::StoredAck {
                relay_id: relay.id.clone(),
                state: relay_panel::protocol::RelayState::On,
                evidence: relay_panel::outcome::Evidence::Correlated,
                requested: now,
                at: now,
                rtt: Duration::from_millis(1),
                late: false,
                operator: Some("bench".into()),
            })
        })
        .collect();
    store.write(&acks).unwrap();
    drop(store);
    let mut wire = common::Wire::connect(&broker.url()).await;
    for device in 0..RELAYS / 8 {
        let online = if device % 10 == 0 {
            "offline"
        } else {
            "online"
        };
        wire.publish(
            &format!("plant-{run:08x}/device-{device}/status"),
            online,
            true,
        )
        .await;
    }
    let mut times = Vec::new();
    let mut offline = 0;
    for i in 0..RUNS {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_relayctl"))
            .arg("--config")
            .arg(&path)
            .arg("--data-dir")
            .arg(&data)
            .args(if i % 2 == 0 {
                &["status"][..]
            } else {
                &["--json", "status"][..]
            })
            .output()
            .unwrap();
        times.push(started.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if i % 2 == 1 {
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            offline = json
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["online"] == false)
                .count();
        }
    }
    times.sort();
    println!(
        "| relayctl status, {RELAYS} relays, {RUNS} runs | p50 {} (max {}; {offline} relays offline as read) | - | target < 200 ms |",
        ms(percentile(&times, 0.5)),
        ms(*times.last().unwrap())
    );
}

async fn group_switch(broker: &Mosquitto) {
    const RELAYS: usize = 1000;
    let config = config(&broker.url(), RELAYS);
    let (_devices, _) = devices(&config, Faults::default()).await;
    let mut engine = TestEngine::start(&config);
    engine.connected().await;
    let started = Instant::now();
    for relay in 0..RELAYS {
        engine.handle.request(relay, Action::On);
    }
    let mut confirmed = 0;
    let mut done = 0;
    while done < RELAYS {
        if let Event::Finished { entry, .. } = engine.next(Duration::from_secs(10)).await {
            done += 1;
            confirmed += usize::from(entry.outcome == Outcome::Confirmed);
        }
    }
    let engine_time = started.elapsed();

    let started = Instant::now();
    for relay in &config.relays {
        let out = Command::new("mosquitto_rr")
            .args([
                "-V",
                "5",
                "-p",
                &broker.port.to_string(),
                "-t",
                &relay.request_topic,
                "-e",
                "bench/rr",
                "-m",
                "0",
                "-W",
                "3",
            ])
            .args(["-D", "publish", "correlation-data", "bench"])
            .output()
            .expect("mosquitto_rr");
        assert!(out.status.success());
    }
    let rr_time = started.elapsed();
    println!(
        "| group switch, all on for {RELAYS} relays | engine {} ({confirmed} confirmed) | {RELAYS} x mosquitto_rr {} | {:.0}x faster (target >= 50x) |",
        ms(engine_time),
        ms(rr_time),
        rr_time.as_secs_f64() / engine_time.as_secs_f64()
    );
}

/// One engine and its simulated devices, for sequential round trips.
struct Setup {
    /// What the row says it is.
    name: &'static str,
    /// The engine under test, connected.
    engine: TestEngine,
    /// Keeps the devices running.
    _devices: relay_panel::sim::SimHandle,
    /// Each confirmed round trip, request to answer.
    times: Vec<Duration>,
}

impl Setup {
    /// Devices connected with `devices_config`, the engine with `config`.
    async fn start(name: &'static str, config: &Config, devices_config: &Config) -> Setup {
        let (devices, _) = devices(devices_config, Faults::default()).await;
        let mut engine = TestEngine::start(config);
        engine.connected().await;
        Setup {
            name,
            engine,
            _devices: devices,
            times: Vec::new(),
        }
    }

    /// `n` sequential requests, each timed until its confirmation.
    async fn run(&mut self, n: usize) {
        for i in 0..n {
            let action = if i % 2 == 0 { Action::On } else { Action::Off };
            let (entry, took) = timed_request(&mut self.engine, 0, action).await;
            assert_eq!(
                entry.outcome,
                Outcome::Confirmed,
                "{}: {entry:?}",
                self.name
            );
            self.times.push(took);
        }
    }

    /// p50 and p99 of what was measured.
    fn percentiles(&mut self) -> (Duration, Duration) {
        self.times.sort();
        (percentile(&self.times, 0.5), percentile(&self.times, 0.99))
    }
}

/// Sequential confirmed round trips through relay-sim on ejabberd 23.01
/// (one node; a two-node cluster with the panel on one node and the
/// devices on the other), each against the same on Mosquitto, in blocks
/// taking turns so all three see the same machine conditions.
async fn ejabberd(broker: &Mosquitto) {
    const N: usize = 2000;
    const BLOCKS: usize = 20;
    let started = tokio::task::block_in_place(|| {
        LocalEjabberd::start().and_then(|single| Ok((single, LocalEjabberd::start_cluster(2)?)))
    });
    let (single, cluster) = match started {
        Ok(brokers) => brokers,
        Err(e) => {
            println!(
                "| round trip on ejabberd | not measured: {} | | |",
                e.to_string().replace('\n', " ")
            );
            return;
        }
    };
    let on = |url: String, broker: Option<relay_panel::config::BrokerConfig>| {
        let mut config = config(&url, 1);
        if let Some(broker) = broker {
            config.broker = broker;
        }
        config
    };
    let mosquitto = on(broker.url(), None);
    let one_node = on(single.url(0), Some(single.broker_config(0)));
    let panel_node = on(cluster.url(0), Some(cluster.broker_config(0)));
    let mut devices_node = panel_node.clone();
    devices_node.broker = cluster.broker_config(1);
    let mut setups = [
        Setup::start("Mosquitto", &mosquitto, &mosquitto).await,
        Setup::start("ejabberd 23.01, one node", &one_node, &one_node).await,
        Setup::start(
            "ejabberd 23.01, two-node cluster, panel and devices on different nodes",
            &panel_node,
            &devices_node,
        )
        .await,
    ];
    for _ in 0..BLOCKS {
        for setup in &mut setups {
            setup.run(N / BLOCKS).await;
        }
    }
    let (mp50, mp99) = setups[0].percentiles();
    for setup in &mut setups[1..] {
        let (p50, p99) = setup.percentiles();
        println!(
            "| round trip, {N} sequential confirmed through relay-sim, on {} | engine p50 {} p99 {} | same on Mosquitto p50 {} p99 {} | p50 ratio {:.2}x |",
            setup.name,
            ms(p50),
            ms(p99),
            ms(mp50),
            ms(mp99),
            p50.as_secs_f64() / mp50.as_secs_f64()
        );
    }
}

fn one_shot_cli(broker: &Mosquitto, rt: &tokio::runtime::Runtime) {
    const RUNS: usize = 40;
    let config = config(&broker.url(), 1);
    let (_devices, _) = rt.block_on(devices(&config, Faults::default()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.toml");
    config.save(&path).unwrap();
    let relayctl = env!("CARGO_BIN_EXE_relayctl");
    let topic = config.relays[0].request_topic.clone();
    let port = broker.port.to_string();
    let mut ctl = Vec::new();
    let mut rr = Vec::new();
    for i in 0..RUNS {
        let state = if i % 2 == 0 { "on" } else { "off" };
        let started = Instant::now();
        let out = Command::new(relayctl)
            .arg("--config")
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["set", "r0", state])
            .output()
            .unwrap();
        ctl.push(started.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let started = Instant::now();
        let out = Command::new("mosquitto_rr")
            .args([
                "-V",
                "5",
                "-p",
                &port,
                "-t",
                &topic,
                "-e",
                "bench/rr",
                "-m",
                if i % 2 == 0 { "1" } else { "0" },
                "-W",
                "3",
            ])
            .args(["-D", "publish", "correlation-data", "bench"])
            .output()
            .unwrap();
        rr.push(started.elapsed());
        assert!(out.status.success());
    }
    ctl.sort();
    rr.sort();
    println!(
        "| one-shot CLI, {RUNS} runs each | relayctl set p50 {} | mosquitto_rr p50 {} | ratio {:.2}x (target <= 1.2x) |",
        ms(percentile(&ctl, 0.5)),
        ms(percentile(&rr, 0.5)),
        percentile(&ctl, 0.5).as_secs_f64() / percentile(&rr, 0.5).as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter word runs one benchmark.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = Mosquitto::start();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        memory()
    );
    println!("| benchmark | Relay Panel | baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    if wanted("round_trip") {
        rt.block_on(round_trip(&broker));
    }
    if wanted("kinds") {
        rt.block_on(kinds_round_trip(&broker));
    }
    if wanted("throughput") {
        rt.block_on(throughput(&broker));
    }
    if wanted("watch") {
        rt.block_on(watch_throughput(&broker));
    }
    if wanted("status") {
        rt.block_on(status_10k(&broker));
    }
    if wanted("group_switch") {
        rt.block_on(group_switch(&broker));
    }
    if wanted("one_shot") {
        one_shot_cli(&broker, &rt);
    }
    if wanted("ejabberd") {
        rt.block_on(ejabberd(&broker));
    }
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB RAM", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default()
}
