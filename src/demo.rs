//! `relay-panel --demo`: an MQTT 5 broker embedded in the process (rumqttd,
//! nothing to install) on a free loopback port, plus simulated relays of
//! every kind with a little latency, one broken device, one device off
//! the network from the start (its last will says so) and a wall button
//! someone presses now and then (a change at the device).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::{
    Broker, Config as BrokerSettings, ConnectionSettings, RouterConfig, ServerSettings, Strategy,
};

use crate::config::{Config, RelayConfig};
use crate::sim::{self, Faults, SimHandle, SimOptions};

/// Which MQTT version the embedded broker's listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 5 (what Relay Panel needs).
    V5,
    /// MQTT 3.1.1 only (for tests of the "not MQTT 5" error).
    V4,
}

/// Reserves a free loopback port (rumqttd cannot report the port it bound).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts an embedded broker on `127.0.0.1:port` and waits until it
/// accepts connections. It runs until the process exits.
pub fn start_broker(port: u16, protocol: Protocol) -> std::io::Result<SocketAddr> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = ServerSettings {
        name: "relay-panel-demo".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5_000,
            max_payload_size: 256 * 1024,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let listeners = Some(HashMap::from([("1".to_owned(), server)]));
    let settings = BrokerSettings {
        id: 0,
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 200,
            max_segment_size: 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Strategy::RoundRobin,
        },
        v4: (protocol == Protocol::V4)
            .then(|| listeners.clone())
            .flatten(),
        v5: (protocol == Protocol::V5).then_some(listeners).flatten(),
        ..Default::default()
    };
    let mut broker = Broker::new(settings);
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("embedded broker: {e}");
            }
        })?;
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if started.elapsed() > Duration::from_secs(5) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("embedded broker did not start listening on {addr}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(addr)
}

/// The demo's relays: one group per kind of device, two or three relays
/// each, so a newcomer sees *confirmed* (the own contract, Shelly) and
/// *reported* (Tasmota without MQTT 5, command/state) side by side. One
/// relay asks before switching (`door-1`), one device is broken
/// (`beacon`), one is off the network ([`OFFLINE`]) and one has a wall
/// button someone presses ([`PRESSED`]; see [`start`]). Every device has
/// a last will: Shelly's and Tasmota's their firmware's, the others' an
/// `availability_topic` of their own.
pub fn demo_config(port: u16) -> Config {
    let mut config = Config::new(&format!("mqtt://127.0.0.1:{port}"));
    let own = |id: &str| {
        let mut relay = RelayConfig::new(id, &format!("demo/{id}/relay"));
        relay.payload_query = Some("?".to_owned());
        relay.availability_topic = format!("demo/{id}/status");
        relay
    };
    let state = |id: &str| {
        let mut relay =
            RelayConfig::state(id, &format!("demo/{id}/set"), &format!("demo/{id}/state"));
        relay.availability_topic = format!("demo/{id}/status");
        relay
    };
    let plant: [(&str, Vec<(&str, RelayConfig)>); 4] = [
        (
            "Own contract (mqtt5)",
            vec![
                ("Sump pump", own("pump-1")),
                ("Tank heater", own("heater-1")),
                ("Warning beacon", own("beacon")),
            ],
        ),
        (
            "Shelly",
            vec![
                (
                    "Hall lights",
                    RelayConfig::shelly("light-hall", SHELLY_PRO2, 0),
                ),
                (
                    "Office lights",
                    RelayConfig::shelly("light-office", SHELLY_PRO2, 1),
                ),
                (
                    "Extract fan",
                    RelayConfig::shelly("fan-1", "shellyplus1-a8032ab1c3d4", 0),
                ),
            ],
        ),
        (
            "Tasmota",
            vec![
                (
                    "Booster pump",
                    RelayConfig::tasmota("pump-2", TASMOTA, Some(1)),
                ),
                (
                    "Air handler",
                    RelayConfig::tasmota("ahu-1", TASMOTA, Some(2)),
                ),
            ],
        ),
        (
            "Command/state",
            vec![
                ("Loading door", state("door-1")),
                ("Bench supply", state("bench-1")),
            ],
        ),
    ];
    for (group, relays) in plant {
        for (name, mut relay) in relays {
            relay.name = name.to_owned();
            relay.group = group.to_owned();
            config.relays.push(relay);
        }
    }
    if let Some(door) = config.relays.iter_mut().find(|r| r.id == "door-1") {
        door.confirm = true;
    }
    // The device that goes offline tells its state on a state topic too
    // (retained): its row keeps a last known state beside *offline since*.
    if let Some(heater) = config.relays.iter_mut().find(|r| r.id == OFFLINE) {
        heater.state_topic = format!("demo/{}/state", heater.id);
    }
    config
}

/// The demo's two-channel Shelly Pro 2 (its topic prefix: the device id).
const SHELLY_PRO2: &str = "shellypro2-c8f09e8a1b2c";
/// The demo's two-relay Tasmota (its `%topic%`).
const TASMOTA: &str = "tasmota_8A3F21";

/// The relay whose device is off the network from the start: its row
/// reads *offline since …* and switching it asks first (an `mqtt5`
/// device: its last will is the configured `availability_topic`).
pub const OFFLINE: &str = "heater-1";
/// The relay whose wall button someone presses now and then: its row
/// reads *reported by the device … (button)*.
pub const PRESSED: &str = "light-hall";
/// When the wall button is first pressed: soon, so the first screen shows
/// a change at the device.
const FIRST_PRESS: Duration = Duration::from_secs(4);
/// Then every 40 to 60 s: lively, but calm enough to read.
const PRESS_EVERY_SECS: std::ops::RangeInclusive<u64> = 40..=60;

/// A running demo: the embedded broker and the simulated devices.
pub struct Demo {
    /// The configuration the panel should use.
    pub config: Config,
    /// The simulated devices (they stop once the demo is dropped: the
    /// wall-button task holds the other reference, and is stopped then).
    pub devices: Arc<SimHandle>,
    /// Presses [`PRESSED`]'s wall button now and then; aborted on drop.
    wall_button: tokio::task::AbortHandle,
}

impl Demo {
    /// Waits until the devices are ready ([`SimHandle::is_ready`]): every
    /// one connected (the [`OFFLINE`] one is cut off right after).
    pub async fn ready(&self) {
        while !self.devices.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.wall_button.abort();
    }
}

/// Starts the embedded broker and simulated devices (on the current tokio
/// runtime) and returns the configuration that connects to them. A task
/// cuts the [`OFFLINE`] device off once every device is connected (the
/// broker publishes its last will, retained), then presses [`PRESSED`]'s
/// wall button after [`FIRST_PRESS`], then every 40 to 60 s.
pub fn start() -> anyhow::Result<Demo> {
    let port = free_port()?;
    start_broker(port, Protocol::V5)?;
    let config = demo_config(port);
    let faults = Faults {
        latency: Duration::from_millis(40),
        jitter: Duration::from_millis(120),
        fail: ["beacon".to_owned()].into_iter().collect(),
        // The firmware most Tasmotas in the field run: their answers are
        // reports, beside the Shellys' confirmations.
        tasmota_mqtt5: false,
        ..Faults::default()
    };
    let (devices, _records) = sim::spawn(SimOptions {
        config: config.clone(),
        faults,
        client_id: None,
    })?;
    let devices = Arc::new(devices);
    let presser = devices.clone();
    let wall_button = tokio::spawn(async move {
        // Cut off once connected: a device that never connected leaves
        // no last will for the broker to publish.
        while !presser.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        presser.set_online(OFFLINE, false);
        let mut wait = FIRST_PRESS;
        loop {
            tokio::time::sleep(wait).await;
            presser.press(PRESSED);
            wait = Duration::from_secs(rand::random_range(PRESS_EVERY_SECS));
        }
    })
    .abort_handle();
    Ok(Demo {
        config,
        devices,
        wall_button,
    })
}
