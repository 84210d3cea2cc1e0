//! Simulated devices: every relay of a configuration answers requests the
//! way its kind of device does, with optional faults (latency, drops,
//! duplicates, garbage, wrong correlation, permanent failure); tells
//! changes made at the device (a press of its button, [`SimHandle::press`])
//! on its own state topics; and is reachable or not, through a last will
//! of its own ([`SimHandle::set_online`]). Used by `relay-sim`, the demo
//! and the tests.
//!
//! Layout: this file holds the options, what the devices did
//! ([`SimRecord`], [`SimReport`]) and the handle. `devices.rs` is the one
//! task that serves every relay over one MQTT client (one subscription
//! per request topic): routing a message to its relay, the faults, the
//! relay's state. `send.rs` is how the messages leave (in order, or when
//! due) and are told. `presence.rs` keeps, per availability topic, the
//! device's own connection whose Last Will says it is gone. Each kind is
//! a file of pure functions that read a request and build the device's
//! messages: `mqtt5.rs` (this project's contract), `shelly.rs` (JSON-RPC
//! on `<device>/rpc`), `tasmota.rs` (`cmnd/…` answered on `stat/…`),
//! `state.rs` (a command topic and a state topic).
//!
//! Order: a device that tells its state (Tasmota, a state device, a
//! Shelly's notifications, an `mqtt5` device with a `state_topic`) sends
//! those messages in the order it acted, however long each waits (one
//! queue per device), as one device on one connection does; otherwise the
//! last report could be an older one and the device would lie about its
//! own state. Answers tied to their request (the `mqtt5` contract,
//! Shelly's RPC) may overtake each other, which the panel must cope with.
//! While the simulator is offline such a device drops what it would send,
//! as Tasmota and ESPHome do, instead of a client queue delivering it
//! after the reconnect, long after the device said it.
//!
//! Reachability: a device with an availability topic (every Shelly and
//! Tasmota; `mqtt5` and state relays that name one) has a presence
//! connection whose will is its offline payload, and which publishes its
//! online payload on every CONNACK, both retained. Cut off
//! ([`SimHandle::set_online`] `false`), that connection drops without a
//! DISCONNECT, so the *broker* publishes the will; the device then neither
//! acts on nor answers requests ([`SimReply::Offline`]) and publishes
//! nothing (its button still works: what it would say is dropped). Back
//! on the network it connects, says it is online, and announces its state
//! where its kind does (state devices, `mqtt5` with a `state_topic`).
//! Stopping the simulator cuts every device off the same way.
//!
//! What the devices did is told on two channels: one [`SimRecord`] per
//! request handled, and (from [`spawn_with_reports`]) one [`SimReport`]
//! each time a device publishes its state on its own state topic (or drops
//! it, offline), with the time, for checks that need to know *when* a
//! device said something (a report is tied to no request).

mod devices;
mod mqtt5;
mod presence;
mod send;
mod shelly;
mod state;
mod tasmota;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::mqtt;
use crate::protocol::{self, RelayState};
use devices::{Command, Devices};
use presence::Presence;
use send::{Outbox, Outgoing, Role, Source};

pub use shelly::{
    INVALID_ARGUMENT as SHELLY_INVALID_ARGUMENT, NO_HANDLER as SHELLY_NO_HANDLER,
    NOT_FOUND as SHELLY_NOT_FOUND,
};

/// Text a relay listed in `--fail` answers with (a Shelly: as the message
/// of error [`SHELLY_NOT_FOUND`]).
pub const FAIL_TEXT: &str = "relay coil fault (simulated)";

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
/// command, and when it connects), a Shelly's `NotifyStatus` on
/// `<device>/events/rpc` and `<device>/status/switch:<n>`, an `mqtt5`
/// device's `state_topic` — after a request, a press of its button, or on
/// connecting. One per message: a duplicated report is two.
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
    /// The simulator was offline then, or the device cut off from the
    /// network: the device dropped the report (see the module doc),
    /// nobody heard it.
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
    /// The device was cut off from the network ([`SimHandle::set_online`]):
    /// it never heard the request; not actuated, not answered.
    Offline,
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
    /// True while the main connection is up and subscribed to every
    /// request topic.
    ready: watch::Receiver<bool>,
    /// Each relay's current state, by id.
    states: Arc<Mutex<HashMap<String, RelayState>>>,
    /// Relay id → index into the configuration's relays.
    relays: HashMap<String, usize>,
    /// The devices' presences, one per availability topic.
    presences: Vec<Arc<Presence>>,
    /// Per relay: its presence, an index into `presences` (`None`: no
    /// availability topic).
    presence_of: Vec<Option<usize>>,
    /// Tells the devices' task what happened at a device (a press).
    control: mpsc::UnboundedSender<Control>,
}

/// What the handle (or a presence) asks of the devices' task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// Relay (index) was switched at its device by its button: its device
    /// tells its state, source `button`.
    Press(usize),
    /// Presence (index) is connected again after being cut off: its
    /// devices announce their state where their kind does.
    Back(usize),
}

impl SimHandle {
    /// Waits until ready ([`SimHandle::is_ready`]).
    pub async fn ready(&mut self) {
        loop {
            if self.ready.wait_for(|ready| *ready).await.is_err() {
                // The devices' task has ended: never ready again.
                return;
            }
            for presence in &self.presences {
                presence.settled().await;
            }
            if self.is_ready() {
                return;
            }
        }
    }

    /// Whether the simulator is ready right now: connected and subscribed
    /// to every request topic, and every device on the network connected
    /// with its online message acknowledged by the broker (retained there
    /// for every later subscriber); a device cut off
    /// ([`SimHandle::set_online`]) counts once its connection is gone.
    /// After `set_online`, it says when the change is done.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow() && self.presences.iter().all(|p| p.is_settled())
    }

    /// The device-side state of a relay.
    pub fn state(&self, relay_id: &str) -> Option<RelayState> {
        self.states.lock().ok()?.get(relay_id).copied()
    }

    /// Someone pressed the relay's button at its device (a wall switch):
    /// the relay toggles at once ([`SimHandle::state`] says so on return)
    /// and its device tells it the way its kind does, source `button`:
    /// a Shelly a `NotifyStatus` on `<device>/events/rpc` and its status on
    /// `<device>/status/switch:<n>`; a Tasmota `{"POWER<n>":"ON"}` on
    /// `stat/<device>/RESULT` then `ON` on `stat/<device>/POWER<n>`; a
    /// state device its state on `state_topic`, retained; an `mqtt5` relay
    /// with a `state_topic` `payload_on` / `payload_off` there, retained,
    /// with the User Property `source` = `button` (without one, nothing:
    /// it has nowhere to say it). Behind what the device was already
    /// sending; nothing while it is cut off from the network. False for an
    /// unknown id.
    pub fn press(&self, relay_id: &str) -> bool {
        let Some(&relay) = self.relays.get(relay_id) else {
            return false;
        };
        {
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            let state = states.entry(relay_id.to_owned()).or_insert(RelayState::Off);
            *state = toggled(*state);
        }
        // The task tells the state the relay is in when it gets there, so
        // the last message told is the truth whatever came in between.
        let _ = self.control.send(Control::Press(relay));
        true
    }

    /// Puts the relay's device on the network (`true`) or cuts it off —
    /// every relay sharing its availability topic. Cut off, its presence
    /// connection drops without a DISCONNECT, so the broker publishes the
    /// will (the kind's offline payload, retained); until it is back the
    /// device neither acts on nor answers requests ([`SimReply::Offline`])
    /// and publishes nothing. Back, it connects again, publishes its
    /// online payload (retained), and announces its state where its kind
    /// does (state devices, `mqtt5` with a `state_topic`; retained).
    /// Returns at once; [`SimHandle::ready`] waits until it is done. False
    /// for an unknown id, or a relay without an availability topic (it
    /// cannot go offline by itself).
    pub fn set_online(&self, relay_id: &str, online: bool) -> bool {
        let Some(presence) = self
            .relays
            .get(relay_id)
            .and_then(|&relay| self.presence_of[relay])
        else {
            return false;
        };
        self.presences[presence].set_up(online);
        true
    }

    /// Whether the relay's device is on the network: `None` for an unknown
    /// id or a relay without an availability topic.
    pub fn is_online(&self, relay_id: &str) -> Option<bool> {
        let presence = self.presence_of[*self.relays.get(relay_id)?]?;
        Some(self.presences[presence].is_up())
    }

    /// Stops the simulator: the devices' connections drop without a
    /// DISCONNECT (their wills fire, as for a power cut); the main one
    /// disconnects.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for presence in &self.presences {
            presence.stop();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The other state.
fn toggled(state: RelayState) -> RelayState {
    match state {
        RelayState::On => RelayState::Off,
        RelayState::Off => RelayState::On,
    }
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
    let broker = &options.config.broker;
    let (client, eventloop) = mqtt::client(broker, &client_id)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = watch::channel(false);
    let (records_tx, records_rx) = mpsc::unbounded_channel();
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let relays = options.config.relays;
    let states: HashMap<String, RelayState> = relays
        .iter()
        .map(|r| (r.id.clone(), RelayState::Off))
        .collect();
    let states = Arc::new(Mutex::new(states));

    let presences: Vec<Arc<Presence>> = presence::of(&relays).into_iter().map(Arc::new).collect();
    let mut presence_of = vec![None; relays.len()];
    for (index, presence) in presences.iter().enumerate() {
        for &relay in &presence.relays {
            presence_of[relay] = Some(index);
        }
    }
    for (index, presence) in presences.iter().enumerate() {
        // Its own client id, derived from the simulator's: one device, one
        // session.
        let id = format!("{client_id}-p{index}");
        let started = presence::spawn(presence.clone(), index, broker, &id, control_tx.clone());
        if let Err(e) = started {
            // Those already started end with the simulator's task.
            presences.iter().for_each(|p| p.stop());
            return Err(e);
        }
    }

    let handle = SimHandle {
        stop: Some(stop_tx),
        ready: ready_rx,
        states: states.clone(),
        relays: relays
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect(),
        presences: presences.clone(),
        presence_of: presence_of.clone(),
        control: control_tx,
    };
    let devices = Devices::new(
        relays,
        options.faults,
        states,
        Outbox::new(client, reports_tx),
        records_tx,
        presences,
        presence_of,
    );
    tokio::spawn(devices.run(eventloop, client_id, stop_rx, ready_tx, control_rx));
    Ok((handle, records_rx, reports_rx))
}
