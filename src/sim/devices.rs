//! The one task that serves every simulated relay over the simulator's
//! main MQTT client (one subscription per request topic): routing a
//! message to its relay (`requests.rs`: reading and serving it), and
//! sending what its device says the way its kind does. It also carries
//! out presses of a device's button and announces a device's state when
//! it connects (see the module doc of `sim`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Filter;
use tokio::sync::{mpsc, watch};

use super::presence::Presence;
use super::send::{Batch, Outbox, Outgoing, Role, Source};
use super::{Control, Faults, SimRecord, mqtt5, shelly, state, tasmota};
use crate::config::{Kind, RelayConfig};
use crate::mqtt::{self, NetEvent};
use crate::protocol::RelayState;

mod requests;

pub(super) use requests::Command;

/// Filters per SUBSCRIBE packet (keeps packets small for 10,000 relays).
const FILTERS_PER_SUBSCRIBE: usize = 500;

/// What listens on a subscribed topic.
#[derive(Debug, Clone)]
enum Route {
    /// One relay (`mqtt5` request topic, Tasmota `cmnd/…/POWER<n>`, state
    /// device command topic): index into the relays.
    Relay(usize),
    /// A Shelly's `<device>/rpc`, shared by its switches.
    Shelly(String),
}

/// The simulated devices, served by one task ([`Devices::run`]).
pub(super) struct Devices {
    /// The simulated relays.
    relays: Vec<RelayConfig>,
    /// Subscribed topic → what listens there.
    routes: HashMap<String, Route>,
    /// A Shelly's (topic prefix, switch id) → index into `relays`.
    switches: HashMap<(String, u32), usize>,
    /// Faults to inject.
    faults: Faults,
    /// Device-side state of each relay, shared with the handle (which
    /// toggles it for a press).
    states: Arc<Mutex<HashMap<String, RelayState>>>,
    /// Decides faults (seedable for reproducible runs).
    rng: StdRng,
    /// Publishes what the devices send, telling their reports.
    outbox: Outbox,
    /// What each device did.
    records: mpsc::UnboundedSender<SimRecord>,
    /// The devices' presences (availability topics and their wills).
    presences: Vec<Arc<Presence>>,
    /// Per relay: its presence, an index into `presences` (`None`: the
    /// relay has no availability topic, it is never cut off alone).
    presence_of: Vec<Option<usize>>,
}

impl Devices {
    /// The devices of `relays`, answering over `outbox`'s client.
    pub(super) fn new(
        relays: Vec<RelayConfig>,
        faults: Faults,
        states: Arc<Mutex<HashMap<String, RelayState>>>,
        outbox: Outbox,
        records: mpsc::UnboundedSender<SimRecord>,
        presences: Vec<Arc<Presence>>,
        presence_of: Vec<Option<usize>>,
    ) -> Self {
        let mut routes = HashMap::new();
        let mut switches = HashMap::new();
        for (i, relay) in relays.iter().enumerate() {
            let route = match relay.kind {
                Kind::Shelly => {
                    switches.insert((relay.device.clone(), relay.switch), i);
                    Route::Shelly(relay.device.clone())
                }
                Kind::Mqtt5 | Kind::Tasmota | Kind::State => Route::Relay(i),
            };
            routes.insert(relay.publish_topic(), route);
        }
        let rng = match faults.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Devices {
            relays,
            routes,
            switches,
            faults,
            states,
            rng,
            outbox,
            records,
            presences,
            presence_of,
        }
    }

    /// Serves until told to stop (or a fatal connection error); then cuts
    /// every presence off (their wills fire) and disconnects the main
    /// client.
    pub(super) async fn run(
        mut self,
        eventloop: rumqttc::v5::EventLoop,
        label: String,
        mut stop: tokio::sync::oneshot::Receiver<()>,
        ready: watch::Sender<bool>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut network = mqtt::spawn_event_loop(eventloop, label, false);
        let mut awaiting_subacks = 0usize;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                Some(control) = control.recv() => match control {
                    Control::Press(relay) => self.press(relay),
                    Control::Back(presence) => self.back(presence),
                },
                event = network.recv() => match event {
                    None => break,
                    Some(NetEvent::Connected(_)) => {
                        ready.send_replace(false);
                        self.outbox.set_online(true);
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
                        self.outbox.set_online(false);
                        if fatal {
                            tracing::error!("relay-sim: {reason}");
                            break;
                        }
                    }
                },
            }
        }
        for presence in &self.presences {
            presence.stop();
        }
        let _ = self.outbox.client().try_disconnect();
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
            match self.outbox.client().try_subscribe_many(filters) {
                Ok(()) => sent += 1,
                Err(e) => tracing::error!("relay-sim: cannot subscribe: {e}"),
            }
        }
        sent
    }

    /// Devices that announce their state (state devices, `mqtt5` relays
    /// with a `state_topic`) publish it, retained, whenever the simulator
    /// connects — all but those cut off from the network.
    fn announce_states(&mut self) {
        for relay in 0..self.relays.len() {
            if !self.is_up(relay) {
                continue;
            }
            if let Some(batch) = self.announcement(relay) {
                // Straight to the client, ahead of the SUBSCRIBEs (not
                // through the send queues, which publish from a task of
                // their own): the broker stores the states before it
                // acknowledges the subscriptions, so `ready` means
                // announced. Reports still queued from before carry states
                // no newer than this one, in order: the last one published
                // is still the device's state.
                self.outbox.now(&batch);
            }
        }
    }

    /// Presence number `presence` is connected again after being cut off:
    /// its devices that announce their state do, behind what they queued.
    fn back(&mut self, presence: usize) {
        let Some(presence) = self.presences.get(presence).cloned() else {
            return;
        };
        for &relay in &presence.relays {
            if let Some(batch) = self.announcement(relay) {
                self.outbox
                    .in_order(&device_key(&self.relays[relay]), batch);
            }
        }
    }

    /// What relay `relay`'s device announces on connecting, if its kind
    /// does: its state, retained, tied to no change.
    fn announcement(&self, relay: usize) -> Option<Batch> {
        let config = &self.relays[relay];
        let state = self.state_of(&config.id);
        let message = match config.kind {
            Kind::State => state::report(config, state),
            Kind::Mqtt5 => mqtt5::report(config, state, None)?,
            Kind::Shelly | Kind::Tasmota => return None,
        };
        Some(self.batch(relay, vec![message], state))
    }

    /// Someone pressed relay `relay`'s button (the handle has toggled its
    /// state): its device tells its state as its kind does, source
    /// `button`, behind what it queued before. The state told is the one
    /// the relay is in now, so the last message is always the truth even
    /// when a request switched it meanwhile.
    fn press(&mut self, relay: usize) {
        let Some(config) = self.relays.get(relay) else {
            return;
        };
        let state = self.state_of(&config.id);
        let messages = match config.kind {
            Kind::Tasmota => tasmota::answer(config, state, None),
            Kind::State => vec![state::report(config, state)],
            Kind::Shelly | Kind::Mqtt5 => notices(config, state, Source::Button),
        };
        if messages.is_empty() {
            // An `mqtt5` relay without a state topic has nowhere to say it.
            return;
        }
        let key = device_key(config);
        let batch = self.batch(relay, messages, state);
        self.outbox.in_order(&key, batch);
    }

    /// A batch of relay `relay`'s messages telling `state`, due now.
    fn batch(&self, relay: usize, messages: Vec<Outgoing>, state: RelayState) -> Batch {
        Batch {
            at: tokio::time::Instant::now(),
            messages,
            relay_id: self.relays[relay].id.clone(),
            state,
            garbage: false,
            presence: self.presence(relay),
        }
    }

    /// Relay `relay`'s presence, if it has one.
    fn presence(&self, relay: usize) -> Option<Arc<Presence>> {
        self.presence_of
            .get(relay)
            .copied()
            .flatten()
            .map(|p| self.presences[p].clone())
    }

    /// Whether relay `relay`'s device is on the network (a relay without
    /// an availability topic always is).
    fn is_up(&self, relay: usize) -> bool {
        self.presence(relay).is_none_or(|p| p.is_up())
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn state_of(&self, relay_id: &str) -> RelayState {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.get(relay_id).copied().unwrap_or(RelayState::Off)
    }

    /// Sends a device's batch the way its kind does: a device that only
    /// reports (Tasmota, a state device) everything in order; one with
    /// answers tied to their request (`mqtt5`, Shelly) its answers when
    /// due, free to overtake each other, and its state messages in order.
    fn send(&mut self, relay: &RelayConfig, batch: Batch) {
        let key = device_key(relay);
        match relay.kind {
            Kind::Tasmota | Kind::State => self.outbox.in_order(&key, batch),
            Kind::Mqtt5 | Kind::Shelly => {
                let (tied, notices): (Vec<Outgoing>, Vec<Outgoing>) = batch
                    .messages
                    .into_iter()
                    .partition(|m| m.role == Role::Tied);
                let split = |messages| Batch {
                    at: batch.at,
                    messages,
                    relay_id: batch.relay_id.clone(),
                    state: batch.state,
                    garbage: batch.garbage,
                    presence: batch.presence.clone(),
                };
                if !tied.is_empty() {
                    self.outbox.when_due(split(tied));
                }
                if !notices.is_empty() {
                    self.outbox.in_order(&key, split(notices));
                }
            }
        }
    }
}

/// The name of the device behind `relay` and of its send queue: the
/// Shelly or Tasmota device (shared by its relays), or the relay itself.
fn device_key(relay: &RelayConfig) -> String {
    match relay.kind {
        Kind::Shelly => format!("shelly/{}", relay.device),
        Kind::Tasmota => format!("tasmota/{}", relay.device),
        Kind::Mqtt5 => format!("mqtt5/{}", relay.id),
        Kind::State => format!("state/{}", relay.id),
    }
}

/// The state messages a Shelly or an `mqtt5` device with a `state_topic`
/// sends when its relay changed to `after` by `source`, besides any
/// answer (empty for the kinds whose answer is their report).
fn notices(relay: &RelayConfig, after: RelayState, source: Source) -> Vec<Outgoing> {
    match relay.kind {
        Kind::Shelly => {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            shelly::notices(&relay.device, relay.switch, after, source, ts).into()
        }
        Kind::Mqtt5 => mqtt5::report(relay, after, Some(source))
            .into_iter()
            .collect(),
        Kind::Tasmota | Kind::State => Vec::new(),
    }
}
