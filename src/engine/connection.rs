//! The engine and its connection: what the event loop reports (connected,
//! subscribed, acknowledged, dropped) and what it means for the requests
//! in flight.

use std::time::{Duration, Instant, SystemTime};

use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;
use tokio::sync::mpsc;

use super::decide;
use super::kinds::Routes;
use super::loading::StoreSlot;
use super::task::Engine;
use super::{ConnectionState, Event, RESUBSCRIBE_AFTER};
use crate::mqtt::{self, NetEvent};
use crate::relay::Failure;

impl Engine {
    /// Ends every request in flight as "connection lost" (they stay
    /// answerable late), and every request never handed over as "not
    /// sent".
    pub(super) fn connection_lost(&mut self) {
        self.connection_dropped(None);
    }

    /// [`connection_lost`](Self::connection_lost), saying why in the
    /// detail of each request it ends (`why`: what the event loop said —
    /// a broker that delivered a message over the panel's size limit, a
    /// reset): the connection state moves on at the next CONNACK, the
    /// audit entry keeps the reason.
    pub(super) fn connection_dropped(&mut self, why: Option<&str>) {
        self.resubscribe_at = None;
        self.subscribing.clear();
        // A report heard before the drop still stands.
        for (id, held) in self.held.all() {
            self.settle_report(id, held);
        }
        for held in self.outbox.disconnected() {
            if self.pending.cancel(&held.id).is_some() {
                self.not_sent(
                    held,
                    "the connection dropped before it could be sent".into(),
                );
            }
        }
        for (id, request) in self.pending.abandon_all(Instant::now()) {
            let context = Self::request(
                &self.config,
                &self.operator,
                request.relay,
                request.action,
                Some(id),
            );
            let status = &mut self.statuses[request.relay];
            let mut ended = decide::failed(
                status,
                &context,
                Failure::ConnectionLost,
                None,
                SystemTime::now(),
            );
            ended.entry.detail = why.map(str::to_owned);
            self.apply(request.relay, ended, false);
        }
    }

    /// The event-loop task is gone for good.
    pub(super) fn network_ended(&mut self) {
        self.connection_lost();
        if !matches!(
            self.connection,
            ConnectionState::Failed { .. } | ConnectionState::Stopped
        ) {
            self.set_connection(ConnectionState::Failed {
                reason: "internal error: the MQTT connection task stopped; Retry starts it again"
                    .to_owned(),
            });
        }
    }

    pub(super) async fn shutdown(&mut self, network: Option<mpsc::Receiver<NetEvent>>) {
        self.connection_lost();
        if let Some(mut network) = network
            && self.client.try_disconnect().is_ok()
        {
            // Let the event loop put DISCONNECT on the wire (it returns once sent).
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while network.recv().await.is_some() {}
            })
            .await;
        }
        if let StoreSlot::Ready(mut store) = std::mem::replace(&mut self.store, StoreSlot::Off) {
            // The engine's last act, with nothing left for this thread to
            // serve: waiting here for the writer to flush costs no thread
            // (a blocking-pool one took ~0.1 ms to start in a one-shot).
            store.close();
        }
        self.set_connection(ConnectionState::Stopped);
    }

    pub(super) fn set_connection(&mut self, state: ConnectionState) {
        if self.connection != state {
            self.connection = state.clone();
            self.emit(Event::Connection(state));
        }
    }

    /// Subscribes to the response topic and the kinds' topics, in one
    /// SUBSCRIBE (the response topic first); if the client's queue
    /// refuses, tries again shortly (the connection itself is fine, so the
    /// state stays "subscribing").
    pub(super) fn subscribe(&mut self) {
        let mut topics = vec![self.response_topic.clone()];
        topics.extend(self.routes.topics());
        match mqtt::subscribe_all(&self.client, &topics) {
            Ok(()) => self.subscribing.push_back(topics),
            Err(reason) => {
                tracing::warn!("{reason}; trying again");
                self.resubscribe_at = Some(Instant::now() + RESUBSCRIBE_AFTER);
            }
        }
    }

    /// Makes the kinds' subscriptions follow `routes` (a new list of
    /// relays): topics it adds are subscribed, topics it drops
    /// unsubscribed. Only on a live connection: the next CONNACK
    /// subscribes everything anyway.
    pub(super) fn reroute(&mut self, routes: Routes) {
        let old = std::mem::replace(&mut self.routes, routes).topics();
        let new = self.routes.topics();
        if !matches!(
            self.connection,
            ConnectionState::Subscribing | ConnectionState::Connected
        ) {
            return;
        }
        let added: Vec<String> = new.difference(&old).cloned().collect();
        if !added.is_empty() {
            match mqtt::subscribe_all(&self.client, &added) {
                Ok(()) => self.subscribing.push_back(added),
                Err(reason) => self.emit(Event::Warning(format!(
                    "{reason}: the new relays' state reports cannot arrive until the panel reconnects"
                ))),
            }
        }
        for topic in old.difference(&new) {
            if let Err(reason) = mqtt::unsubscribe(&self.client, topic) {
                tracing::warn!("{reason}");
            }
        }
    }

    /// The warning for a refused subscription to one of the kinds'
    /// topics: which relays lose what, and what to check.
    fn refused_subscription(&self, topic: &str, code: &SubscribeReasonCode) -> String {
        let ids = |relays: &mut dyn Iterator<Item = usize>| {
            relays
                .map(|r| self.config.relays[r].id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let loses = if let Some(relays) = self.routes.availability.get(topic) {
            format!(
                "relay(s) {} cannot tell whether their device is online",
                ids(&mut relays.iter().copied())
            )
        } else if let Some(relays) = self.routes.reports.get(topic) {
            format!(
                "relay(s) {} cannot hear their device's own state messages there",
                ids(&mut relays.iter().copied())
            )
        } else {
            let kind = self.routes.panel.get(topic);
            let mut relays = (0..self.config.relays.len())
                .filter(|&r| kind == Some(&self.config.relays[r].kind));
            format!("relay(s) {} cannot be answered there", ids(&mut relays))
        };
        let fix = match code {
            SubscribeReasonCode::TopicFilterInvalid => {
                "the broker takes the topic for invalid (ejabberd refuses topics of more than 8 levels: \
                 mod_mqtt's max_topic_depth)"
            }
            _ => "the broker's ACL must let this client subscribe to it",
        };
        format!("the broker refused the subscription to {topic} ({code:?}), so {loses}; {fix}")
    }

    pub(super) fn on_network(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected(ack) => {
                tracing::info!(
                    "connected (session present: {}); subscribing to {}",
                    ack.session_present,
                    self.response_topic
                );
                let receive_max = ack
                    .properties
                    .as_ref()
                    .and_then(|p| p.receive_max)
                    .unwrap_or(u16::MAX);
                self.outbox.window = usize::from(receive_max.min(mqtt::MAX_IN_FLIGHT)).max(1);
                self.set_connection(ConnectionState::Subscribing);
                self.subscribe();
            }
            NetEvent::SubAck(ack) => {
                let topics = self.subscribing.pop_front().unwrap_or_default();
                let with_response = topics.first() == Some(&self.response_topic);
                let mut refused = None;
                for (index, code) in ack.return_codes.iter().enumerate() {
                    if matches!(code, SubscribeReasonCode::Success(_)) {
                        continue;
                    }
                    if with_response && index == 0 {
                        refused = Some(code);
                        continue;
                    }
                    // A kind's topic: the panel still works, those relays
                    // only lose their reports (or Shelly replies).
                    let topic = topics.get(index).map_or("?", String::as_str);
                    let warning = self.refused_subscription(topic, code);
                    tracing::warn!("{warning}");
                    self.emit(Event::Warning(warning));
                }
                match refused {
                    None => {
                        self.set_connection(ConnectionState::Connected);
                        self.pump();
                    }
                    Some(code) => {
                        // Answers could never arrive: leave, and say what to fix.
                        let _ = self.client.try_disconnect();
                        self.connection_lost();
                        self.set_connection(ConnectionState::Failed {
                            reason: format!(
                                "the broker refused the subscription to this panel's response topic {} ({code:?}); \
                                 the broker's ACL must let this client subscribe to it",
                                self.response_topic
                            ),
                        });
                    }
                }
            }
            NetEvent::Publish(publish) => self.on_publish(publish),
            NetEvent::Sent(pkid) => self.outbox.packets.sent(pkid),
            NetEvent::Acked(pkid) => {
                self.outbox.packets.acknowledged(pkid);
                self.pump();
            }
            NetEvent::Refused { pkid, reason } => {
                if let Some(id) = self.outbox.packets.acknowledged(pkid)
                    && let Some(request) = self.pending.cancel(&id)
                {
                    let topic = self.config.relays[request.relay].publish_topic();
                    let reason = format!(
                        "{reason} — the broker does not let this panel publish to {topic}; check its ACL"
                    );
                    tracing::warn!("request refused by the broker: {reason}");
                    self.finish_failed(
                        request.relay,
                        request.action,
                        Failure::Refused { reason },
                        None,
                        Some(id),
                    );
                }
                self.pump();
            }
            NetEvent::Down {
                reason,
                fatal,
                retry_in,
            } => {
                self.connection_dropped(Some(&reason));
                self.set_connection(if fatal {
                    ConnectionState::Failed { reason }
                } else {
                    ConnectionState::Reconnecting { reason, retry_in }
                });
            }
        }
    }
}
