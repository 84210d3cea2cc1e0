//! The kinds of device a soak's relays cycle through, what each one's
//! answers are worth as evidence, and its relays' configuration.

use std::fmt;
use std::str::FromStr;

use relay_panel::config::{Kind, RelayConfig};
use relay_panel::outcome::Evidence;

/// A kind of simulated device in a soak: a relay [`Kind`], with Tasmota
/// twice (with and without the MQTT 5 answer), since the two give
/// different evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SoakKind {
    /// This project's contract: answers by Correlation Data.
    Mqtt5,
    /// Shelly Gen2+ RPC: answers by the JSON-RPC id.
    Shelly,
    /// Tasmota without MQTT 5: only reports on `stat/…`.
    Tasmota,
    /// Tasmota built with MQTT 5: reports on `stat/…`, then answers the
    /// Response Topic with the Correlation Data.
    TasmotaMqtt5,
    /// A command topic and a state topic: only reports.
    State,
}

impl SoakKind {
    /// Every kind, in the order relays cycle through them.
    pub const ALL: [SoakKind; 5] = [
        SoakKind::Mqtt5,
        SoakKind::Shelly,
        SoakKind::Tasmota,
        SoakKind::TasmotaMqtt5,
        SoakKind::State,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            SoakKind::Mqtt5 => "mqtt5",
            SoakKind::Shelly => "shelly",
            SoakKind::Tasmota => "tasmota",
            SoakKind::TasmotaMqtt5 => "tasmota-mqtt5",
            SoakKind::State => "state",
        }
    }

    /// The relay kind in the configuration.
    pub fn kind(self) -> Kind {
        match self {
            SoakKind::Mqtt5 => Kind::Mqtt5,
            SoakKind::Shelly => Kind::Shelly,
            SoakKind::Tasmota | SoakKind::TasmotaMqtt5 => Kind::Tasmota,
            SoakKind::State => Kind::State,
        }
    }

    /// What its devices' proper answers are worth: *correlated* (tied to
    /// the request) or only *reported*. A Tasmota with MQTT 5 answers
    /// correlated; when that answer is spoiled its report may still end a
    /// request as reported.
    pub fn evidence(self) -> Evidence {
        match self {
            SoakKind::Mqtt5 | SoakKind::Shelly | SoakKind::TasmotaMqtt5 => Evidence::Correlated,
            SoakKind::Tasmota | SoakKind::State => Evidence::Reported,
        }
    }

    /// Whether its simulator runs the Tasmota build with MQTT 5
    /// ([`relay_panel::sim::Faults::tasmota_mqtt5`], which holds for a
    /// whole simulator).
    pub(super) fn tasmota_mqtt5(self) -> bool {
        self == SoakKind::TasmotaMqtt5
    }

    /// Relay `i` of a run (`run` keeps topics apart from other runs on the
    /// same broker): every kind that can be asked its state without
    /// switching is given a query payload, so queries go to all of them.
    pub(super) fn relay(self, id: &str, run: u32, i: usize) -> RelayConfig {
        match self {
            SoakKind::Mqtt5 => {
                let mut relay = RelayConfig::new(id, &format!("soak/{run:08x}/relay/{i}"));
                relay.payload_query = Some("?".into());
                relay
            }
            SoakKind::Shelly => RelayConfig::shelly(id, &format!("soak-{run:08x}-shelly-{i}"), 0),
            SoakKind::Tasmota | SoakKind::TasmotaMqtt5 => {
                RelayConfig::tasmota(id, &format!("soak_{run:08x}_tasmota_{i}"), None)
            }
            SoakKind::State => {
                let mut relay = RelayConfig::state(
                    id,
                    &format!("soak/{run:08x}/state/{i}/set"),
                    &format!("soak/{run:08x}/state/{i}"),
                );
                relay.payload_query = Some("?".into());
                relay
            }
        }
    }
}

impl fmt::Display for SoakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for SoakKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        SoakKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = SoakKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kind {text:?}: one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names round-trip; relays get their kind and distinct topics.
    #[test]
    fn names_and_relays() {
        for kind in SoakKind::ALL {
            assert_eq!(kind.name().parse::<SoakKind>(), Ok(kind));
            let a = kind.relay("a", 1, 0);
            let b = kind.relay("b", 1, 1);
            assert_eq!(a.kind, kind.kind());
            assert_ne!(a.publish_topic(), b.publish_topic());
            assert!(a.can_query(), "{kind}");
        }
        assert!(
            "zigbee"
                .parse::<SoakKind>()
                .unwrap_err()
                .contains("tasmota-mqtt5")
        );
    }
}
