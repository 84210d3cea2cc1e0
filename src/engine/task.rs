//! The engine task: I/O only. It owns the MQTT client and the event
//! loop's reports, the correlation table, the outbox and the relays'
//! statuses; what an answer, a timeout or a drop *means* is decided in
//! [`super::decide`], how a kind of device is spoken to in
//! [`super::kinds`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Publish;
use tokio::sync::mpsc;

use super::loading::{StoreSlot, load_store};
use super::outbox::{Held, Outbox};
use super::screen::{self, IgnoredLog};
use super::{
    Command, ConnectionState, Event, HELD_PAST_DEADLINE, Wake, decide, kinds, sleep_until,
};
use crate::config::Config;
use crate::mqtt;
use crate::pending::{AlreadyPending, PendingRequests, Resolution};
use crate::protocol::{Action, CorrelationId};
use crate::relay::{Failure, RelayStatus};
use crate::store::Record;

pub(super) struct Engine {
    /// Broker and relays; indices into `relays` name relays everywhere.
    pub(super) config: Arc<Config>,
    /// Each relay's state machine, same order as `config.relays`.
    pub(super) statuses: Vec<RelayStatus>,
    /// Requests in flight and recently ended.
    pub(super) pending: PendingRequests,
    /// Current connection state (requests only when `Connected`).
    pub(super) connection: ConnectionState,
    /// The way to publish and subscribe (the event loop runs elsewhere).
    pub(super) client: AsyncClient,
    /// Where devices answer this engine.
    pub(super) response_topic: String,
    /// Sent as the `operator` user property and kept in the audit log.
    pub(super) operator: String,
    /// Events out.
    pub(super) events: mpsc::UnboundedSender<Event>,
    /// Wakes the UI after events.
    pub(super) wake: Wake,
    /// Durable writes, off the engine's thread.
    pub(super) store: StoreSlot,
    /// Rate-limited log of ignored responses.
    pub(super) ignored: IgnoredLog,
    /// Requests not yet handed to the client, and flow control.
    pub(super) outbox: Outbox,
    /// When to try the response-topic subscription again (the client's
    /// queue refused it).
    pub(super) resubscribe_at: Option<Instant>,
}

impl Engine {
    pub(super) async fn run(
        mut self,
        eventloop: rumqttc::v5::EventLoop,
        label: String,
        fixed_client_id: bool,
        mut commands: mpsc::UnboundedReceiver<Command>,
        data_dir: Option<PathBuf>,
        history: usize,
    ) {
        self.emit(Event::Connection(ConnectionState::Connecting));
        // Connect and load the store at the same time: a one-shot command
        // must not pay for both in sequence.
        let mut network = Some(mqtt::spawn_event_loop(eventloop, label, fixed_client_id));
        let mut loading = data_dir.map(|dir| {
            self.store = StoreSlot::Loading(Vec::new());
            tokio::task::spawn_blocking(move || load_store(&dir, history))
        });
        loop {
            let deadline = self.pending.next_deadline();
            tokio::select! {
                biased;
                loaded = async { loading.as_mut().expect("guarded").await }, if loading.is_some() => {
                    loading = None;
                    self.store_loaded(loaded);
                }
                net = async { network.as_mut().expect("guarded").recv().await }, if network.is_some() => match net {
                    Some(net) => self.on_network(net),
                    None => {
                        // The event-loop task ended: after a fatal error (the
                        // state already says why) or because it crashed. The
                        // engine keeps serving commands (answering "not
                        // sent") and polls nothing more.
                        network = None;
                        self.network_ended();
                    }
                },
                command = commands.recv() => match command {
                    Some(Command::Request { relay, action }) => self.on_request(relay, action),
                    Some(Command::Reconfigure(config)) => self.reconfigure(config),
                    Some(Command::Crash) => panic!("crash requested by a test"),
                    Some(Command::Shutdown) | None => break,
                },
                _ = sleep_until(deadline), if deadline.is_some() => self.on_deadline(),
                _ = sleep_until(self.resubscribe_at), if self.resubscribe_at.is_some() => {
                    self.resubscribe_at = None;
                    self.subscribe();
                }
            }
        }
        if let Some(loading) = loading {
            self.store_loaded(loading.await);
        }
        self.shutdown(network).await;
    }

    pub(super) fn emit(&self, event: Event) {
        if self.events.send(event).is_ok() {
            (self.wake)();
        }
    }

    pub(super) fn emit_status(&self, relay: usize) {
        self.emit(Event::Relay {
            relay,
            status: self.statuses[relay].clone(),
        });
    }

    fn on_request(&mut self, relay: usize, action: Action) {
        let Some(relay_config) = self.config.relays.get(relay) else {
            tracing::warn!("request for relay #{relay}, which is not configured");
            return;
        };
        if self.pending.is_pending(relay) {
            // One request in flight per relay: this one is not sent, and
            // says so at once (a caller waiting for its outcome must not
            // wait forever). The request in flight is untouched.
            tracing::info!("{}: a request is already in flight", relay_config.id);
            let request = Self::request(&self.config, &self.operator, relay, action, None);
            let ended = decide::busy(&request, SystemTime::now());
            self.apply(relay, ended, false);
            return;
        }
        if action == Action::Query && !relay_config.can_query() {
            let reason = format!(
                "relay {} has no payload_query configured, so it cannot be asked its state",
                relay_config.id
            );
            self.finish_failed(relay, action, Failure::NotSent { reason }, None, None);
            return;
        }
        if !self.connection.is_ready() {
            let reason = match &self.connection {
                ConnectionState::Failed { reason } => format!("not connected: {reason}"),
                ConnectionState::Reconnecting { reason, .. } => format!("not connected ({reason})"),
                _ => "not connected to the broker yet".to_owned(),
            };
            self.finish_failed(relay, action, Failure::NotSent { reason }, None, None);
            return;
        }
        let timeout = self.config.timeout(relay_config);
        let id = CorrelationId::random();
        let now = Instant::now();
        if let Err(AlreadyPending) = self.pending.start(id, relay, action, now, timeout) {
            return; // checked above
        }
        let _ = self.statuses[relay].begin(action, SystemTime::now(), timeout);
        tracing::debug!("{} <- {action} ({id:?})", relay_config.id);
        self.emit_status(relay);
        self.outbox.hold(Held {
            id,
            relay,
            action,
            deadline: now + timeout,
        });
        self.pump();
    }

    /// Hands waiting requests to the client while the broker's window has
    /// room, each with the time it has left as its expiry.
    pub(super) fn pump(&mut self) {
        if !self.connection.is_ready() {
            return;
        }
        while let Some(held) = self.outbox.next() {
            if !self.pending.is_in_flight(&held.id) {
                continue; // ended already (it was reported then)
            }
            let now = Instant::now();
            let left = held.deadline.saturating_duration_since(now);
            if left.is_zero() {
                // Its deadline passes now: the timer ends it as never sent.
                self.outbox.hold_again(held);
                break;
            }
            let relay_config = &self.config.relays[held.relay];
            let context = kinds::RequestContext {
                id: held.id,
                response_topic: &self.response_topic,
                left,
                expires_at: SystemTime::now() + left,
                operator: &self.operator,
            };
            let Some(encoded) = kinds::of(relay_config).encode(relay_config, held.action, &context)
            else {
                continue; // checked when it was asked for
            };
            let handed = self.client.try_publish_with_properties(
                encoded.topic,
                QoS::AtLeastOnce,
                false,
                encoded.payload,
                encoded.properties,
            );
            match handed {
                Ok(()) => self.outbox.packets.handed_over(held.id),
                Err(e) => {
                    let _ = self.pending.cancel(&held.id);
                    let reason = format!("the MQTT client could not queue the request ({e})");
                    self.not_sent(held, reason);
                }
            }
        }
    }

    fn on_deadline(&mut self) {
        let now = Instant::now();
        for (id, request) in self.pending.expire(now) {
            let failure = if self.outbox.take(&id) {
                // Never handed to the broker, so no device can answer it.
                let _ = self.pending.resolve(&id, now);
                Failure::NotSent {
                    reason: HELD_PAST_DEADLINE.to_owned(),
                }
            } else {
                Failure::NoResponse {
                    after: request.deadline.duration_since(request.sent),
                }
            };
            self.finish_failed(request.relay, request.action, failure, None, Some(id));
        }
        self.pump();
    }

    fn ignore(&mut self, now: Instant, why: &dyn std::fmt::Display) {
        if let Some((count, reason)) = self.ignored.note(now, why) {
            self.emit(Event::Ignored { count, reason });
        }
    }

    pub(super) fn on_publish(&mut self, publish: Publish) {
        let now = Instant::now();
        let id = match screen::screen(&publish, &self.response_topic) {
            Ok(id) => id,
            Err(why) => return self.ignore(now, &why),
        };
        let (request, late) = match self.pending.resolve(&id, now) {
            Resolution::Current(request) => (request, false),
            Resolution::Late(request) => (request, true),
            Resolution::Unknown => {
                let why = format!("unknown, foreign or duplicate correlation {id:?}");
                return self.ignore(now, &why);
            }
        };
        let rtt = now.duration_since(request.sent);
        let relay_config = &self.config.relays[request.relay];
        let reply = kinds::of(relay_config).read_answer(relay_config, &publish.payload);
        if late {
            tracing::info!("{}: late answer after {rtt:?}", relay_config.id);
        }
        let context = Self::request(
            &self.config,
            &self.operator,
            request.relay,
            request.action,
            Some(id),
        );
        let status = &mut self.statuses[request.relay];
        let ended = decide::answered(status, &context, reply, rtt, SystemTime::now(), late);
        self.apply(request.relay, ended, late);
    }

    /// The request as the decision core sees it.
    pub(super) fn request<'a>(
        config: &'a Config,
        operator: &'a str,
        relay: usize,
        action: Action,
        id: Option<CorrelationId>,
    ) -> decide::Request<'a> {
        decide::Request {
            relay_id: &config.relays[relay].id,
            action,
            id,
            operator,
        }
    }

    /// Carries out a decision: store, status event, outcome event.
    pub(super) fn apply(&mut self, relay: usize, ended: decide::Ended, late: bool) {
        if let Some(ack) = ended.ack {
            self.record(Record::Ack(ack));
        }
        self.record(Record::Audit(ended.entry.clone()));
        if ended.status_changed {
            self.emit_status(relay);
        }
        let entry = ended.entry;
        self.emit(if late {
            Event::Late { relay, entry }
        } else {
            Event::Finished { relay, entry }
        });
    }

    pub(super) fn record(&mut self, record: Record) {
        match &mut self.store {
            StoreSlot::Ready(store) => store.send(record),
            StoreSlot::Loading(buffer) => buffer.push(record),
            StoreSlot::Off => {}
        }
    }

    /// A request held back, never handed to the client, ends.
    pub(super) fn not_sent(&mut self, held: Held, reason: String) {
        let failure = Failure::NotSent { reason };
        self.finish_failed(held.relay, held.action, failure, None, Some(held.id));
    }

    pub(super) fn finish_failed(
        &mut self,
        relay: usize,
        action: Action,
        failure: Failure,
        rtt: Option<Duration>,
        id: Option<CorrelationId>,
    ) {
        let context = Self::request(&self.config, &self.operator, relay, action, id);
        let status = &mut self.statuses[relay];
        let ended = decide::failed(status, &context, failure, rtt, SystemTime::now());
        self.apply(relay, ended, false);
    }
}
