//! The engine task: I/O only. It owns the MQTT client and the event
//! loop's reports, the correlation table, the outbox and the relays'
//! statuses; what an answer, a timeout or a drop *means* is decided in
//! [`super::decide`], how a kind of device is spoken to in
//! [`super::kinds`].
//!
//! What arrives is sorted by topic: the response topic (replies by
//! Correlation Data), a kind's panel topic (Shelly's `<src>/rpc`, replies
//! by RPC id), or a relay's report topic (state messages, tied to
//! nothing: they count only for a request in flight that was already
//! handed to the client, never when retained).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Publish;
use tokio::sync::mpsc;

use super::kinds::{Identified, PanelTopics, Routes};
use super::loading::{StoreSlot, load_store};
use super::outbox::{Held, Outbox};
use super::reports::{self, HeldReports};
use super::screen::{self, IgnoredLog};
use super::{
    Command, ConnectionState, Event, HELD_PAST_DEADLINE, Wake, decide, kinds, sleep_until,
};
use crate::config::{Config, Kind};
use crate::mqtt;
use crate::pending::{AlreadyPending, PendingRequests, Resolution};
use crate::protocol::{Action, CorrelationId};
use crate::relay::{Failure, RelayStatus};
use crate::store::Record;
use crate::store::StoreWriter;

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
    /// This engine's JSON-RPC `src` (Shelly answers on `<src>/rpc`).
    pub(super) rpc_src: String,
    /// The kinds' topics and who reads each, for `config`.
    pub(super) routes: Routes,
    /// Reports waiting for a correlated answer that may follow them.
    pub(super) held: HeldReports,
    /// The topics of each SUBSCRIBE not yet acknowledged, oldest first
    /// (SUBACKs come in the same order).
    pub(super) subscribing: VecDeque<Vec<String>>,
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
            let (writer, loaded) =
                StoreWriter::spawn_opening(move || load_store(&dir, history), self.store_trouble());
            self.store = StoreSlot::Ready(writer);
            loaded
        });
        loop {
            let deadline = [self.pending.next_deadline(), self.held.next_due()]
                .into_iter()
                .flatten()
                .min();
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
        let id = kinds::of(relay_config).new_id();
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
                rpc_src: &self.rpc_src,
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
        // Reports whose wait is over settle first: one held until its
        // request's deadline still counts.
        for (id, held) in self.held.due(now) {
            self.settle_report(id, held);
        }
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
        if publish.topic.as_ref() == self.response_topic.as_bytes() {
            return match screen::screen(&publish, &self.response_topic) {
                Ok(id) => self.answered(id, &publish.payload, now),
                Err(why) => self.ignore(now, &why),
            };
        }
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        if let Some(&kind) = self.routes.panel.get(&topic) {
            return self.on_panel_topic(kind, &topic, &publish, now);
        }
        let mut heard = false;
        if let Some(relays) = self.routes.availability.get(&topic).cloned() {
            heard = true;
            for relay in relays {
                self.on_availability(relay, &topic, &publish);
            }
        }
        if let Some(relays) = self.routes.reports.get(&topic).cloned() {
            heard = true;
            for relay in relays {
                self.on_report(relay, &topic, &publish, now);
            }
        }
        if !heard {
            self.ignore(now, &screen::NotAnAnswer::ForeignTopic(topic));
        }
    }

    /// A message on the last-will topic of `relay`'s device.
    fn on_availability(&mut self, relay: usize, topic: &str, publish: &Publish) {
        let relay_config = &self.config.relays[relay];
        let Some(online) = relay_config.read_availability(&publish.payload) else {
            tracing::debug!(
                "{}: unreadable availability on {topic}: {}",
                relay_config.id,
                crate::protocol::sanitise_device_text(&publish.payload)
            );
            return;
        };
        let status = &mut self.statuses[relay];
        if status.set_availability(online, SystemTime::now(), publish.retain) {
            tracing::info!(
                "{}: device {}",
                relay_config.id,
                if online { "online" } else { "offline" }
            );
            let availability = status.availability;
            self.emit_status(relay);
            self.emit(Event::Availability {
                relay,
                availability,
            });
        }
    }

    /// A reply tied to request `id` (correlated) arrived at `now`.
    fn answered(&mut self, id: CorrelationId, payload: &[u8], now: Instant) {
        let (request, late) = match self.pending.resolve(&id, now) {
            Resolution::Current(request) => (request, false),
            Resolution::Late(request) => (request, true),
            Resolution::Unknown => {
                let why = format!("unknown, foreign or duplicate correlation {id:?}");
                return self.ignore(now, &why);
            }
        };
        let rtt = now.duration_since(request.sent);
        let config = self.config.clone();
        let relay_config = &config.relays[request.relay];
        let kind = kinds::of(relay_config);
        let reply = kind.read_answer(relay_config, request.action, payload);
        if kind.report_wait().is_some() {
            // The answer wins over a report held for it, and its device
            // is known from now on to answer correlated.
            self.held.answered(&id, &relay_config.device);
        }
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

    /// A message on a panel topic of `kind` (Shelly's `<src>/rpc`): a
    /// reply when the kind identifies the request it answers and the
    /// request's relay is of that kind and may have sent it.
    fn on_panel_topic(&mut self, kind: Kind, topic: &str, publish: &Publish, now: Instant) {
        if publish.retain {
            let why = format!("retained message on {topic} (stale, not an answer)");
            return self.ignore(now, &why);
        }
        let speaker = kinds::named(kind);
        let identified = speaker.identify(
            &publish.payload,
            &PanelTopics {
                response_topic: &self.response_topic,
                rpc_src: &self.rpc_src,
            },
        );
        let Identified { id, from } = match identified {
            Ok(identified) => identified,
            Err(why) => return self.ignore(now, &why),
        };
        let Some(request) = self.pending.peek(&id) else {
            let why = format!("{kind} reply to an unknown, foreign or duplicate request {id:?}");
            return self.ignore(now, &why);
        };
        let config = self.config.clone();
        let relay = &config.relays[request.relay];
        if relay.kind != kind || !speaker.is_from(relay, &from) {
            let why = format!(
                "{kind} reply from {from:?} to the request of relay {}, whose device is {:?}",
                relay.id, relay.device
            );
            return self.ignore(now, &why);
        }
        self.answered(id, &publish.payload, now);
    }

    /// A message on one of `relay`'s report topics. For kinds whose
    /// reports answer requests (`tasmota`, `state`), a state in it answers
    /// the relay's request in flight once that request was handed to the
    /// client, never when retained (it was there before the command).
    /// Anything else is the device talking by itself: an echo of this
    /// panel's own request, nothing new, or a change at the device
    /// ([`decide::device_reported`]).
    fn on_report(&mut self, relay: usize, topic: &str, publish: &Publish, now: Instant) {
        let config = self.config.clone();
        let relay_config = &config.relays[relay];
        let kind = kinds::of(relay_config);
        let Some(report) = kind.read_report(relay_config, topic, &publish.payload) else {
            return;
        };
        let id = &relay_config.id;
        let in_flight = self.pending.in_flight_of(relay);
        let sent = in_flight.is_some_and(|(request_id, _)| !self.outbox.is_waiting(&request_id));
        if let Some((request_id, request)) = in_flight
            && sent
            && kind.report_answers()
            && !publish.retain
        {
            match kind.report_wait() {
                Some(wait) => self.held.hold(
                    request_id,
                    &relay_config.device,
                    report.state,
                    now,
                    wait,
                    request.deadline,
                ),
                None => self.settle_report(
                    request_id,
                    reports::Held {
                        state: report.state,
                        heard: now,
                        until: now,
                    },
                ),
            }
            return;
        }
        // What switched it: the device's own word, or the MQTT 5 User
        // Property `source` (this project's contract).
        let source = report.source.or_else(|| {
            publish.properties.as_ref().and_then(|properties| {
                properties
                    .user_properties
                    .iter()
                    .find(|(key, _)| key == "source")
                    .map(|(_, value)| crate::protocol::sanitise_device_text(value.as_bytes()))
            })
        });
        let news = decide::device_reported(
            &mut self.statuses[relay],
            id,
            report.state,
            source,
            SystemTime::now(),
            publish.retain,
            sent,
        );
        tracing::debug!(
            "{id}: {} {} on {topic}: {:?}",
            if publish.retain {
                "retained"
            } else {
                "reports"
            },
            report.state,
            news.says
        );
        self.apply_news(relay, news);
    }

    /// Carries out what a device's own report decided: store, status
    /// event, change event.
    fn apply_news(&mut self, relay: usize, news: decide::DeviceNews) {
        if let Some(report) = news.report.clone() {
            self.record(Record::Report(report));
        }
        if news.status_changed() {
            self.emit_status(relay);
        }
        if let Some(entry) = news.entry {
            self.record(Record::Audit(entry.clone()));
            self.emit(Event::Changed { relay, entry });
        }
    }

    /// A report settles request `id` (if it is still in flight): the
    /// device reported `held.state` at `held.heard`.
    pub(super) fn settle_report(&mut self, id: CorrelationId, held: reports::Held) {
        if !self.pending.is_in_flight(&id) {
            return; // ended another way meanwhile (answered, cut off, removed)
        }
        let now = Instant::now();
        let Resolution::Current(request) = self.pending.resolve(&id, now) else {
            return;
        };
        let rtt = held.heard.saturating_duration_since(request.sent);
        let wall = SystemTime::now();
        let at = wall
            .checked_sub(now.saturating_duration_since(held.heard))
            .unwrap_or(wall);
        let context = Self::request(
            &self.config,
            &self.operator,
            request.relay,
            request.action,
            Some(id),
        );
        let status = &mut self.statuses[request.relay];
        let ended = decide::reported(status, &context, held.state, rtt, at);
        self.apply(request.relay, ended, false);
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
        if let Some(report) = ended.report {
            self.record(Record::Report(report));
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
