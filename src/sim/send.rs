//! How the devices' messages leave the simulator: one message
//! ([`Outgoing`]), the messages a device sends together ([`Batch`]), and
//! the [`Outbox`] that publishes them over the main connection — each
//! reporting device's in order through a queue of its own, answers tied
//! to their request free to overtake each other (see the module doc of
//! `sim`) — telling every state message as a [`SimReport`].
//!
//! Never awaits a publish: every send is a `try_` call on the client (the
//! loop that polls must never wait on its own bounded channel).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use tokio::sync::mpsc;

use super::SimReport;
use super::presence::Presence;
use crate::protocol::RelayState;

/// What a message a device sends is, for the faults and the report log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The answer tied to the request (Correlation Data, RPC `id`): wrong
    /// correlation forges it.
    Tied,
    /// A report of the state that answers the request (Tasmota's `stat/…`,
    /// a state device's `state_topic`): faults spoil it like an answer.
    Report,
    /// A state message besides the answer (Shelly's `NotifyStatus` and
    /// `status/switch:<n>`, an `mqtt5` device's `state_topic`): faults
    /// leave it alone. Told as a report, like [`Role::Report`].
    Notice,
}

/// What switched a relay, as its device tells it: in a Shelly's JSON
/// (`"source":"button"`), or as the MQTT 5 User Property `source` of an
/// `mqtt5` device's state message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Someone at the device (a wall button, the device's own app).
    Button,
    /// A request over MQTT.
    Mqtt,
}

impl Source {
    /// The word on the wire, as Shelly firmware spells it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Source::Button => "button",
            Source::Mqtt => "MQTT",
        }
    }
}

/// One message a device sends.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    /// Where.
    pub(super) topic: String,
    /// What.
    pub(super) payload: Bytes,
    /// Retained (a state device's state).
    pub(super) retain: bool,
    /// Correlation Data, for an answer on a Response Topic.
    pub(super) correlation: Option<Bytes>,
    /// The User Property `source` (an `mqtt5` device's state message).
    pub(super) source: Option<Source>,
    /// What it is.
    pub(super) role: Role,
}

/// A device's messages for one request, a press of its button or an
/// announcement of its state: sent together at `at`, and for a device
/// that reports after the batches it queued before.
pub(super) struct Batch {
    /// When, at the earliest.
    pub(super) at: tokio::time::Instant,
    /// What, in order.
    pub(super) messages: Vec<Outgoing>,
    /// The relay whose state the reports and notices tell.
    pub(super) relay_id: String,
    /// The state they tell.
    pub(super) state: RelayState,
    /// A fault made the reports garbage: they are told as telling no
    /// state (notices are left alone).
    pub(super) garbage: bool,
    /// The device's presence: a device cut off from the network publishes
    /// nothing (what it would have said is dropped, and told so).
    pub(super) presence: Option<Arc<Presence>>,
}

impl Batch {
    /// Whether the device can publish: the simulator is connected and the
    /// device is not cut off.
    fn can_publish(&self, online: &AtomicBool) -> bool {
        online.load(Ordering::SeqCst) && self.presence.as_ref().is_none_or(|p| p.is_up())
    }

    /// Tells each report and notice in the batch, handed over at `at`
    /// (`offline`: dropped instead, nobody heard it).
    fn tell(&self, reports: &mpsc::UnboundedSender<SimReport>, at: Instant, offline: bool) {
        for message in self.messages.iter().filter(|m| m.role != Role::Tied) {
            let garbage = self.garbage && message.role == Role::Report;
            let _ = reports.send(SimReport {
                relay_id: self.relay_id.clone(),
                topic: message.topic.clone(),
                state: (!garbage).then_some(self.state),
                at,
                offline,
            });
        }
    }
}

/// The devices' way out to the broker.
pub(super) struct Outbox {
    /// The simulator's main MQTT client.
    client: AsyncClient,
    /// The report log (see [`SimReport`]).
    reports: mpsc::UnboundedSender<SimReport>,
    /// Connected to the broker (set on CONNACK, cleared on a drop): the
    /// devices that report publish nothing while it is false.
    online: Arc<AtomicBool>,
    /// Send queues of the devices that report, by device: each sends its
    /// batches in order, each at its time.
    queues: HashMap<String, mpsc::UnboundedSender<Batch>>,
}

impl Outbox {
    /// An outbox over `client`, telling reports on `reports`.
    pub(super) fn new(client: AsyncClient, reports: mpsc::UnboundedSender<SimReport>) -> Self {
        Outbox {
            client,
            reports,
            online: Arc::new(AtomicBool::new(false)),
            queues: HashMap::new(),
        }
    }

    /// The main client (to subscribe, or disconnect).
    pub(super) fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// The main connection came up or went down.
    pub(super) fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::SeqCst);
    }

    /// Publishes at once, ahead of anything queued (a device's state
    /// announced on connecting, before the SUBSCRIBEs), telling its
    /// reports.
    pub(super) fn now(&self, batch: &Batch) {
        batch.tell(&self.reports, Instant::now(), false);
        publish_all(&self.client, &batch.messages);
    }

    /// Publishes answers tied to their request at their time, free to
    /// overtake others; dropped if by then the device is cut off.
    pub(super) fn when_due(&self, batch: Batch) {
        if batch.at <= tokio::time::Instant::now() {
            publish_all(&self.client, &batch.messages);
            return;
        }
        let client = self.client.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(batch.at).await;
            if batch.presence.as_ref().is_none_or(|p| p.is_up()) {
                publish_all(&client, &batch.messages);
            }
        });
    }

    /// Queues a device's batch behind those it sent before (`device`
    /// names the device and its queue). A device that cannot publish then
    /// drops the batch (see the module doc of `sim`); its reports are told
    /// as they are handed to the client, or dropped.
    pub(super) fn in_order(&mut self, device: &str, batch: Batch) {
        let (client, reports, online) = (&self.client, &self.reports, &self.online);
        let queue = self.queues.entry(device.to_owned()).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
            let (client, reports, online) = (client.clone(), reports.clone(), online.clone());
            let device = device.to_owned();
            tokio::spawn(async move {
                while let Some(batch) = rx.recv().await {
                    // A batch already due goes at once: tokio rounds a
                    // deadline up to its next millisecond tick, so even a
                    // past one would wait up to 1 ms for the timer.
                    if batch.at > tokio::time::Instant::now() {
                        tokio::time::sleep_until(batch.at).await;
                    }
                    let offline = !batch.can_publish(&online);
                    batch.tell(&reports, Instant::now(), offline);
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

/// Publishes without awaiting (never await next to the loop that polls).
pub(super) fn publish_all(client: &AsyncClient, messages: &[Outgoing]) {
    for message in messages {
        let properties = PublishProperties {
            correlation_data: message.correlation.clone(),
            user_properties: message
                .source
                .map(|source| vec![("source".to_owned(), source.as_str().to_owned())])
                .unwrap_or_default(),
            ..Default::default()
        };
        if let Err(e) = client.try_publish_with_properties(
            message.topic.clone(),
            QoS::AtLeastOnce,
            message.retain,
            message.payload.clone(),
            properties,
        ) {
            tracing::warn!("relay-sim: cannot publish on {}: {e}", message.topic);
        }
    }
}
