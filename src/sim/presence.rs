//! Presence: every device with an availability topic keeps a small MQTT
//! connection of its own whose Last Will is its offline payload on that
//! topic, as Shelly and Tasmota firmware (and ESPHome) do. On every
//! CONNACK it publishes its online payload there, retained; when the
//! connection drops without a DISCONNECT the *broker* publishes the will,
//! so a panel learns a device went away exactly as it would in the field.
//!
//! Several relays of one device share its availability topic, and so its
//! presence: cutting it off ([`Presence::set_up`]) takes all of them off
//! the network. The requests the devices answer still travel over the
//! simulator's one main connection; a device cut off ignores them (see
//! `devices.rs`).
//!
//! Each presence is driven by a task of its own, which owns the event
//! loop: going offline drops the event loop (and with it the socket)
//! without a DISCONNECT — a device losing power or its Wi-Fi.

use std::sync::Arc;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::{mpsc, watch};

use super::Control;
use crate::config::{BrokerConfig, Kind, RelayConfig};
use crate::mqtt;

/// Capacity of a presence client's request channel: it only ever queues
/// its online message.
const REQUEST_CHANNEL: usize = 16;
/// In-flight publishes a presence client allows (rumqttc preallocates a
/// slot for each; one is all it needs).
const MAX_IN_FLIGHT: u16 = 4;

/// Whether a device is on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Connected (or connecting), its online message retained.
    Up,
    /// Cut off by the handle: no connection, the will published.
    Down,
    /// The simulator stopped: cut off for good.
    Stopped,
}

/// Where a presence is, as one value so the handle and the task change it
/// together (no window where one has seen half of it).
#[derive(Debug, Clone, Copy)]
struct LinkState {
    /// What the device is meant to be.
    link: Link,
    /// It got there: up with its online message acknowledged by the
    /// broker (PUBACK: retained there for every later subscriber), or
    /// down with its connection dropped.
    settled: bool,
}

/// One availability topic and the device behind it.
pub(super) struct Presence {
    /// The availability (last-will) topic.
    pub(super) topic: String,
    /// What the device publishes there on every CONNACK (retained).
    online: String,
    /// Its will, published by the broker when the connection drops.
    offline: String,
    /// The relays of the device (indices), which share the topic.
    pub(super) relays: Vec<usize>,
    /// Where the link is; the task follows its `link`.
    state: watch::Sender<LinkState>,
}

impl Presence {
    /// Whether the device is on the network (not cut off, not stopped):
    /// only then does it act on requests and publish.
    pub(super) fn is_up(&self) -> bool {
        self.state.borrow().link == Link::Up
    }

    /// Whether the device is where it is meant to be: connected with its
    /// online message acknowledged, or cut off with its connection gone.
    pub(super) fn is_settled(&self) -> bool {
        let state = self.state.borrow();
        state.settled || state.link == Link::Stopped
    }

    /// Waits until [`Presence::is_settled`].
    pub(super) async fn settled(&self) {
        let mut state = self.state.subscribe();
        let _ = state
            .wait_for(|s| s.settled || s.link == Link::Stopped)
            .await;
    }

    /// Puts the device on the network (`true`) or cuts it off. Settled
    /// again once its task has done it. Nothing after [`Presence::stop`].
    pub(super) fn set_up(&self, up: bool) {
        let link = if up { Link::Up } else { Link::Down };
        self.state.send_if_modified(|state| {
            if state.link == link || state.link == Link::Stopped {
                return false;
            }
            *state = LinkState {
                link,
                settled: false,
            };
            true
        });
    }

    /// Cuts the device off for good (the simulator stops): like a power
    /// cut, the will fires.
    pub(super) fn stop(&self) {
        self.state.send_replace(LinkState {
            link: Link::Stopped,
            settled: false,
        });
    }

    /// Marks the link settled, if it is still meant to be `link` (the
    /// handle may have changed its mind meanwhile).
    fn settle(&self, link: Link, settled: bool) {
        self.state.send_if_modified(|state| {
            if state.link != link || state.settled == settled {
                return false;
            }
            state.settled = settled;
            true
        });
    }
}

/// The presences of `relays`: one per distinct availability topic, with
/// the payloads of the first relay that names it (relays of one device
/// are of one kind). Relays without one have none.
pub(super) fn of(relays: &[RelayConfig]) -> Vec<Presence> {
    let mut presences: Vec<Presence> = Vec::new();
    for (index, relay) in relays.iter().enumerate() {
        let Some(topic) = relay.availability_topic() else {
            continue;
        };
        if let Some(presence) = presences.iter_mut().find(|p| p.topic == topic) {
            presence.relays.push(index);
            continue;
        }
        let (online, offline) = payloads(relay);
        presences.push(Presence {
            topic,
            online,
            offline,
            relays: vec![index],
            state: watch::Sender::new(LinkState {
                link: Link::Up,
                settled: false,
            }),
        });
    }
    presences
}

/// What `relay`'s device publishes on its availability topic when it
/// connects, and its will: `true` / `false` (Shelly), `Online` /
/// `Offline` (Tasmota), `payload_available` / `payload_not_available`.
fn payloads(relay: &RelayConfig) -> (String, String) {
    match relay.kind {
        Kind::Shelly => ("true".to_owned(), "false".to_owned()),
        Kind::Tasmota => ("Online".to_owned(), "Offline".to_owned()),
        Kind::Mqtt5 | Kind::State => (
            relay.payload_available.clone(),
            relay.payload_not_available.clone(),
        ),
    }
}

/// Starts the task that keeps presence number `index` connected while it
/// is up. `client_id` is its own (derived from the simulator's);
/// `control` hears when the device is back on the network after being
/// cut off, to announce its state.
pub(super) fn spawn(
    presence: Arc<Presence>,
    index: usize,
    broker: &BrokerConfig,
    client_id: &str,
    control: mpsc::UnboundedSender<Control>,
) -> Result<(), mqtt::SetupError> {
    // The same options as every other client (TCP_NODELAY, TLS,
    // credentials), plus the will.
    let mut options = mqtt::client_options(broker, client_id)?;
    options.set_outgoing_inflight_upper_limit(MAX_IN_FLIGHT);
    options.set_last_will(LastWill::new(
        presence.topic.clone(),
        presence.offline.clone(),
        QoS::AtLeastOnce,
        true,
        None,
    ));
    tokio::spawn(run(presence, index, options, control));
    Ok(())
}

/// Connects while the device is up; drops the connection, without a
/// DISCONNECT, whenever it is cut off; ends when the simulator stops.
async fn run(
    presence: Arc<Presence>,
    index: usize,
    options: MqttOptions,
    control: mpsc::UnboundedSender<Control>,
) {
    let mut state = presence.state.subscribe();
    // The first connection comes with the simulator, whose main
    // connection announces every state; after a cut the device does.
    let mut back = false;
    loop {
        let link = state
            .wait_for(|s| s.link != Link::Down)
            .await
            .map(|s| s.link);
        if !matches!(link, Ok(Link::Up)) {
            return;
        }
        let (client, mut eventloop) = AsyncClient::new(options.clone(), REQUEST_CHANNEL);
        tokio::select! {
            () = keep_online(&presence, &client, &mut eventloop, back.then_some((index, &control))) => {}
            _ = state.wait_for(|s| s.link != Link::Up) => {}
        }
        // The socket closes with no DISCONNECT: the broker publishes the
        // will, as for a device that lost its power or its Wi-Fi.
        drop(eventloop);
        drop(client);
        tracing::debug!("relay-sim: {} cut off", presence.topic);
        presence.settle(Link::Down, true);
        back = true;
    }
}

/// Drives the connection: publishes the online message on every CONNACK
/// (retained, as the firmware does after each reconnect) and reconnects
/// with backoff. `announce`: on the first CONNACK, tell the devices that
/// presence number `.0` is back (they announce their state).
async fn keep_online(
    presence: &Presence,
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    mut announce: Option<(usize, &mpsc::UnboundedSender<Control>)>,
) {
    let mut backoff = mqtt::BACKOFF.0;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Never awaited next to the loop that polls.
                if let Err(e) = client.try_publish(
                    presence.topic.clone(),
                    QoS::AtLeastOnce,
                    true,
                    presence.online.clone(),
                ) {
                    tracing::warn!("relay-sim: cannot publish on {}: {e}", presence.topic);
                }
                if let Some((index, control)) = announce.take() {
                    let _ = control.send(Control::Back(index));
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => match ack.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                    // The broker holds the online message: the link works.
                    backoff = mqtt::BACKOFF.0;
                    presence.settle(Link::Up, true);
                }
                reason => tracing::warn!(
                    "relay-sim: the broker refused {} on {}: {reason:?}",
                    presence.online,
                    presence.topic
                ),
            },
            Ok(_) => {}
            Err(error) => {
                presence.settle(Link::Up, false);
                tracing::debug!("relay-sim: presence on {}: {error}", presence.topic);
                // rumqttc reconnects on the next poll, at once: back off.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(mqtt::BACKOFF.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One presence per availability topic, shared by the relays of a
    /// device; relays without a topic have none; each kind's payloads read
    /// back as online and offline.
    #[test]
    fn one_presence_per_availability_topic() {
        let mut own = RelayConfig::new("own", "dev/own");
        own.availability_topic = "dev/status".into();
        own.payload_available = "up".into();
        let mut sibling = RelayConfig::state("sib", "dev/sib/set", "dev/sib");
        sibling.availability_topic = "dev/status".into();
        let relays = vec![
            RelayConfig::new("plain", "dev/plain"),
            RelayConfig::shelly("s0", "shelly-1", 0),
            RelayConfig::shelly("s1", "shelly-1", 1),
            RelayConfig::tasmota("t", "tas", Some(1)),
            own,
            sibling,
        ];
        let presences = of(&relays);
        let found: Vec<(&str, &[usize], &str, &str)> = presences
            .iter()
            .map(|p| {
                (
                    p.topic.as_str(),
                    p.relays.as_slice(),
                    p.online.as_str(),
                    p.offline.as_str(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("shelly-1/online", &[1, 2][..], "true", "false"),
                ("tele/tas/LWT", &[3][..], "Online", "Offline"),
                ("dev/status", &[4, 5][..], "up", "offline"),
            ]
        );
        for presence in &presences {
            let relay = &relays[presence.relays[0]];
            assert_eq!(
                relay.read_availability(presence.online.as_bytes()),
                Some(true)
            );
            assert_eq!(
                relay.read_availability(presence.offline.as_bytes()),
                Some(false)
            );
        }
    }

    /// Cutting off and restoring unsettles the link until the task has
    /// done it; a stopped presence stays stopped and counts as settled.
    #[test]
    fn the_link_settles_only_where_it_is_meant_to_be() {
        let presences = of(&[RelayConfig::tasmota("t", "tas", None)]);
        let presence = &presences[0];
        assert!(presence.is_up() && !presence.is_settled());
        presence.settle(Link::Up, true);
        assert!(presence.is_settled());
        presence.set_up(false);
        assert!(!presence.is_up() && !presence.is_settled());
        // A late acknowledgement of the old connection changes nothing.
        presence.settle(Link::Up, true);
        assert!(!presence.is_settled());
        presence.settle(Link::Down, true);
        assert!(presence.is_settled());
        presence.set_up(false);
        assert!(presence.is_settled(), "the same again changes nothing");
        presence.stop();
        presence.set_up(true);
        assert!(!presence.is_up() && presence.is_settled());
    }
}
