//! Relay kinds: how a kind of device is spoken to. Each kind is one file
//! with one [`RelayKind`]: which topics to subscribe for its relays, how a
//! request is encoded, and how a message that answers a request is read.
//! The engine asks [`of`] for a relay's kind and does the I/O.
//!
//! Today there is one kind, [`mqtt5::Mqtt5`] (the README's wire contract);
//! Shelly, Tasmota and command/state devices come as files beside it.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use crate::config::RelayConfig;
use crate::protocol::{Action, CorrelationId, Reply};

pub mod mqtt5;

/// What a request needs besides the relay and the action.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// Its correlation id.
    pub id: CorrelationId,
    /// Where this panel hears answers.
    pub response_topic: &'a str,
    /// Time left before its deadline, as it is handed over.
    pub left: Duration,
    /// Its deadline on the wall clock.
    pub expires_at: SystemTime,
    /// Who asked.
    pub operator: &'a str,
}

/// A request ready for the MQTT client.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Where it goes.
    pub topic: String,
    /// Its payload.
    pub payload: Bytes,
    /// Its MQTT 5 properties.
    pub properties: PublishProperties,
}

/// One kind of device.
pub trait RelayKind: Sync {
    /// The name in the configuration (`kind = "mqtt5"`).
    fn name(&self) -> &'static str;

    /// Topics to subscribe for this relay, besides the panel's response
    /// topic (where correlated answers arrive).
    fn subscriptions(&self, relay: &RelayConfig) -> Vec<String>;

    /// The publish for `action`, or `None` when the relay cannot be asked
    /// that (a query to a relay with no query payload).
    fn encode(
        &self,
        relay: &RelayConfig,
        action: Action,
        request: &RequestContext<'_>,
    ) -> Option<Encoded>;

    /// What an answer's payload says.
    fn read_answer(&self, relay: &RelayConfig, payload: &[u8]) -> Reply;
}

/// The kind of `relay`.
pub fn of(_relay: &RelayConfig) -> &'static dyn RelayKind {
    &mqtt5::Mqtt5
}
