//! Relay kinds: how a kind of device is spoken to. Each kind is one file
//! with one [`RelayKind`]: how a request is encoded, which panel-wide
//! topics it needs, how a reply tied to a request is found and read, and
//! what a device's own state message on a relay's report topics says. The
//! engine asks [`of`] for a relay's kind and does the I/O; which topics a
//! relay reports on comes from its configuration
//! ([`RelayConfig::report_topics`]).
//!
//! Evidence: a reply tied to the request (Correlation Data on the
//! response topic for `mqtt5` and `tasmota`, the JSON-RPC `id` to this
//! panel's `src` for `shelly`) is *correlated*; a state read by
//! [`RelayKind::read_report`] is *reported*.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use crate::config::{Config, Kind, RelayConfig};
use crate::protocol::{Action, CorrelationId, RelayState, Reply};

pub mod mqtt5;
pub mod shelly;
pub mod state;
pub mod tasmota;

/// Where devices reach this panel.
#[derive(Debug, Clone, Copy)]
pub struct PanelTopics<'a> {
    /// MQTT 5 Response Topic of this panel's requests.
    pub response_topic: &'a str,
    /// This panel's JSON-RPC `src` (Shelly answers on `<src>/rpc`).
    pub rpc_src: &'a str,
}

/// What a request needs besides the relay and the action.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// Its correlation id (made by [`RelayKind::new_id`]).
    pub id: CorrelationId,
    /// Where this panel hears correlated answers.
    pub response_topic: &'a str,
    /// This panel's JSON-RPC `src`.
    pub rpc_src: &'a str,
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

/// A message on one of a kind's panel topics that names the request it
/// answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    /// The request it answers.
    pub id: CorrelationId,
    /// Who says it sent it (checked with [`RelayKind::is_from`]).
    pub from: String,
}

/// A device's own message about a relay's state (tied to no request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateReport {
    /// The state it tells.
    pub state: RelayState,
    /// What switched it, when the device says (Shelly's `source`:
    /// `button`, `MQTT`, `HTTP_in`, …).
    pub source: Option<String>,
}

impl StateReport {
    /// A report of `state` that names no source.
    pub fn of(state: RelayState) -> Self {
        StateReport {
            state,
            source: None,
        }
    }
}

/// One kind of device.
pub trait RelayKind: Sync {
    /// The name in the configuration (`kind = "mqtt5"`).
    fn name(&self) -> &'static str;

    /// A fresh id for a request to a relay of this kind, in a shape the
    /// kind's wire format carries (random 16 bytes unless it says
    /// otherwise).
    fn new_id(&self) -> CorrelationId {
        CorrelationId::random()
    }

    /// Topics this kind needs once per panel, whatever its relays, besides
    /// the response topic (Shelly: `<src>/rpc`).
    fn panel_topics(&self, _panel: &PanelTopics<'_>) -> Vec<String> {
        Vec::new()
    }

    /// The publish for `action`, or `None` when the relay cannot be asked
    /// that (a query to a relay with no query payload).
    fn encode(
        &self,
        relay: &RelayConfig,
        action: Action,
        request: &RequestContext<'_>,
    ) -> Option<Encoded>;

    /// Which request a message on one of [`RelayKind::panel_topics`]
    /// answers, or why it answers none.
    fn identify(&self, _payload: &[u8], _panel: &PanelTopics<'_>) -> Result<Identified, String> {
        Err(format!("kind {} has no topics of its own", self.name()))
    }

    /// Whether a reply identified as from `from` may come from `relay`'s
    /// device.
    fn is_from(&self, _relay: &RelayConfig, _from: &str) -> bool {
        true
    }

    /// What a reply tied to an `action` request says (correlated: by
    /// Correlation Data on the response topic, or by [`RelayKind::identify`]).
    fn read_answer(&self, relay: &RelayConfig, action: Action, payload: &[u8]) -> Reply;

    /// The state a message on one of `relay`'s report topics reports, or
    /// `None` when it says nothing about this relay.
    fn read_report(
        &self,
        _relay: &RelayConfig,
        _topic: &str,
        _payload: &[u8],
    ) -> Option<StateReport> {
        None
    }

    /// Whether a report after a request was sent answers it (evidence
    /// *reported*): for kinds whose devices have no reply tied to the
    /// request. Kinds with one (`mqtt5`, `shelly`) wait for it; their
    /// reports only tell changes made at the device.
    fn report_answers(&self) -> bool {
        false
    }

    /// How long a report waits for a correlated answer that may follow it
    /// before it settles the request (`None`: at once).
    fn report_wait(&self) -> Option<Duration> {
        None
    }
}

/// The kind with this name in the configuration.
pub fn named(kind: Kind) -> &'static dyn RelayKind {
    match kind {
        Kind::Mqtt5 => &mqtt5::Mqtt5,
        Kind::Shelly => &shelly::Shelly,
        Kind::Tasmota => &tasmota::Tasmota,
        Kind::State => &state::State,
    }
}

/// The kind of `relay`.
pub fn of(relay: &RelayConfig) -> &'static dyn RelayKind {
    named(relay.kind)
}

/// The topics a configuration needs besides the response topic, and who
/// listens on each: reports by relay, panel topics by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// Report topics ([`RelayConfig::report_topics`]) and the relays (by
    /// index) that read each; several Tasmota relays share their device's
    /// `stat/<device>/RESULT`.
    pub reports: HashMap<String, Vec<usize>>,
    /// Panel topics ([`RelayKind::panel_topics`]) of the kinds in use.
    pub panel: HashMap<String, Kind>,
    /// Availability (last-will) topics
    /// ([`RelayConfig::availability_topic`]) and the relays (by index)
    /// of the device behind each.
    pub availability: HashMap<String, Vec<usize>>,
}

impl Routes {
    /// The routes of `config` for a panel reached at `panel`.
    pub fn of(config: &Config, panel: &PanelTopics<'_>) -> Routes {
        let mut routes = Routes::default();
        for (index, relay) in config.relays.iter().enumerate() {
            for topic in relay.report_topics() {
                routes.reports.entry(topic).or_default().push(index);
            }
            for topic in of(relay).panel_topics(panel) {
                routes.panel.insert(topic, relay.kind);
            }
            if let Some(topic) = relay.availability_topic() {
                routes.availability.entry(topic).or_default().push(index);
            }
        }
        routes
    }

    /// Every topic to subscribe, sorted (stable across calls).
    pub fn topics(&self) -> BTreeSet<String> {
        self.reports
            .keys()
            .chain(self.panel.keys())
            .chain(self.availability.keys())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Report topics route to every relay that reads them; the Shelly
    /// reply topic is subscribed once, for the kind, only when a Shelly
    /// relay is configured.
    #[test]
    fn routes_follow_the_configuration() {
        let panel = PanelTopics {
            response_topic: "relay-panel/desk/response",
            rpc_src: "relay-panel/desk",
        };
        let mut config = Config::new("mqtt://h");
        let mut watched = RelayConfig::new("watched", "dev/watched");
        watched.state_topic = "dev/watched/state".into();
        watched.availability_topic = "dev/status".into();
        let mut sibling = RelayConfig::state("s2", "s2/set", "s2/state");
        sibling.availability_topic = "dev/status".into();
        config.relays = vec![
            RelayConfig::new("plain", "dev/plain"),
            RelayConfig::tasmota("t1", "tas", Some(1)),
            RelayConfig::tasmota("t2", "tas", Some(2)),
            RelayConfig::state("s", "s/set", "s/state"),
            watched,
            sibling,
        ];
        let routes = Routes::of(&config, &panel);
        assert_eq!(routes.reports["stat/tas/RESULT"], [1, 2]);
        assert_eq!(routes.reports["stat/tas/POWER2"], [2]);
        assert_eq!(routes.reports["s/state"], [3]);
        assert_eq!(routes.reports["dev/watched/state"], [4]);
        assert!(routes.panel.is_empty());
        // One last will per device, read for each of its relays.
        assert_eq!(routes.availability["tele/tas/LWT"], [1, 2]);
        assert_eq!(routes.availability["dev/status"], [4, 5]);
        assert_eq!(routes.availability.len(), 2, "plain and s have none");
        assert_eq!(
            routes.topics().into_iter().collect::<Vec<_>>(),
            [
                "dev/status",
                "dev/watched/state",
                "s/state",
                "s2/state",
                "stat/tas/POWER1",
                "stat/tas/POWER2",
                "stat/tas/RESULT",
                "tele/tas/LWT",
            ]
        );
        config.relays.push(RelayConfig::shelly("sh", "shelly-1", 0));
        config
            .relays
            .push(RelayConfig::shelly("sh2", "shelly-1", 1));
        let routes = Routes::of(&config, &panel);
        assert_eq!(routes.panel["relay-panel/desk/rpc"], Kind::Shelly);
        assert_eq!(routes.reports["shelly-1/events/rpc"], [6, 7]);
        assert_eq!(routes.reports["shelly-1/status/switch:1"], [7]);
        assert_eq!(routes.availability["shelly-1/online"], [6, 7]);
        // + the reply topic, events/rpc, two status topics and online.
        assert_eq!(routes.topics().len(), 8 + 5);
        for kind in Kind::ALL {
            assert_eq!(named(kind).name(), kind.as_str());
        }
    }
}
