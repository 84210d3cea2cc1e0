//! Requests as a device reads and serves them: what a message asks
//! ([`Command`]), the faults, the relay's state, and the answer its kind
//! gives ([`answer`]), with the state messages a change also brings.

use bytes::Bytes;
use rand::Rng;
use rumqttc::v5::mqttbytes::v5::Publish;

use super::{Devices, Route, notices};
use crate::config::{Kind, RelayConfig};
use crate::protocol::{self, RelayState};
use crate::sim::send::{Outgoing, Role, Source};
use crate::sim::{FAIL_TEXT, SimRecord, SimReply, mqtt5, shelly, state, tasmota, toggled};

/// What a request asks of a relay, as its device reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::sim) enum Command {
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

impl Devices {
    /// Reads a message on a subscribed topic and serves the request in
    /// it.
    pub(super) fn handle(&mut self, publish: Publish) {
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
    /// switches are answered with the firmware's error (if they can be,
    /// and the device is on the network) and not recorded: no relay was
    /// addressed.
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
            let online = format!("{device}/online");
            let up = self
                .presences
                .iter()
                .find(|p| p.topic == online)
                .is_none_or(|p| p.is_up());
            if let Some(answer) = shelly::answer(device, &call, Err(error))
                && up
            {
                crate::sim::send::publish_all(self.outbox.client(), &[answer]);
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
        // Cut off from the network, the device never hears it (the broker
        // delivers it to the simulator all the same).
        if !self.is_up(request.relay) {
            record(before, false, SimReply::Offline);
            return;
        }
        if self.chance(self.faults.drop) {
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
        // Read and switched under one lock: a press on the handle's side
        // lands before or after, never in between (and is not lost).
        let (before, after) = {
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            let before = states.get(&relay.id).copied().unwrap_or(RelayState::Off);
            let after = match &request.command {
                _ if failing => before,
                Command::Switch(state) => *state,
                Command::Toggle => toggled(before),
                Command::Query | Command::Unknown(_) | Command::Ignore(_) => before,
            };
            states.insert(relay.id.clone(), after);
            (before, after)
        };
        // What else the device says of a change (Shelly's notifications,
        // an `mqtt5` device's state topic): sent even when the request
        // named nowhere to answer, and left alone by the faults.
        let notices = if after != before {
            notices(&relay, after, Source::Mqtt)
        } else {
            Vec::new()
        };
        let Some((text, mut messages)) = answer(&relay, &request, before, after, failing) else {
            record(after, false, SimReply::NoResponseTopic);
            let batch = self.batch(request.relay, notices, after);
            self.send(&relay, batch);
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
            for message in messages.iter_mut() {
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
                messages = messages.into_iter().flat_map(|m| [m.clone(), m]).collect();
            }
            SimReply::Answer {
                payload: text,
                copies,
            }
        };
        let garbage = reply == SimReply::Garbage;
        record(after, correlated, reply);

        let mut delay = self.faults.latency;
        if !self.faults.jitter.is_zero() {
            delay += self.faults.jitter.mul_f64(self.rng.random::<f64>());
        }
        messages.extend(notices);
        let mut batch = self.batch(request.relay, messages, after);
        batch.at += delay;
        batch.garbage = garbage;
        self.send(&relay, batch);
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
            Some((text, vec![reply]))
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
