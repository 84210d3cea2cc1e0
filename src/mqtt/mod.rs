//! What the engine and the simulator share about talking to a broker:
//! client options (TCP_NODELAY, TLS, credentials, packet size) and the
//! task that drives rumqttc's event loop, with reconnect backoff and
//! errors turned into messages a technician can act on (`errors.rs`), and
//! packet-id bookkeeping (`packets.rs`).

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{ConnAck, Filter, Packet, PubAckReason, Publish, SubAck};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{NetworkOptions, Outgoing, TlsConfiguration, Transport};
use tokio::sync::mpsc;

use crate::config::{BrokerConfig, PasswordError, Scheme, UrlError, parse_broker_url};

mod errors;
mod packets;

use errors::{closed_before_handshake, describe, diagnose_timeout};
pub use packets::PacketIds;

/// Largest packet this client accepts. Sent to the broker in CONNECT, so
/// the broker drops (rather than delivers) larger responses: an oversized
/// reply can never knock the panel off the broker.
pub const MAX_INCOMING_PACKET: u32 = 64 * 1024;
/// Capacity of rumqttc's request channel (a group switch of thousands of
/// relays must fit without "queue full").
pub const REQUEST_CHANNEL: usize = 65_536;
/// Most QoS 1 publishes awaiting PUBACK at once (more queue in order).
pub const MAX_IN_FLIGHT: u16 = 1024;
/// Shortest and longest pause between reconnect attempts: quick after a
/// blip, and a dead broker is not hammered.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(8));
/// How long a connection attempt may take, TCP to CONNACK.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The client options could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The broker URL is unusable.
    #[error(transparent)]
    Url(UrlError),
    /// The password could not be read (env variable, file).
    #[error(transparent)]
    Password(PasswordError),
    /// A TLS file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    TlsFile {
        /// Which file (CA, certificate, key).
        what: &'static str,
        /// Its path.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Builds client options for `broker` under `client_id`.
pub fn client_options(broker: &BrokerConfig, client_id: &str) -> Result<MqttOptions, SetupError> {
    client_options_with(broker, client_id, MAX_IN_FLIGHT)
}

/// [`client_options`] with at most `max_in_flight` publishes awaiting
/// their PUBACK (at least 1).
fn client_options_with(
    broker: &BrokerConfig,
    client_id: &str,
    max_in_flight: u16,
) -> Result<MqttOptions, SetupError> {
    let address = parse_broker_url(&broker.url).map_err(SetupError::Url)?;
    let mut options = MqttOptions::new(client_id, address.host.clone(), address.port);
    options.set_keep_alive(Duration::from_secs(15));
    options.set_clean_start(true);
    options.set_request_response_info(Some(1));
    options.set_max_packet_size(Some(MAX_INCOMING_PACKET));
    options.set_connection_timeout(CONNECT_TIMEOUT.as_secs());
    // rumqttc preallocates one slot per possible in-flight publish; its
    // default (65,535) costs ~10 MB and ~8 ms of page faults per start.
    // The broker's Receive Maximum caps it further.
    options.set_outgoing_inflight_upper_limit(max_in_flight.max(1));
    let mut network = NetworkOptions::new();
    // Without it every request/response costs 44-88 ms (Nagle + delayed ACK).
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(CONNECT_TIMEOUT.as_secs());
    options.set_network_options(network);
    if let Some(user) = &broker.username {
        let password = broker.resolve_password().map_err(SetupError::Password)?;
        options.set_credentials(user.clone(), password.unwrap_or_default());
    }
    if address.scheme == Scheme::Tls {
        let read = |what, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| SetupError::TlsFile {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let transport = match &broker.ca_file {
            Some(ca_file) => {
                let ca = read("ca_file", ca_file)?;
                let client_auth = match (&broker.client_cert, &broker.client_key) {
                    (Some(cert), Some(key)) => {
                        Some((read("client_cert", cert)?, read("client_key", key)?))
                    }
                    _ => None,
                };
                Transport::Tls(TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth,
                })
            }
            None => Transport::tls_with_default_config(),
        };
        options.set_transport(transport);
    }
    Ok(options)
}

/// Creates the client and its event loop for `broker`.
pub fn client(
    broker: &BrokerConfig,
    client_id: &str,
) -> Result<(AsyncClient, EventLoop), SetupError> {
    client_with(broker, client_id, MAX_IN_FLIGHT)
}

/// [`client`] with at most `max_in_flight` publishes awaiting their PUBACK.
pub fn client_with(
    broker: &BrokerConfig,
    client_id: &str,
    max_in_flight: u16,
) -> Result<(AsyncClient, EventLoop), SetupError> {
    let options = client_options_with(broker, client_id, max_in_flight)?;
    Ok(AsyncClient::new(options, REQUEST_CHANNEL))
}

/// What the event-loop task reports.
#[derive(Debug)]
pub enum NetEvent {
    /// Connected (CONNACK success). Subscriptions are gone: resubscribe.
    Connected(ConnAck),
    /// SUBACK for a subscription.
    SubAck(SubAck),
    /// A message arrived.
    Publish(Publish),
    /// A QoS 1 publish went out under this packet id (in the order of the
    /// client's publish calls).
    Sent(u16),
    /// The broker accepted the publish with this packet id (PUBACK).
    Acked(u16),
    /// The broker refused the publish with this packet id (PUBACK reason).
    Refused {
        /// Packet id.
        pkid: u16,
        /// The broker's reason code and text.
        reason: String,
    },
    /// The connection dropped or could not be made.
    Down {
        /// What went wrong, for the technician.
        reason: String,
        /// Retrying cannot help (refused credentials or protocol, a
        /// certificate the client rejects, session taken over); the task
        /// has stopped.
        fatal: bool,
        /// Pause before the next attempt.
        retry_in: Duration,
    },
}

/// A connection that lasted this long proved the broker works: after it
/// drops, reconnecting starts again at the shortest pause. A shorter one
/// (a broker that drops the client right after accepting it) keeps the
/// backoff growing, so the broker is not hammered.
const STABLE_AFTER: Duration = Duration::from_secs(1);
/// The same with a client id fixed in the configuration, where a short
/// connection may be another client taking the id over: longer, so two
/// clients sharing an id settle into one round every few seconds instead
/// of fighting at full speed.
const STABLE_AFTER_FIXED_ID: Duration = Duration::from_secs(3);

/// How many closes before CONNACK in a row make the "may not accept
/// MQTT 5" hint firm.
const CLOSED_BEFORE_CONNACK_HINT: u32 = 3;

/// Drives `eventloop` until the client disconnects or the receiver is
/// dropped, forwarding what matters. Reconnects with backoff (reset only
/// once a connection has proved stable); stops only after an error that is
/// certain to repeat (see [`describe`]).
///
/// `fixed_client_id`: the client id comes from the configuration, so
/// another client may be using it. Mosquitto 2.0 closes the older of two
/// connections with the same id without a DISCONNECT reason, so a
/// connection closed right after it was accepted is reported as a
/// *suspected* take-over — and retried with a growing backoff, since a
/// broker restart looks the same.
pub fn spawn_event_loop(
    mut eventloop: EventLoop,
    label: String,
    fixed_client_id: bool,
) -> mpsc::Receiver<NetEvent> {
    let (tx, rx) = mpsc::channel(4096);
    let address = eventloop.options.broker_address();
    let client_id = eventloop.options.client_id();
    tokio::spawn(async move {
        let mut backoff = BACKOFF.0;
        // Connection attempts closed by the broker before any CONNACK in a row.
        let mut closed_before_connack = 0u32;
        let mut connected = false;
        let mut connected_at = std::time::Instant::now();
        loop {
            let event = eventloop.poll().await;
            let forward = match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    connected = true;
                    connected_at = std::time::Instant::now();
                    closed_before_connack = 0;
                    NetEvent::Connected(ack)
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => NetEvent::Publish(publish),
                Ok(Event::Incoming(Packet::SubAck(ack))) => NetEvent::SubAck(ack),
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => NetEvent::Sent(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                        NetEvent::Acked(ack.pkid)
                    }
                    reason => {
                        let text = ack
                            .properties
                            .and_then(|p| p.reason_string)
                            .map(|s| format!(": {s}"))
                            .unwrap_or_default();
                        NetEvent::Refused {
                            pkid: ack.pkid,
                            reason: format!("{reason:?}{text}"),
                        }
                    }
                },
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    tracing::debug!("{label}: disconnected");
                    return;
                }
                Ok(_) => continue,
                Err(ConnectionError::RequestsDone) => return,
                Err(error) => {
                    tracing::debug!("{label}: connection error {error:?}");
                    let was_connected = std::mem::replace(&mut connected, false);
                    let (mut reason, fatal) = describe(&error, &address, &client_id, was_connected);
                    if matches!(error, ConnectionError::Timeout(_)) {
                        reason = diagnose_timeout(&address).await;
                    }
                    if !was_connected && closed_before_handshake(&error) {
                        closed_before_connack += 1;
                        if closed_before_connack >= CLOSED_BEFORE_CONNACK_HINT {
                            reason = format!(
                                "broker {}:{} closed {closed_before_connack} connections in a row before answering the MQTT 5 CONNECT: \
                                 it is full, restarting, rejects this client, or does not accept MQTT 5 (Relay Panel needs MQTT 5)",
                                address.0, address.1
                            );
                        }
                    }
                    if was_connected {
                        let stable_after = if fixed_client_id {
                            STABLE_AFTER_FIXED_ID
                        } else {
                            STABLE_AFTER
                        };
                        if connected_at.elapsed() >= stable_after {
                            backoff = BACKOFF.0;
                        } else if fixed_client_id && closed_before_handshake(&error) && !fatal {
                            reason = format!(
                                "broker {}:{} closed the connection right after accepting it — is another client \
                                 (another panel?) using client id {client_id:?}? Two clients with one id throw each other off; \
                                 give each panel its own client_id, or remove client_id from [broker]. ({reason})",
                                address.0, address.1
                            );
                        }
                    }
                    let retry_in = backoff;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    tracing::warn!("{label}: {reason}");
                    if tx
                        .send(NetEvent::Down {
                            reason,
                            fatal,
                            retry_in,
                        })
                        .await
                        .is_err()
                        || fatal
                    {
                        return;
                    }
                    tokio::time::sleep(retry_in).await;
                    continue;
                }
            };
            if tx.send(forward).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Subscribes to a response topic without awaiting (never await a
/// publish/subscribe next to the loop that polls: the bounded channel could
/// deadlock). No Local: the broker never sends this client its own
/// publishes on the topic, so a request can never come back as an answer.
pub fn subscribe(client: &AsyncClient, topic: &str) -> Result<(), SubscribeError> {
    let mut filter = Filter::new(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce);
    filter.nolocal = true;
    client
        .try_subscribe_many([filter])
        .map_err(|e| SubscribeError {
            topic: topic.to_owned(),
            reason: e.to_string(),
        })
}

/// Subscribes to `topics` in one SUBSCRIBE (one SUBACK, its reason codes
/// in the same order), without awaiting and with No Local, as
/// [`subscribe`].
pub fn subscribe_all(client: &AsyncClient, topics: &[String]) -> Result<(), SubscribeError> {
    let filters = topics.iter().map(|topic| {
        let mut filter = Filter::new(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce);
        filter.nolocal = true;
        filter
    });
    client
        .try_subscribe_many(filters)
        .map_err(|e| SubscribeError {
            topic: topics.join(", "),
            reason: e.to_string(),
        })
}

/// Unsubscribes from `topic` without awaiting.
pub fn unsubscribe(client: &AsyncClient, topic: &str) -> Result<(), SubscribeError> {
    client.try_unsubscribe(topic).map_err(|e| SubscribeError {
        topic: topic.to_owned(),
        reason: e.to_string(),
    })
}

/// The client could not queue a subscription (its request queue is full
/// or closed).
#[derive(Debug, thiserror::Error)]
#[error("cannot subscribe to {topic}: {reason}")]
pub struct SubscribeError {
    /// The topic.
    pub topic: String,
    /// What the client said.
    pub reason: String,
}
