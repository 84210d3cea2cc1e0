//! Simulated devices: every relay of a configuration answers requests the
//! way its kind of device does, with optional faults (latency, drops,
//! duplicates, garbage, wrong correlation, permanent failure). Used by
//! `relay-sim`, the demo and the tests.
//!
//! Layout: this file holds the options, what the devices did
//! ([`SimRecord`]), the handle, and the one task that serves every relay
//! over one MQTT client (one subscription per request topic): routing a
//! message to its relay, the faults, the relay's state and the sending.
//! Each kind is a file of pure functions that read a request and build the
//! device's messages: `mqtt5.rs` (this project's contract), `shelly.rs`
//! (JSON-RPC on `<device>/rpc`), `tasmota.rs` (`cmnd/…` answered on
//! `stat/…`), `state.rs` (a command topic and a state topic).
//!
//! Order: a device that answers by *reporting* its state (Tasmota, a state
//! device) sends its messages in the order it acted, however long each
//! waits (one queue per device), as one device on one connection does;
//! otherwise the last report could be an older one and the device would
//! lie about its own state. Answers tied to their request (the `mqtt5`
//! contract, Shelly's RPC) may overtake each other, which the panel must
//! cope with. While the simulator is offline such a device drops what it
//! would send, as Tasmota and ESPHome do, instead of a client queue
//! delivering it after the reconnect, long after the device said it.
//!
//! What the devices did is told on two channels: one [`SimRecord`] per
//! request handled, and (from [`spawn_with_reports`]) one [`SimReport`]
//! each time a device publishes its state on its own state topic (or drops
//! it, offline), with the time, for checks that need to know *when* a
//! device said something (a report is tied to no request).

mod mqtt5;
mod shelly;
mod state;
mod tasmota;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish, PublishProperties};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, Kind, RelayConfig};
use crate::mqtt::{self, NetEvent};
use crate::protocol::{self, RelayState};

pub use shelly::{
    INVALID_ARGUMENT as SHELLY_INVALID_ARGUMENT, NO_HANDLER as SHELLY_NO_HANDLER,
    NOT_FOUND as SHELLY_NOT_FOUND,
};

/// Text a relay listed in `--fail` answers with (a Shelly: as the message
/// of error [`SHELLY_NOT_FOUND`]).
pub const FAIL_TEXT: &str = "relay coil fault (simulated)";
/// Filters per SUBSCRIBE packet (keeps packets small for 10,000 relays).
const FILTERS_PER_SUBSCRIBE: usize = 500;

/// Faults to inject; probabilities are 0.0 to 1.0. Each applies to every
/// kind as far as it makes sense there (see the fields).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Delay before answering.
    pub latency: Duration,
    /// Extra random delay, uniform in 0..=jitter.
    pub jitter: Duration,
    /// Chance a request is lost before reaching the device (not actuated,
    /// not answered).
    pub drop: f64,
    /// Chance every answer to a request is sent twice.
    pub duplicate: f64,
    /// Chance every answer to a request has random bytes as its payload (a
    /// malformed reply, RESULT or state message); the device still acts.
    pub garbage: f64,
    /// Chance the answer tied to a request comes from the wrong exchange:
    /// random Correlation Data (`mqtt5`, `tasmota` with MQTT 5), another
    /// `id` or `dst` (`shelly`). Kinds whose answers are only reports have
    /// nothing to get wrong.
    pub wrong_correlation: f64,
    /// Relays (by id) that never switch: they answer [`FAIL_TEXT`]
    /// (`mqtt5`), a Shelly error [`SHELLY_NOT_FOUND`] with that text, or —
    /// having no way to say so — report their unchanged state (`tasmota`,
    /// `state`: "asked on, reports off").
    pub fail: HashSet<String>,
    /// Seed for reproducible faults; random when `None`.
    pub seed: Option<u64>,
    /// Tasmota devices run a build with MQTT 5 (Tasmota PR #25050): right
    /// after `stat/…/RESULT` they answer the request's Response Topic with
    /// its Correlation Data. Not a fault but a firmware variant; it lives
    /// here with the other device behaviours so every `Faults { .. }` keeps
    /// building.
    pub tasmota_mqtt5: bool,
}

/// What a simulated device did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecord {
    /// The relay addressed.
    pub relay_id: String,
    /// The request payload (lossy UTF-8).
    pub request: String,
    /// The MQTT Correlation Data of the request, if any.
    pub correlation: Option<Bytes>,
    /// The JSON-RPC `id` of a Shelly call, as JSON text (`17`), if any.
    pub rpc_id: Option<String>,
    /// Whether the device answers this request with a message tied to it
    /// (its Correlation Data on its Response Topic, or its RPC `id` echoed
    /// to its `src`), whatever fault then spoils that answer (see
    /// `reply`). False when the device only reports its state (Tasmota
    /// without MQTT 5, a state device): such an answer never confirms.
    pub correlated: bool,
    /// The relay's state after handling the request.
    pub state_after: RelayState,
    /// What was sent back.
    pub reply: SimReply,
}

/// A device published a message with its state on its own state topic,
/// tied to no request: Tasmota's `stat/<device>/RESULT` or
/// `stat/<device>/POWER<n>`, a state device's `state_topic` (after a
/// command, and when it connects). One per message: a duplicated report
/// is two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// The relay whose state it tells.
    pub relay_id: String,
    /// Where it was published.
    pub topic: String,
    /// The state it told; `None` when a fault made its payload garbage
    /// (the device published, but told no state).
    pub state: Option<RelayState>,
    /// When it was handed to the MQTT client: before anyone can have
    /// received it.
    pub at: Instant,
    /// The simulator was offline then: the device dropped the report
    /// (see the module doc), nobody heard it.
    pub offline: bool,
}

/// How a simulated device answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimReply {
    /// Request lost: not actuated, no answer.
    Dropped,
    /// The request named nowhere to answer (no Response Topic for `mqtt5`,
    /// a Shelly call without `id`): acted on, not answered.
    NoResponseTopic,
    /// A proper answer (`copies` times, 2 = duplicated). `payload` is the
    /// answer's: the reply (`mqtt5`, the Shelly frame), the RESULT
    /// (`tasmota`) or the state payload (`state`).
    Answer {
        /// The payload sent.
        payload: String,
        /// How many times it was sent.
        copies: u8,
    },
    /// Answers with random payload bytes.
    Garbage,
    /// The tied answer carried someone else's correlation (see
    /// [`Faults::wrong_correlation`]); reports, if any, went out as usual.
    WrongCorrelation,
    /// The request arrived after its `expires_at` user property: not
    /// actuated, not answered (the panel has already reported it unanswered).
    Expired {
        /// The request's `expires_at`.
        expires_at: String,
    },
    /// Not a request the device acts on (a Shelly frame without `src`, a
    /// payload a state device does not know): not actuated, not answered.
    Ignored {
        /// Why.
        reason: String,
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

/// What a request asks of a relay, as its device reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    /// Switch to this state.
    Switch(RelayState),
    /// Switch to the other state.
    Toggle,
    /// Tell the state, change nothing.
    Query,
    /// Not understood: answered with this text (an error), not acted on.
    Unknown(String),
    /// Not a request for this device: neither acted on nor answered.
    Ignore(String),
}

/// What a message a device sends is, for the faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The answer tied to the request (Correlation Data, RPC `id`): wrong
    /// correlation forges it.
    Tied,
    /// A report of the state, tied to nothing.
    Report,
    /// An event besides the answer (Shelly's `NotifyStatus`): faults leave
    /// it alone.
    Notice,
}

/// One message a device sends.
#[derive(Debug, Clone)]
struct Outgoing {
    /// Where.
    topic: String,
    /// What.
    payload: Bytes,
    /// Retained (a state device's state).
    retain: bool,
    /// Correlation Data, for an answer on a Response Topic.
    correlation: Option<Bytes>,
    /// What it is.
    role: Role,
}

/// One request as the device read it.
struct Request {
    /// Index into the relays.
    relay: usize,
    /// What it asks.
    command: Command,
    /// Its payload (lossy UTF-8), for the record.
    text: String,
    /// Its Correlation Data, if any.
    correlation: Option<Bytes>,
    /// Where an `mqtt5` device (or a Tasmota with MQTT 5) answers.
    response_topic: Option<String>,
    /// Its `expires_at` user property (honoured by `mqtt5` devices only:
    /// the vendors' firmware knows no such rule).
    expires_at: Option<String>,
    /// The JSON-RPC call (`shelly`).
    call: Option<shelly::Call>,
}

/// What listens on a subscribed topic.
#[derive(Debug, Clone)]
enum Route {
    /// One relay (`mqtt5` request topic, Tasmota `cmnd/…/POWER<n>`, state
    /// device command topic): index into the relays.
    Relay(usize),
    /// A Shelly's `<device>/rpc`, shared by its switches.
    Shelly(String),
}

/// Starts simulated devices on the current tokio runtime. Every request
/// handled is reported on the returned receiver (drop it if unwanted).
pub fn spawn(
    options: SimOptions,
) -> Result<(SimHandle, mpsc::UnboundedReceiver<SimRecord>), mqtt::SetupError> {
    let (handle, records, _reports) = spawn_with_reports(options)?;
    Ok((handle, records))
}

/// [`spawn`], also telling every state report the devices publish, with
/// its time ([`SimReport`]; the log stops costing anything once the
/// receiver is dropped).
pub fn spawn_with_reports(
    options: SimOptions,
) -> Result<
    (
        SimHandle,
        mpsc::UnboundedReceiver<SimRecord>,
        mpsc::UnboundedReceiver<SimReport>,
    ),
    mqtt::SetupError,
> {
    let client_id = options
        .client_id
        .clone()
        .unwrap_or_else(|| protocol::random_client_id("relay-sim"));
    let (client, eventloop) = mqtt::client(&options.config.broker, &client_id)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = watch::channel(false);
    let (records_tx, records_rx) = mpsc::unbounded_channel();
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
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
    let mut routes = HashMap::new();
    let mut switches = HashMap::new();
    for (i, relay) in options.config.relays.iter().enumerate() {
        let route = match relay.kind {
            Kind::Shelly => {
                switches.insert((relay.device.clone(), relay.switch), i);
                Route::Shelly(relay.device.clone())
            }
            Kind::Mqtt5 | Kind::Tasmota | Kind::State => Route::Relay(i),
        };
        routes.insert(relay.publish_topic(), route);
    }
    let devices = Devices {
        routes,
        switches,
        relays: options.config.relays,
        faults: options.faults,
        states: states.clone(),
        rng,
        client,
        records: records_tx,
        reports: reports_tx,
        online: Arc::new(AtomicBool::new(false)),
        queues: HashMap::new(),
    };
    tokio::spawn(devices.run(eventloop, client_id, stop_rx, ready_tx));
    Ok((
        SimHandle {
            stop: Some(stop_tx),
            ready: ready_rx,
            states,
        },
        records_rx,
        reports_rx,
    ))
}

struct Devices {
    /// The simulated relays.
    relays: Vec<RelayConfig>,
    /// Subscribed topic → what listens there.
    routes: HashMap<String, Route>,
    /// A Shelly's (topic prefix, switch id) → index into `relays`.
    switches: HashMap<(String, u32), usize>,
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
    /// The state reports the devices published, with their times.
    reports: mpsc::UnboundedSender<SimReport>,
    /// Connected to the broker (set on CONNACK, cleared on a drop): the
    /// devices that report publish nothing while it is false.
    online: Arc<AtomicBool>,
    /// Send queues of the devices that report (see the module doc), by
    /// device: each sends its batches in order, each at its time.
    queues: HashMap<String, mpsc::UnboundedSender<Batch>>,
}

/// A reporting device's messages for one request (or its announcement),
/// sent together at `at`, after the batches queued before it.
struct Batch {
    /// When, at the earliest.
    at: tokio::time::Instant,
    /// What, in order.
    messages: Vec<Outgoing>,
    /// The relay and the state its reports tell (`None`: garbage), when
    /// it holds reports: each told as a [`SimReport`] as it goes out.
    report: Option<(String, Option<RelayState>)>,
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
                        self.online.store(true, Ordering::SeqCst);
                        // Before subscribing: the broker holds the states
                        // before anyone is told the devices are ready.
                        self.announce_states();
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
                        self.online.store(false, Ordering::SeqCst);
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

    /// Subscribes to every request topic; returns the number of SUBACKs to
    /// await. No Local: a state device whose command and state topics are
    /// one must not hear its own report as a command.
    fn subscribe_all(&self) -> usize {
        let topics: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        let mut sent = 0;
        for chunk in topics.chunks(FILTERS_PER_SUBSCRIBE) {
            let filters = chunk.iter().map(|t| {
                let mut filter = Filter::new(t.to_string(), QoS::AtLeastOnce);
                filter.nolocal = true;
                filter
            });
            match self.client.try_subscribe_many(filters) {
                Ok(()) => sent += 1,
                Err(e) => tracing::error!("relay-sim: cannot subscribe: {e}"),
            }
        }
        sent
    }

    /// A state device publishes its state (retained) whenever it connects.
    fn announce_states(&mut self) {
        let mut messages = Vec::new();
        for relay in self.relays.iter().filter(|relay| relay.kind == Kind::State) {
            let state = self.state_of(&relay.id);
            let report = state::report(relay, state);
            let _ = self.reports.send(SimReport {
                relay_id: relay.id.clone(),
                topic: report.topic.clone(),
                state: Some(state),
                at: Instant::now(),
                offline: false,
            });
            messages.push(report);
        }
        // Straight to the client, ahead of the SUBSCRIBEs (not through the
        // send queues, which publish from a task of their own): the broker
        // stores the states before it acknowledges the subscriptions, so
        // `ready` means announced. Reports still queued from before carry
        // states no newer than this one, in order: the last one published
        // is still the device's state.
        publish_all(&self.client, &messages);
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn state_of(&self, relay_id: &str) -> RelayState {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.get(relay_id).copied().unwrap_or(RelayState::Off)
    }

    fn handle(&mut self, publish: Publish) {
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let Some(route) = self.routes.get(&topic).cloned() else {
            tracing::warn!("relay-sim: message on unexpected topic {topic:?}");
            return;
        };
        if publish.retain {
            // A retained command is old; a real device must not act on it.
            tracing::warn!("relay-sim: ignoring retained message on {topic:?}");
            return;
        }
        let request = match route {
            Route::Relay(relay) => self.read(relay, publish),
            Route::Shelly(device) => match self.read_shelly(&device, &publish.payload) {
                Some(request) => request,
                None => return,
            },
        };
        self.serve(request);
    }

    /// Reads a message for a relay of kind `mqtt5`, `tasmota` or `state`.
    fn read(&self, relay: usize, publish: Publish) -> Request {
        let config = &self.relays[relay];
        let properties = publish.properties.unwrap_or_default();
        let payload = publish.payload.as_ref();
        let (command, response_topic, expires_at) = match config.kind {
            Kind::Tasmota => (
                tasmota::command(payload),
                properties
                    .response_topic
                    .filter(|_| self.faults.tasmota_mqtt5),
                None,
            ),
            Kind::State => (state::command(config, payload), None, None),
            Kind::Mqtt5 | Kind::Shelly => (
                mqtt5::command(config, payload),
                properties.response_topic,
                properties
                    .user_properties
                    .iter()
                    .find(|(key, _)| key == protocol::EXPIRES_AT)
                    .map(|(_, value)| value.clone()),
            ),
        };
        Request {
            relay,
            command,
            text: String::from_utf8_lossy(payload).into_owned(),
            correlation: properties.correlation_data,
            response_topic,
            expires_at,
            call: None,
        }
    }

    /// Reads a frame on a Shelly's `<device>/rpc`. Frames for none of its
    /// switches are answered with the firmware's error (if they can be) and
    /// not recorded: no relay was addressed.
    fn read_shelly(&mut self, device: &str, payload: &[u8]) -> Option<Request> {
        let text = String::from_utf8_lossy(payload).into_owned();
        let Some(call) = shelly::read(payload) else {
            tracing::warn!("relay-sim: {device}/rpc: not a JSON-RPC frame: {text:?}");
            return None;
        };
        let relay = call
            .switch
            .filter(|_| shelly::is_switch_method(&call.method))
            .and_then(|switch| self.switches.get(&(device.to_owned(), switch)).copied());
        let Some(relay) = relay else {
            let error = shelly::no_such_switch(&call);
            tracing::warn!("relay-sim: {device}/rpc: {} ({text:?})", error.message);
            if let Some(answer) = shelly::answer(device, &call, Err(error)) {
                publish_all(&self.client, &[answer]);
            }
            return None;
        };
        let command = match (&call.src, shelly::command(&call)) {
            (None, _) => Command::Ignore("no src: a Shelly drops frames it cannot answer".into()),
            (Some(_), Ok(command)) => command,
            (Some(_), Err(error)) => Command::Unknown(error.message),
        };
        Some(Request {
            relay,
            command,
            text,
            correlation: None,
            response_topic: None,
            expires_at: None,
            call: Some(call),
        })
    }

    /// Acts on a request read, answers it the way its kind does, with the
    /// faults, and records it.
    fn serve(&mut self, request: Request) {
        let dropped = self.chance(self.faults.drop);
        let relay = self.relays[request.relay].clone();
        let before = self.state_of(&relay.id);
        let records = self.records.clone();
        let record = |state_after, correlated, reply| {
            let _ = records.send(SimRecord {
                relay_id: relay.id.clone(),
                request: request.text.clone(),
                correlation: request.correlation.clone(),
                rpc_id: request
                    .call
                    .as_ref()
                    .and_then(|call| call.id.as_ref())
                    .map(|id| id.to_string()),
                correlated,
                state_after,
                reply,
            });
        };
        if dropped {
            record(before, false, SimReply::Dropped);
            return;
        }
        if let Command::Ignore(reason) = &request.command {
            record(
                before,
                false,
                SimReply::Ignored {
                    reason: reason.clone(),
                },
            );
            return;
        }
        // A device with a clock honours the request's deadline: one that
        // reaches it late (a stalled broker, a slow link) is not acted on.
        if let Some(expires_at) = &request.expires_at {
            match chrono::DateTime::parse_from_rfc3339(expires_at) {
                Ok(deadline) if chrono::Utc::now() > deadline => {
                    let expires_at = expires_at.clone();
                    record(before, false, SimReply::Expired { expires_at });
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("relay-sim: unreadable expires_at {expires_at:?}: {e}"),
            }
        }
        let failing = self.faults.fail.contains(&relay.id);
        let after = match &request.command {
            _ if failing => before,
            Command::Switch(state) => *state,
            Command::Toggle => match before {
                RelayState::On => RelayState::Off,
                RelayState::Off => RelayState::On,
            },
            Command::Query | Command::Unknown(_) | Command::Ignore(_) => before,
        };
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(relay.id.clone(), after);

        let Some((text, mut messages)) = answer(&relay, &request, before, after, failing) else {
            record(after, false, SimReply::NoResponseTopic);
            return;
        };
        let correlated = messages.iter().any(|m| m.role == Role::Tied);
        let reply = if correlated && self.chance(self.faults.wrong_correlation) {
            for message in messages.iter_mut().filter(|m| m.role == Role::Tied) {
                if relay.kind == Kind::Shelly {
                    message.payload = shelly::forge(&message.payload, &mut self.rng);
                } else {
                    let forged: [u8; 16] = self.rng.random();
                    message.correlation = Some(Bytes::copy_from_slice(&forged));
                }
            }
            SimReply::WrongCorrelation
        } else if self.chance(self.faults.garbage) {
            for message in messages.iter_mut().filter(|m| m.role != Role::Notice) {
                let len = self.rng.random_range(1..64);
                let junk: Vec<u8> = (0..len)
                    .map(|_| self.rng.random_range(0x80..=0xff))
                    .collect();
                message.payload = Bytes::from(junk);
            }
            SimReply::Garbage
        } else {
            let copies = if self.chance(self.faults.duplicate) {
                2
            } else {
                1
            };
            if copies == 2 {
                messages = messages
                    .into_iter()
                    .flat_map(|m| {
                        let twice = (m.role != Role::Notice).then(|| m.clone());
                        std::iter::once(m).chain(twice)
                    })
                    .collect();
            }
            SimReply::Answer {
                payload: text,
                copies,
            }
        };
        let report = messages.iter().any(|m| m.role == Role::Report).then(|| {
            (
                relay.id.clone(),
                (reply != SimReply::Garbage).then_some(after),
            )
        });
        record(after, correlated, reply);

        let mut delay = self.faults.latency;
        if !self.faults.jitter.is_zero() {
            delay += self.faults.jitter.mul_f64(self.rng.random::<f64>());
        }
        let batch = Batch {
            at: tokio::time::Instant::now() + delay,
            messages,
            report,
        };
        match relay.kind {
            Kind::Tasmota => self.send_in_order(&format!("tasmota/{}", relay.device), batch),
            Kind::State => self.send_in_order(&relay.id, batch),
            Kind::Mqtt5 | Kind::Shelly if delay.is_zero() => {
                publish_all(&self.client, &batch.messages)
            }
            Kind::Mqtt5 | Kind::Shelly => {
                let client = self.client.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    publish_all(&client, &batch.messages);
                });
            }
        }
    }

    /// Queues a device's messages behind those it sent before. Offline,
    /// the device drops them (see the module doc); the report they hold
    /// is told as they are handed to the client.
    fn send_in_order(&mut self, device: &str, batch: Batch) {
        let (client, reports, online) = (&self.client, &self.reports, &self.online);
        let queue = self.queues.entry(device.to_owned()).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
            let (client, reports, online) = (client.clone(), reports.clone(), online.clone());
            let device = device.to_owned();
            tokio::spawn(async move {
                while let Some(batch) = rx.recv().await {
                    tokio::time::sleep_until(batch.at).await;
                    let offline = !online.load(Ordering::SeqCst);
                    if let Some((relay_id, state)) = &batch.report {
                        let at = Instant::now();
                        for message in batch.messages.iter().filter(|m| m.role == Role::Report) {
                            let _ = reports.send(SimReport {
                                relay_id: relay_id.clone(),
                                topic: message.topic.clone(),
                                state: *state,
                                at,
                                offline,
                            });
                        }
                    }
                    if offline {
                        tracing::debug!("relay-sim: {device} is offline: its report is dropped");
                        continue;
                    }
                    publish_all(&client, &batch.messages);
                }
            });
            tx
        });
        let _ = queue.send(batch);
    }
}

/// The device's answer to a request it acted on: the text recorded and the
/// messages, in order; `None` when there is nowhere to answer (and, for
/// kinds that report, never).
fn answer(
    relay: &RelayConfig,
    request: &Request,
    before: RelayState,
    after: RelayState,
    failing: bool,
) -> Option<(String, Vec<Outgoing>)> {
    match relay.kind {
        Kind::Mqtt5 => {
            let text = mqtt5::answer_text(relay, &request.command, after, failing);
            let topic = request.response_topic.clone()?;
            let message = mqtt5::answer(topic, request.correlation.clone(), &text);
            Some((text, vec![message]))
        }
        Kind::Shelly => {
            let call = request.call.as_ref()?;
            let body = if failing {
                Err(shelly::RpcError {
                    code: shelly::NOT_FOUND,
                    message: FAIL_TEXT.to_owned(),
                })
            } else {
                shelly::command(call)
                    .map(|command| shelly::result(&command, relay.switch, before, after))
            };
            let reply = shelly::answer(&relay.device, call, body)?;
            let text = String::from_utf8_lossy(&reply.payload).into_owned();
            let mut messages = vec![reply];
            if after != before {
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default();
                messages.push(shelly::notify_status(
                    &relay.device,
                    relay.switch,
                    after,
                    ts,
                ));
            }
            Some((text, messages))
        }
        Kind::Tasmota => {
            let response = request
                .response_topic
                .clone()
                .map(|topic| (topic, request.correlation.clone()));
            let messages = tasmota::answer(relay, after, response);
            Some((tasmota::result_payload(relay, after), messages))
        }
        Kind::State => {
            let report = state::report(relay, after);
            Some((state::payload(relay, after).to_owned(), vec![report]))
        }
    }
}

/// Publishes without awaiting (never await next to the loop that polls).
fn publish_all(client: &AsyncClient, messages: &[Outgoing]) {
    for message in messages {
        let properties = PublishProperties {
            correlation_data: message.correlation.clone(),
            ..Default::default()
        };
        if let Err(e) = client.try_publish_with_properties(
            message.topic.clone(),
            QoS::AtLeastOnce,
            message.retain,
            message.payload.clone(),
            properties,
        ) {
            tracing::warn!("relay-sim: cannot answer on {}: {e}", message.topic);
        }
    }
}
