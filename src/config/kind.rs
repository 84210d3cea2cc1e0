//! Relay kinds in the configuration: which keys each kind owns, the
//! defaults it fills in, the topics it derives from them, and the on-disk
//! form of a `[[relay]]` ([`RelayFile`]).
//!
//! The engine's `engine::kinds` speak to the devices; everything here is
//! plain data, shared with validation, the settings window and relayctl.

use serde::{Deserialize, Serialize};

use super::RelayConfig;

/// `kind` of a `[[relay]]`: how its device is spoken to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// This project's MQTT 5 request/response contract (the default).
    #[default]
    Mqtt5,
    /// Shelly Gen2+ JSON-RPC over MQTT (`<device>/rpc`).
    Shelly,
    /// Tasmota (`cmnd/<device>/POWER<n>`, answers on `stat/…` or, with
    /// MQTT 5 builds, the Response Topic).
    Tasmota,
    /// A command topic and a state topic (ESPHome, Zigbee2MQTT, small
    /// daemons).
    State,
}

/// Keys every kind has.
const COMMON_KEYS: &[&str] = &["id", "name", "group", "kind", "timeout_ms", "confirm"];

impl Kind {
    /// Every kind, in the order the settings window offers them.
    pub const ALL: [Kind; 4] = [Kind::Mqtt5, Kind::Shelly, Kind::Tasmota, Kind::State];

    /// The name in the configuration (`kind = "shelly"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mqtt5 => "mqtt5",
            Kind::Shelly => "shelly",
            Kind::Tasmota => "tasmota",
            Kind::State => "state",
        }
    }

    /// What the kind is, in a sentence or two for a technician choosing
    /// one (the settings window's hover), with the evidence its answers
    /// carry.
    pub fn summary(self) -> &'static str {
        match self {
            Kind::Mqtt5 => {
                "This panel's MQTT 5 request/response contract: a request to the request topic, \
                 answered on the panel's response topic with its correlation data (confirmed)."
            }
            Kind::Shelly => {
                "Shelly Gen2+ over MQTT: Switch.Set to <device>/rpc, answered by the RPC reply \
                 with the same id (confirmed). Payloads are fixed."
            }
            Kind::Tasmota => {
                "Tasmota: cmnd/<device>/POWER<n>. MQTT 5 builds answer with the correlation data \
                 (confirmed), others on stat/<device>/ (reported). Payloads are fixed (ON / OFF)."
            }
            Kind::State => {
                "A command topic and a state topic (ESPHome, Zigbee2MQTT, small daemons): the \
                 next message on the state topic after a command is the answer (reported)."
            }
        }
    }

    /// The payloads meaning on and off when the file names none. `mqtt5`
    /// and `state` may set their own; for `shelly` (a JSON boolean on the
    /// wire) and `tasmota` (always `ON` / `OFF`) they are fixed and only
    /// shown.
    pub fn default_payloads(self) -> (&'static str, &'static str) {
        match self {
            Kind::Mqtt5 => ("1", "0"),
            Kind::Shelly => ("on", "off"),
            Kind::Tasmota | Kind::State => ("ON", "OFF"),
        }
    }

    /// The keys of a `[[relay]]` of this kind besides the common ones.
    pub fn own_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Mqtt5 => &[
                "request_topic",
                "payload_on",
                "payload_off",
                "payload_query",
                "state_topic",
                "availability_topic",
                "payload_available",
                "payload_not_available",
            ],
            Kind::Shelly => &["device", "switch"],
            Kind::Tasmota => &["device", "power"],
            Kind::State => &[
                "command_topic",
                "state_topic",
                "payload_on",
                "payload_off",
                "payload_query",
                "availability_topic",
                "payload_available",
                "payload_not_available",
            ],
        }
    }

    /// Whether `key` may appear in a `[[relay]]` of this kind.
    pub fn has_key(self, key: &str) -> bool {
        COMMON_KEYS.contains(&key) || self.own_keys().contains(&key)
    }

    /// The kinds that own `key` (for the message naming them), in
    /// [`Kind::ALL`] order.
    pub fn owners_of(key: &str) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|kind| kind.own_keys().contains(&key))
            .collect()
    }

    fn is_default(&self) -> bool {
        *self == Kind::default()
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RelayConfig {
    /// Tasmota's command name for this relay: `POWER<n>`, or `POWER` when
    /// `power` is unset (a one-relay device).
    pub fn power_key(&self) -> String {
        match self.power {
            Some(n) => format!("POWER{n}"),
            None => "POWER".to_owned(),
        }
    }

    /// The topic a command for this relay is published to: `request_topic`
    /// (`mqtt5`), `<device>/rpc` (`shelly`), `cmnd/<device>/POWER<n>`
    /// (`tasmota`) or `command_topic` (`state`).
    pub fn publish_topic(&self) -> String {
        match self.kind {
            Kind::Mqtt5 => self.request_topic.clone(),
            Kind::Shelly => format!("{}/rpc", self.device),
            Kind::Tasmota => format!("cmnd/{}/{}", self.device, self.power_key()),
            Kind::State => self.command_topic.clone(),
        }
    }

    /// The topics on which the device publishes its state by itself, which
    /// the panel subscribes for this relay: `<device>/events/rpc` and
    /// `<device>/status/switch:<n>` (`shelly`), `stat/<device>/RESULT` and
    /// `stat/<device>/POWER<n>` (`tasmota`), `state_topic` (`state`, and
    /// `mqtt5` when it names one).
    pub fn report_topics(&self) -> Vec<String> {
        match self.kind {
            Kind::Mqtt5 if self.state_topic.is_empty() => Vec::new(),
            Kind::Mqtt5 | Kind::State => vec![self.state_topic.clone()],
            Kind::Shelly => vec![
                format!("{}/events/rpc", self.device),
                format!("{}/status/switch:{}", self.device, self.switch),
            ],
            Kind::Tasmota => vec![
                format!("stat/{}/RESULT", self.device),
                format!("stat/{}/{}", self.device, self.power_key()),
            ],
        }
    }

    /// Whether `topic`, one of [`RelayConfig::report_topics`], is one the
    /// device shares among its relays (Shelly's `events/rpc`, Tasmota's
    /// `RESULT`): each relay reads its own part of the message.
    pub fn shares_report_topic(&self, topic: &str) -> bool {
        match self.kind {
            Kind::Shelly => topic == format!("{}/events/rpc", self.device),
            Kind::Tasmota => topic == format!("stat/{}/RESULT", self.device),
            Kind::Mqtt5 | Kind::State => false,
        }
    }

    /// The device's last-will topic, which tells whether it is reachable:
    /// `<device>/online` (`shelly`), `tele/<device>/LWT` (`tasmota`), or
    /// `availability_topic` when set (`mqtt5`, `state`). Several relays of
    /// one device share it.
    pub fn availability_topic(&self) -> Option<String> {
        match self.kind {
            Kind::Shelly => Some(format!("{}/online", self.device)),
            Kind::Tasmota => Some(format!("tele/{}/LWT", self.device)),
            Kind::Mqtt5 | Kind::State if self.availability_topic.is_empty() => None,
            Kind::Mqtt5 | Kind::State => Some(self.availability_topic.clone()),
        }
    }

    /// What a message on [`RelayConfig::availability_topic`] says: `true`
    /// / `false` (`shelly`), `Online` / `Offline` (`tasmota`, any case),
    /// `payload_available` / `payload_not_available` (`mqtt5`, `state`);
    /// `None` for anything else.
    pub fn read_availability(&self, payload: &[u8]) -> Option<bool> {
        let text = std::str::from_utf8(payload).ok()?.trim();
        match self.kind {
            Kind::Shelly => match text {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            Kind::Tasmota => {
                if text.eq_ignore_ascii_case("online") {
                    Some(true)
                } else if text.eq_ignore_ascii_case("offline") {
                    Some(false)
                } else {
                    None
                }
            }
            Kind::Mqtt5 | Kind::State => {
                if text == self.payload_available {
                    Some(true)
                } else if text == self.payload_not_available {
                    Some(false)
                } else {
                    None
                }
            }
        }
    }

    /// One line naming where this relay is, for lists, filters and
    /// tooltips: the request topic, `<device>/rpc switch:<n>`,
    /// `cmnd/<device>/POWER<n>`, or `<command_topic> (state:
    /// <state_topic>)` (no arrow: egui's default fonts have none).
    pub fn topic_label(&self) -> String {
        match self.kind {
            Kind::Mqtt5 | Kind::Tasmota => self.publish_topic(),
            Kind::Shelly => format!("{} switch:{}", self.publish_topic(), self.switch),
            Kind::State => format!("{} (state: {})", self.command_topic, self.state_topic),
        }
    }

    /// Whether the relay can be asked its state without changing it:
    /// always for `shelly` (`Switch.GetStatus`) and `tasmota` (an empty
    /// `POWER<n>`), only with a `payload_query` for `mqtt5` and `state`.
    pub fn can_query(&self) -> bool {
        match self.kind {
            Kind::Shelly | Kind::Tasmota => true,
            Kind::Mqtt5 | Kind::State => self.payload_query.is_some(),
        }
    }

    /// Makes this a relay of `kind` (as the settings window switches it):
    /// keys the new kind does not have go back to their defaults, payloads
    /// left at the old kind's defaults take the new kind's, and `device`
    /// stays between `shelly` and `tasmota`.
    pub fn set_kind(&mut self, kind: Kind) {
        if kind == self.kind {
            return;
        }
        let old_payloads = self.kind.default_payloads();
        let new_payloads = kind.default_payloads();
        let blank = RelayConfig::of_kind(&self.id, kind);
        let has = |key| kind.own_keys().contains(&key);
        if !has("request_topic") {
            self.request_topic = blank.request_topic;
        }
        if !has("device") {
            self.device = blank.device;
        }
        if !has("switch") {
            self.switch = blank.switch;
        }
        if !has("power") {
            self.power = blank.power;
        }
        if !has("command_topic") {
            self.command_topic = blank.command_topic;
        }
        if !has("state_topic") {
            self.state_topic = blank.state_topic;
        }
        if !has("availability_topic") {
            self.availability_topic = blank.availability_topic;
            self.payload_available = blank.payload_available;
            self.payload_not_available = blank.payload_not_available;
        }
        if !has("payload_query") {
            self.payload_query = None;
        }
        if !has("payload_on") || self.payload_on == old_payloads.0 {
            self.payload_on = new_payloads.0.to_owned();
        }
        if !has("payload_off") || self.payload_off == old_payloads.1 {
            self.payload_off = new_payloads.1.to_owned();
        }
        self.kind = kind;
    }
}

/// A `[[relay]]` as written in the file: every key optional, so the
/// payload defaults can follow `kind` (which may come after them), and
/// only the keys of the relay's kind are written back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RelayFile {
    id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(default, skip_serializing_if = "Kind::is_default")]
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    switch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    power: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    availability_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_available: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_not_available: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_off: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    confirm: bool,
}

impl RelayFile {
    /// The keys this table spells out, of those some kind owns (whatever
    /// their values: even a default is written), in field order.
    pub(super) fn kind_keys_written(&self) -> Vec<&'static str> {
        [
            ("request_topic", self.request_topic.is_some()),
            ("device", self.device.is_some()),
            ("switch", self.switch.is_some()),
            ("power", self.power.is_some()),
            ("command_topic", self.command_topic.is_some()),
            ("state_topic", self.state_topic.is_some()),
            ("availability_topic", self.availability_topic.is_some()),
            ("payload_available", self.payload_available.is_some()),
            (
                "payload_not_available",
                self.payload_not_available.is_some(),
            ),
            ("payload_on", self.payload_on.is_some()),
            ("payload_off", self.payload_off.is_some()),
            ("payload_query", self.payload_query.is_some()),
        ]
        .into_iter()
        .filter(|(_, written)| *written)
        .map(|(key, _)| key)
        .collect()
    }
}

impl From<RelayFile> for RelayConfig {
    fn from(file: RelayFile) -> Self {
        let (on, off) = file.kind.default_payloads();
        RelayConfig {
            id: file.id,
            name: file.name,
            group: file.group,
            kind: file.kind,
            request_topic: file.request_topic.unwrap_or_default(),
            device: file.device.unwrap_or_default(),
            switch: file.switch.unwrap_or_default(),
            power: file.power,
            command_topic: file.command_topic.unwrap_or_default(),
            state_topic: file.state_topic.unwrap_or_default(),
            availability_topic: file.availability_topic.unwrap_or_default(),
            payload_available: file
                .payload_available
                .unwrap_or_else(|| super::DEFAULT_PAYLOAD_AVAILABLE.to_owned()),
            payload_not_available: file
                .payload_not_available
                .unwrap_or_else(|| super::DEFAULT_PAYLOAD_NOT_AVAILABLE.to_owned()),
            payload_on: file.payload_on.unwrap_or_else(|| on.to_owned()),
            payload_off: file.payload_off.unwrap_or_else(|| off.to_owned()),
            payload_query: file.payload_query,
            timeout_ms: file.timeout_ms,
            confirm: file.confirm,
        }
    }
}

impl From<RelayConfig> for RelayFile {
    /// Each key of the relay's kind is written (`Config::render` leaves out
    /// the defaults); a key of another kind only when it holds something,
    /// so that a mistake survives to be named by validation rather than
    /// vanish.
    fn from(relay: RelayConfig) -> Self {
        let kind = relay.kind;
        let blank = RelayConfig::of_kind("", kind);
        let keep = |key: &str, set: bool| kind.own_keys().contains(&key) || set;
        let text =
            |key: &str, value: String, default: &str| keep(key, value != default).then_some(value);
        // Keys a kind may leave out (an optional topic, payloads at their
        // defaults): written only when set.
        let optional = |value: String, default: &str| (value != default).then_some(value);
        RelayFile {
            request_topic: text("request_topic", relay.request_topic, ""),
            device: text("device", relay.device, ""),
            switch: keep("switch", relay.switch != blank.switch).then_some(relay.switch),
            power: relay.power,
            command_topic: text("command_topic", relay.command_topic, ""),
            state_topic: optional(relay.state_topic, ""),
            availability_topic: optional(relay.availability_topic, ""),
            payload_available: optional(relay.payload_available, &blank.payload_available),
            payload_not_available: optional(
                relay.payload_not_available,
                &blank.payload_not_available,
            ),
            payload_on: text("payload_on", relay.payload_on, &blank.payload_on),
            payload_off: text("payload_off", relay.payload_off, &blank.payload_off),
            payload_query: relay.payload_query,
            id: relay.id,
            name: relay.name,
            group: relay.group,
            kind,
            timeout_ms: relay.timeout_ms,
            confirm: relay.confirm,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    /// Each kind loads with its own defaults, derives its topics, and
    /// round-trips through TOML unchanged.
    #[test]
    fn kinds_load_with_their_defaults_and_round_trip() {
        let text = r#"
[broker]
url = "mqtt://h"

[[relay]]
id = "porch"
kind = "shelly"
device = "shellyplus1pm-a8032ab12345"

[[relay]]
id = "pump-2"
kind = "tasmota"
device = "tasmota_8A3F21"
power = 2

[[relay]]
id = "lamp"
kind = "tasmota"
device = "tasmota_1"

[[relay]]
id = "bench-1"
kind = "state"
command_topic = "cmnd/QWERT/1"
state_topic = "stat/QWERT/1"

[[relay]]
id = "plain"
request_topic = "dev/plain"
"#;
        let config = Config::parse(text, Path::new("p.toml")).unwrap();
        let [porch, pump, lamp, bench, plain] = &config.relays[..] else {
            panic!("five relays")
        };
        assert_eq!(porch.kind, Kind::Shelly);
        assert_eq!(porch.switch, 0);
        assert_eq!(porch.publish_topic(), "shellyplus1pm-a8032ab12345/rpc");
        assert_eq!(
            porch.report_topics(),
            [
                "shellyplus1pm-a8032ab12345/events/rpc",
                "shellyplus1pm-a8032ab12345/status/switch:0"
            ]
        );
        assert_eq!(
            porch.availability_topic().as_deref(),
            Some("shellyplus1pm-a8032ab12345/online")
        );
        assert_eq!(
            pump.availability_topic().as_deref(),
            Some("tele/tasmota_8A3F21/LWT")
        );
        assert_eq!(plain.availability_topic(), None);
        assert!(plain.report_topics().is_empty());
        assert_eq!(pump.publish_topic(), "cmnd/tasmota_8A3F21/POWER2");
        assert_eq!(
            pump.report_topics(),
            ["stat/tasmota_8A3F21/RESULT", "stat/tasmota_8A3F21/POWER2"]
        );
        assert_eq!(lamp.publish_topic(), "cmnd/tasmota_1/POWER");
        assert_eq!(
            (bench.payload_on.as_str(), bench.payload_off.as_str()),
            ("ON", "OFF")
        );
        assert_eq!(bench.publish_topic(), "cmnd/QWERT/1");
        assert_eq!(bench.report_topics(), ["stat/QWERT/1"]);
        assert_eq!(bench.topic_label(), "cmnd/QWERT/1 (state: stat/QWERT/1)");
        assert_eq!(plain.kind, Kind::Mqtt5);
        assert_eq!(plain.publish_topic(), "dev/plain");
        assert!(porch.can_query() && pump.can_query() && !bench.can_query());
        let again: Config = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
        // Only the kinds' own keys are written.
        let written = toml::to_string(&config).unwrap();
        assert!(!written.contains("payload_on = \"on\""), "{written}");
        assert!(!written.contains("request_topic = \"\""), "{written}");
    }

    /// A new file holds only the keys that differ from the kind's
    /// defaults.
    #[test]
    fn render_writes_only_non_defaults_per_kind() {
        let mut config = Config::new("mqtt://h");
        config
            .relays
            .push(RelayConfig::shelly("porch", "shelly-1", 0));
        config
            .relays
            .push(RelayConfig::tasmota("pump", "tasmota_1", Some(1)));
        config
            .relays
            .push(RelayConfig::state("bench", "c/1", "s/1"));
        let text = config.render("");
        assert_eq!(
            text,
            "[broker]\nurl = \"mqtt://h\"\n\
             \n[[relay]]\nid = \"porch\"\nkind = \"shelly\"\ndevice = \"shelly-1\"\n\
             \n[[relay]]\nid = \"pump\"\nkind = \"tasmota\"\ndevice = \"tasmota_1\"\npower = 1\n\
             \n[[relay]]\nid = \"bench\"\nkind = \"state\"\ncommand_topic = \"c/1\"\nstate_topic = \"s/1\"\n"
        );
        assert_eq!(Config::parse(&text, Path::new("p.toml")).unwrap(), config);
    }

    /// Switching kind clears the old kind's keys and moves default
    /// payloads along; chosen payloads stay.
    #[test]
    fn set_kind_resets_what_the_new_kind_lacks() {
        let mut relay = RelayConfig::new("a", "dev/a");
        relay.payload_query = Some("?".into());
        relay.set_kind(Kind::State);
        assert_eq!(relay, {
            let mut r = RelayConfig::state("a", "", "");
            r.payload_query = Some("?".into());
            r
        });
        relay.payload_on = "START".into();
        relay.set_kind(Kind::Mqtt5);
        assert_eq!(
            (relay.payload_on.as_str(), relay.payload_off.as_str()),
            ("START", "0")
        );
        let mut shelly = RelayConfig::shelly("s", "dev", 1);
        shelly.set_kind(Kind::Tasmota);
        assert_eq!(shelly, RelayConfig::tasmota("s", "dev", None));
        shelly.set_kind(Kind::Mqtt5);
        assert_eq!(shelly, RelayConfig::new("s", ""));
    }
}
