//! Simulated devices: every relay of a configuration answers requests per
//! the wire contract, with optional faults (latency, drops, duplicates,
//! garbage, wrong correlation, permanent failure). Used by `relay-sim`, the
//! demo and the tests.
//!
//! One MQTT client serves all relays (one subscription per request topic).
//!
//! (Over 400 lines: a device's handling of one request, every fault in one
//! place, reads best whole.)

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish, PublishProperties};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, RelayConfig};
use crate::mqtt::{self, NetEvent};
use crate::protocol::{self, RelayState};

/// Text a relay listed in `--fail` answers with.
pub const FAIL_TEXT: &str = "relay coil fault (simulated)";
/// Filters per SUBSCRIBE packet (keeps packets small for 10,000 relays).
const FILTERS_PER_SUBSCRIBE: usize = 500;

/// Faults to inject; probabilities are 0.0 to 1.0.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Delay before answering.
    pub latency: Duration,
    /// Extra random delay, uniform in 0..=jitter.
    pub jitter: Duration,
    /// Chance a request is lost before reaching the device (not actuated,
    /// not answered).
    pub drop: f64,
    /// Chance the answer is sent twice.
    pub duplicate: f64,
    /// Chance the answer's payload is random bytes (a malformed reply).
    pub garbage: f64,
    /// Chance the answer carries random correlation data instead.
    pub wrong_correlation: f64,
    /// Relays (by id) that always answer [`FAIL_TEXT`] and never switch.
    pub fail: HashSet<String>,
    /// Seed for reproducible faults; random when `None`.
    pub seed: Option<u64>,
}

/// What a simulated device did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecord {
    /// The relay addressed.
    pub relay_id: String,
    /// The request payload (lossy UTF-8).
    pub request: String,
    /// The correlation data of the request, if any.
    pub correlation: Option<Bytes>,
    /// The relay's state after handling the request.
    pub state_after: RelayState,
    /// What was sent back.
    pub reply: SimReply,
}

/// How a simulated device answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimReply {
    /// Request lost: not actuated, no answer.
    Dropped,
    /// The request named no response topic: nothing to answer to.
    NoResponseTopic,
    /// A proper answer with this payload (`copies` times, 2 = duplicated).
    Answer {
        /// The payload sent.
        payload: String,
        /// How many times it was sent.
        copies: u8,
    },
    /// An answer with random payload bytes.
    Garbage,
    /// An answer with someone else's correlation data.
    WrongCorrelation,
    /// The request arrived after its `expires_at` user property: not
    /// actuated, not answered (the panel has already reported it unanswered).
    Expired {
        /// The request's `expires_at`.
        expires_at: String,
    },
}

/// Options for [`spawn`].
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Broker and relays to simulate.
    pub config: Config,
    /// Faults to inject.
    pub faults: Faults,
    /// MQTT client id (random when `None`).
    pub client_id: Option<String>,
}

/// A running simulator.
pub struct SimHandle {
    /// Stops the simulator when dropped or sent to.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// True while connected and subscribed to every request topic.
    ready: watch::Receiver<bool>,
    /// Each relay's current state, by id.
    states: Arc<Mutex<HashMap<String, RelayState>>>,
}

impl SimHandle {
    /// Waits until connected and subscribed to every request topic.
    pub async fn ready(&mut self) {
        let _ = self.ready.wait_for(|ready| *ready).await;
    }

    /// Whether the simulator is connected and subscribed right now.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The device-side state of a relay.
    pub fn state(&self, relay_id: &str) -> Option<RelayState> {
        self.states.lock().ok()?.get(relay_id).copied()
    }

    /// Stops the simulator.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts simulated devices on the current tokio runtime. Every request
/// handled is reported on the returned receiver (drop it if unwanted).
pub fn spawn(
    options: SimOptions,
) -> Result<(SimHandle, mpsc::UnboundedReceiver<SimRecord>), mqtt::SetupError> {
    let client_id = options
        .client_id
        .clone()
        .unwrap_or_else(|| protocol::random_client_id("relay-sim"));
    let (client, eventloop) = mqtt::client(&options.config.broker, &client_id)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = watch::channel(false);
    let (records_tx, records_rx) = mpsc::unbounded_channel();
    let states: HashMap<String, RelayState> = options
        .config
        .relays
        .iter()
        .map(|r| (r.id.clone(), RelayState::Off))
        .collect();
    let states = Arc::new(Mutex::new(states));
    let rng = match options.faults.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let devices = Devices {
        by_topic: options
            .config
            .relays
            .iter()
            .enumerate()
            .map(|(i, r)| (r.request_topic.clone(), i))
            .collect(),
        relays: options.config.relays,
        faults: options.faults,
        states: states.clone(),
        rng,
        client,
        records: records_tx,
    };
    tokio::spawn(devices.run(eventloop, client_id, stop_rx, ready_tx));
    Ok((
        SimHandle {
            stop: Some(stop_tx),
            ready: ready_rx,
            states,
        },
        records_rx,
    ))
}

struct Devices {
    /// The simulated relays.
    relays: Vec<RelayConfig>,
    /// Request topic → index into `relays`.
    by_topic: HashMap<String, usize>,
    /// Faults to inject.
    faults: Faults,
    /// Device-side state of each relay, shared with the handle.
    states: Arc<Mutex<HashMap<String, RelayState>>>,
    /// Decides faults (seedable for reproducible runs).
    rng: StdRng,
    /// Publishes answers.
    client: AsyncClient,
    /// What each device did.
    records: mpsc::UnboundedSender<SimRecord>,
}

impl Devices {
    async fn run(
        mut self,
        eventloop: rumqttc::v5::EventLoop,
        label: String,
        mut stop: tokio::sync::oneshot::Receiver<()>,
        ready: watch::Sender<bool>,
    ) {
        let mut network = mqtt::spawn_event_loop(eventloop, label, false);
        let mut awaiting_subacks = 0usize;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                event = network.recv() => match event {
                    None => break,
                    Some(NetEvent::Connected(_)) => {
                        ready.send_replace(false);
                        awaiting_subacks = self.subscribe_all();
                        if awaiting_subacks == 0 {
                            ready.send_replace(true);
                        }
                    }
                    Some(NetEvent::SubAck(_)) => {
                        awaiting_subacks = awaiting_subacks.saturating_sub(1);
                        if awaiting_subacks == 0 {
                            ready.send_replace(true);
                        }
                    }
                    Some(NetEvent::Publish(publish)) => self.handle(publish),
                    Some(NetEvent::Sent(_) | NetEvent::Acked(_) | NetEvent::Refused { .. }) => {}
                    Some(NetEvent::Down { reason, fatal, .. }) => {
                        ready.send_replace(false);
                        if fatal {
                            tracing::error!("relay-sim: {reason}");
                            break;
                        }
                    }
                },
            }
        }
        let _ = self.client.try_disconnect();
        // Give the event loop a moment to send DISCONNECT.
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while network.recv().await.is_some() {}
        })
        .await;
    }

    /// Subscribes to every request topic; returns the number of SUBACKs to await.
    fn subscribe_all(&self) -> usize {
        let topics: Vec<&str> = self
            .relays
            .iter()
            .map(|r| r.request_topic.as_str())
            .collect();
        let mut sent = 0;
        for chunk in topics.chunks(FILTERS_PER_SUBSCRIBE) {
            let filters = chunk
                .iter()
                .map(|t| Filter::new(t.to_string(), QoS::AtLeastOnce));
            match self.client.try_subscribe_many(filters) {
                Ok(()) => sent += 1,
                Err(e) => tracing::error!("relay-sim: cannot subscribe: {e}"),
            }
        }
        sent
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn handle(&mut self, publish: Publish) {
        let topic = String::from_utf8_lossy(&publish.topic);
        let Some(&index) = self.by_topic.get(topic.as_ref()) else {
            tracing::warn!("relay-sim: message on unexpected topic {topic:?}");
            return;
        };
        if publish.retain {
            // A retained command is old; a real device must not act on it.
            tracing::warn!("relay-sim: ignoring retained message on {topic:?}");
            return;
        }
        let dropped = self.chance(self.faults.drop);
        let relay = &self.relays[index];
        let relay_id = relay.id.clone();
        let properties = publish.properties.unwrap_or_default();
        let correlation = properties.correlation_data.clone();
        let request = String::from_utf8_lossy(&publish.payload).into_owned();
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let before = states.get(&relay_id).copied().unwrap_or(RelayState::Off);
        drop(states);
        let record = |state_after, reply| SimRecord {
            relay_id: relay_id.clone(),
            request: request.clone(),
            correlation: correlation.clone(),
            state_after,
            reply,
        };
        if dropped {
            let _ = self.records.send(record(before, SimReply::Dropped));
            return;
        }
        // A device with a clock honours the request's deadline: one that
        // reaches it late (a stalled broker, a slow link) is not acted on.
        let expires_at = properties
            .user_properties
            .iter()
            .find(|(key, _)| key == protocol::EXPIRES_AT)
            .map(|(_, value)| value.clone());
        if let Some(expires_at) = expires_at {
            match chrono::DateTime::parse_from_rfc3339(&expires_at) {
                Ok(deadline) if chrono::Utc::now() > deadline => {
                    let _ = self
                        .records
                        .send(record(before, SimReply::Expired { expires_at }));
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("relay-sim: unreadable expires_at {expires_at:?}: {e}"),
            }
        }
        let failing = self.faults.fail.contains(&relay_id);
        let payload = publish.payload.as_ref();
        let (after, answer) = if failing {
            (before, FAIL_TEXT.to_owned())
        } else if payload == relay.payload_on.as_bytes() {
            (RelayState::On, relay.payload_on.clone())
        } else if payload == relay.payload_off.as_bytes() {
            (RelayState::Off, relay.payload_off.clone())
        } else if relay.payload_query.as_deref().map(str::as_bytes) == Some(payload) {
            let answer = match before {
                RelayState::On => relay.payload_on.clone(),
                RelayState::Off => relay.payload_off.clone(),
            };
            (before, answer)
        } else {
            (
                before,
                format!(
                    "unknown command {:?}",
                    protocol::sanitise_device_text(payload)
                ),
            )
        };
        states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.insert(relay_id.clone(), after);
        drop(states);

        let Some(response_topic) = properties.response_topic.clone() else {
            let _ = self.records.send(record(after, SimReply::NoResponseTopic));
            return;
        };
        let (reply, payload, correlation_out, copies) =
            if self.chance(self.faults.wrong_correlation) {
                let forged: [u8; 16] = self.rng.random();
                (
                    SimReply::WrongCorrelation,
                    Bytes::from(answer),
                    Some(Bytes::copy_from_slice(&forged)),
                    1,
                )
            } else if self.chance(self.faults.garbage) {
                let len = self.rng.random_range(1..64);
                let junk: Vec<u8> = (0..len)
                    .map(|_| self.rng.random_range(0x80..=0xff))
                    .collect();
                (SimReply::Garbage, Bytes::from(junk), correlation.clone(), 1)
            } else {
                let copies = if self.chance(self.faults.duplicate) {
                    2
                } else {
                    1
                };
                let reply = SimReply::Answer {
                    payload: answer.clone(),
                    copies,
                };
                (reply, Bytes::from(answer), correlation.clone(), copies)
            };
        let _ = self.records.send(record(after, reply));
        let reply_properties = PublishProperties {
            correlation_data: correlation_out,
            ..Default::default()
        };
        let mut delay = self.faults.latency;
        if !self.faults.jitter.is_zero() {
            delay += self.faults.jitter.mul_f64(self.rng.random::<f64>());
        }
        let client = self.client.clone();
        let send = move |client: &AsyncClient| {
            for _ in 0..copies {
                if let Err(e) = client.try_publish_with_properties(
                    response_topic.clone(),
                    QoS::AtLeastOnce,
                    false,
                    payload.clone(),
                    reply_properties.clone(),
                ) {
                    tracing::warn!("relay-sim: cannot answer: {e}");
                }
            }
        };
        if delay.is_zero() {
            send(&client);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                send(&client);
            });
        }
    }
}
