//! The rules a configuration must keep, and where in the file a broken
//! rule is.
//!
//! [`Config::validate`] is shared by the file loader and the settings
//! window, so a file the panel accepts is exactly one the window would
//! let the technician save. Each [`Problem`] carries a [`Place`]; the
//! loader turns it into a line and column with [`SpanFinder`].

use std::collections::HashMap;
use std::fmt;

use super::{Config, Kind, MAX_TIMEOUT_MS, RelayConfig, Scheme, parse_broker_url};

/// Where in the configuration a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A key of `[broker]`.
    Broker(&'static str),
    /// A key of `[panel]`.
    Panel(&'static str),
    /// A key of the relay at this index of `relays`.
    Relay(usize, &'static str),
}

/// One broken rule, found by [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which key is wrong.
    pub place: Place,
    /// What is wrong and what to do, for the technician.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Topics under this prefix are panels' response topics
/// (`relay-panel/<client-id>/response`): no request may go there, or a
/// panel could receive its own request and take it for an answer.
pub const RESERVED_PREFIX: &str = "relay-panel/";

fn is_reserved(topic: &str) -> bool {
    topic == "relay-panel" || topic.starts_with(RESERVED_PREFIX)
}

fn has_wildcard(topic: &str) -> bool {
    topic.contains(['+', '#'])
}

impl Config {
    /// Every broken rule (empty when the configuration is usable). The
    /// settings window and the file loader share these rules.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |place, message: String| problems.push(Problem { place, message });
        let broker = &self.broker;
        match parse_broker_url(&broker.url) {
            Ok(address) => {
                if address.scheme == Scheme::Plain
                    && (broker.ca_file.is_some() || broker.client_cert.is_some())
                {
                    problem(
                        Place::Broker("url"),
                        format!(
                            "broker url {:?} is plain mqtt:// but TLS files are set; use mqtts://",
                            broker.url
                        ),
                    );
                }
            }
            Err(error) => problem(Place::Broker("url"), error.to_string()),
        }
        if broker.client_cert.is_some() != broker.client_key.is_some() {
            problem(
                Place::Broker("client_cert"),
                "client_cert and client_key go together: set both or neither".to_owned(),
            );
        }
        let sources = [
            broker.password.is_some(),
            broker.password_env.is_some(),
            broker.password_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            problem(
                Place::Broker("password"),
                "set only one of password, password_env and password_file".to_owned(),
            );
        } else if sources.iter().any(|s| *s) && broker.username.is_none() {
            problem(
                Place::Broker("password"),
                "a password is set but username is not".to_owned(),
            );
        }
        if let Some(id) = &broker.client_id
            && (id.is_empty() || id.contains(['+', '#', '/']) || id.chars().any(char::is_control))
        {
            problem(
                Place::Broker("client_id"),
                format!(
                    "client_id {id:?} must be non-empty without '/', '+', '#' (it names this panel's response topic)"
                ),
            );
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&broker.request_timeout_ms) {
            problem(
                Place::Broker("request_timeout_ms"),
                format!(
                    "request_timeout_ms = {} is out of range (1 to {MAX_TIMEOUT_MS})",
                    broker.request_timeout_ms
                ),
            );
        }

        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (index, relay) in self.relays.iter().enumerate() {
            let who = who(index, relay);
            if relay.id.trim().is_empty() {
                problem(Place::Relay(index, "id"), format!("{who}: id is empty"));
            } else if let Some(first) = ids.insert(&relay.id, index) {
                ids.insert(&self.relays[first].id, first);
                problem(
                    Place::Relay(index, "id"),
                    format!("{who}: duplicate id (relay #{} has it too)", first + 1),
                );
            }
            for key in relay.foreign_keys() {
                problem(
                    Place::Relay(index, key),
                    foreign_key_message(&who, key, relay.kind),
                );
            }
            for (key, message) in kind_rules(relay) {
                problem(Place::Relay(index, key), format!("{who}: {message}"));
            }
            if let Some(ms) = relay.timeout_ms
                && !(1..=MAX_TIMEOUT_MS).contains(&ms)
            {
                problem(
                    Place::Relay(index, "timeout_ms"),
                    format!("{who}: timeout_ms = {ms} is out of range (1 to {MAX_TIMEOUT_MS})"),
                );
            }
        }
        for (index, key, message) in topic_clashes(&self.relays) {
            problem(Place::Relay(index, key), message);
        }
        problems
    }
}

/// How a message names a relay: by id, or by position when it has none.
fn who(index: usize, relay: &RelayConfig) -> String {
    if relay.id.is_empty() {
        format!("relay #{}", index + 1)
    } else {
        format!("relay {:?}", relay.id)
    }
}

/// The message for `key` set on a relay whose kind does not have it.
fn foreign_key_message(who: &str, key: &str, kind: Kind) -> String {
    let owners: Vec<&str> = Kind::owners_of(key).iter().map(|k| k.as_str()).collect();
    let owners = match owners.as_slice() {
        [] => "no kind".to_owned(),
        [one] => format!("kind {one}"),
        [first @ .., last] => format!("kinds {} and {last}", first.join(", ")),
    };
    format!(
        "{who}: {key} is a key of {owners}, not of kind {kind} (set kind = \"…\" or remove {key})"
    )
}

impl RelayConfig {
    /// Keys of other kinds that this relay sets to something other than
    /// their default (a file spelling one out at its default is caught by
    /// [`foreign_keys_in_file`]).
    fn foreign_keys(&self) -> Vec<&'static str> {
        let (on, off) = self.kind.default_payloads();
        let set = [
            ("request_topic", !self.request_topic.is_empty()),
            ("device", !self.device.is_empty()),
            ("switch", self.switch != 0),
            ("power", self.power.is_some()),
            ("command_topic", !self.command_topic.is_empty()),
            ("state_topic", !self.state_topic.is_empty()),
            ("availability_topic", !self.availability_topic.is_empty()),
            (
                "payload_available",
                self.payload_available != super::DEFAULT_PAYLOAD_AVAILABLE,
            ),
            (
                "payload_not_available",
                self.payload_not_available != super::DEFAULT_PAYLOAD_NOT_AVAILABLE,
            ),
            ("payload_on", self.payload_on != on),
            ("payload_off", self.payload_off != off),
            ("payload_query", self.payload_query.is_some()),
        ];
        set.into_iter()
            .filter(|(key, set)| *set && !self.kind.has_key(key))
            .map(|(key, _)| key)
            .collect()
    }
}

/// Keys of other kinds written in the file's `[[relay]]` tables, even at
/// their defaults (`payload_on = "ON"` on a `tasmota` relay is still a
/// mistake to name). Only the file loader can see these: `written` holds,
/// per relay, the keys its table spells out of those some kind owns.
pub(super) fn foreign_keys_written(written: &[Vec<&'static str>], config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    for ((index, keys), relay) in written.iter().enumerate().zip(&config.relays) {
        for &key in keys {
            if relay.kind.has_key(key) || relay.foreign_keys().contains(&key) {
                continue;
            }
            problems.push(Problem {
                place: Place::Relay(index, key),
                message: foreign_key_message(&who(index, relay), key, relay.kind),
            });
        }
    }
    problems
}

/// What is wrong with `topic` as a topic this panel publishes to or
/// listens on, if anything. `key` names it in the message.
fn topic_problem(key: &str, topic: &str) -> Option<String> {
    if topic.is_empty() {
        Some(format!("{key} is empty"))
    } else if has_wildcard(topic) {
        Some(format!(
            "{key} {topic:?} contains a wildcard ('+' or '#'); a relay is exactly one device"
        ))
    } else if topic.contains('\0') {
        Some(format!("{key} contains a NUL character"))
    } else if is_reserved(topic) {
        Some(format!(
            "{key} {topic:?} is under {RESERVED_PREFIX:?}, where panels receive their answers; \
             a request there could be taken for a device's answer. Use the device's own topic"
        ))
    } else {
        None
    }
}

/// The rules of the relay's own kind: its required keys are there, its
/// topics are usable, its payloads tell on from off. Each is the key it
/// is about and the message (without the relay's name).
fn kind_rules(relay: &RelayConfig) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let mut topic = |key: &'static str, value: &str, what: &str| {
        if value.is_empty() {
            problems.push((
                key,
                format!(
                    "{key} is empty or missing (kind {} needs {what})",
                    relay.kind
                ),
            ));
        } else if let Some(message) = topic_problem(key, value) {
            problems.push((key, message));
        }
    };
    match relay.kind {
        Kind::Mqtt5 => {
            topic(
                "request_topic",
                &relay.request_topic,
                "the topic its device listens on",
            );
            if !relay.state_topic.is_empty() {
                topic("state_topic", &relay.state_topic, "");
                if relay.state_topic == relay.request_topic {
                    problems.push((
                        "state_topic",
                        format!(
                            "state_topic is the request_topic {:?}: the panel would hear its own request as the device's report",
                            relay.request_topic
                        ),
                    ));
                }
            }
        }
        // `<device>/rpc` is reserved exactly when `<device>` is.
        Kind::Shelly => topic("device", &relay.device, "the device's MQTT topic prefix"),
        Kind::Tasmota => {
            topic("device", &relay.device, "the device's %topic%");
            if let Some(n) = relay.power
                && !(1..=32).contains(&n)
            {
                problems.push((
                    "power",
                    format!("power = {n} is out of range (1 to 32: POWER1 to POWER32; omit it for a one-relay device)"),
                ));
            }
        }
        Kind::State => {
            topic(
                "command_topic",
                &relay.command_topic,
                "the topic the device takes commands on",
            );
            topic(
                "state_topic",
                &relay.state_topic,
                "the topic the device reports its state on",
            );
            if !relay.command_topic.is_empty() && relay.command_topic == relay.state_topic {
                problems.push((
                    "state_topic",
                    format!(
                        "state_topic is the command_topic {:?}: the panel would hear its own command as the device's report",
                        relay.command_topic
                    ),
                ));
            }
        }
    }
    if matches!(relay.kind, Kind::Mqtt5 | Kind::State) && !relay.availability_topic.is_empty() {
        if let Some(message) = topic_problem("availability_topic", &relay.availability_topic) {
            problems.push(("availability_topic", message));
        } else if [
            &relay.request_topic,
            &relay.command_topic,
            &relay.state_topic,
        ]
        .contains(&&relay.availability_topic)
        {
            problems.push((
                "availability_topic",
                format!(
                    "availability_topic {:?} is also this relay's command or state topic; \
                     the device's last will needs a topic of its own",
                    relay.availability_topic
                ),
            ));
        }
        if relay.payload_available.is_empty() || relay.payload_not_available.is_empty() {
            problems.push((
                "payload_available",
                "payload_available and payload_not_available must not be empty".to_owned(),
            ));
        } else if relay.payload_available == relay.payload_not_available {
            problems.push((
                "payload_not_available",
                format!(
                    "payload_available and payload_not_available are both {:?}; online could not be told from offline",
                    relay.payload_available
                ),
            ));
        }
    }
    if matches!(relay.kind, Kind::Mqtt5 | Kind::State) {
        if relay.payload_on.is_empty() || relay.payload_off.is_empty() {
            problems.push((
                "payload_on",
                "payload_on and payload_off must not be empty".to_owned(),
            ));
        } else if relay.payload_on == relay.payload_off {
            problems.push((
                "payload_off",
                format!(
                    "payload_on and payload_off are both {:?}; the answer could not tell on from off",
                    relay.payload_on
                ),
            ));
        }
        if let Some(query) = &relay.payload_query
            && (query.is_empty() || *query == relay.payload_on || *query == relay.payload_off)
        {
            problems.push((
                "payload_query",
                format!(
                    "payload_query {query:?} must be non-empty and differ from payload_on and payload_off"
                ),
            ));
        }
    }
    problems
}

/// Topics two relays would share, across kinds: each command must go to
/// one relay's device alone (several Shelly switches share `<device>/rpc`,
/// told apart by the switch id; `POWER` and `POWER1` are the same Tasmota
/// relay), no relay may listen where a command is published (the panel
/// would take its own command for a report), and no two relays listen on
/// the same state topic (Tasmota relays of one device share its
/// `stat/<device>/RESULT`). Relays whose own topics are unusable are left
/// to [`kind_rules`].
fn topic_clashes(relays: &[RelayConfig]) -> Vec<(usize, &'static str, String)> {
    /// The key that names a relay's command topic in its kind.
    fn command_key(relay: &RelayConfig) -> &'static str {
        match relay.kind {
            Kind::Mqtt5 => "request_topic",
            Kind::Shelly | Kind::Tasmota => "device",
            Kind::State => "command_topic",
        }
    }
    /// The topics a relay's commands go to: Tasmota takes `POWER` as
    /// `POWER1`, so relay 1 of a Tasmota is reached under both.
    fn aliases(relay: &RelayConfig) -> Vec<String> {
        match (relay.kind, relay.power) {
            (Kind::Tasmota, None | Some(1)) => vec![
                format!("cmnd/{}/POWER", relay.device),
                format!("cmnd/{}/POWER1", relay.device),
            ],
            _ => vec![relay.publish_topic()],
        }
    }
    /// Two Shelly switches of one device share its `<device>/rpc`.
    fn shared(a: &RelayConfig, b: &RelayConfig) -> bool {
        a.kind == Kind::Shelly && b.kind == Kind::Shelly && a.switch != b.switch
    }
    let usable = |relay: &RelayConfig| kind_rules(relay).is_empty();
    let mut clashes = Vec::new();
    let mut published: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, relay) in relays.iter().enumerate() {
        if !usable(relay) {
            continue;
        }
        let clash = aliases(relay).into_iter().find_map(|topic| {
            published
                .get(&topic)?
                .iter()
                .copied()
                .find(|&other| !shared(&relays[other], relay))
        });
        if let Some(first) = clash {
            let other = &relays[first].id;
            let topic = relay.publish_topic();
            let what = match (relay.kind, relays[first].kind) {
                (Kind::Shelly, Kind::Shelly) => format!(
                    "switch {} of device {:?} is also used by relay {other:?}",
                    relay.switch, relay.device
                ),
                (Kind::Mqtt5 | Kind::State, _) => {
                    format!(
                        "{} {topic:?} is also used by relay {other:?}",
                        command_key(relay)
                    )
                }
                _ => format!("its commands go to {topic:?}, which relay {other:?} also uses"),
            };
            clashes.push((
                index,
                command_key(relay),
                format!("{}: {what}; answers would be confused", who(index, relay)),
            ));
        }
        for topic in aliases(relay) {
            published.entry(topic).or_default().push(index);
        }
    }
    let mut listened: HashMap<String, usize> = HashMap::new();
    for (index, relay) in relays.iter().enumerate() {
        if !usable(relay) {
            continue;
        }
        let key = match relay.kind {
            Kind::Mqtt5 | Kind::State => "state_topic",
            Kind::Shelly | Kind::Tasmota => "device",
        };
        for topic in relay.report_topics() {
            if let Some(users) = published.get(&topic)
                && let Some(&other) = users.first()
            {
                clashes.push((
                    index,
                    key,
                    format!(
                        "{}: listens on {topic:?}, where commands to relay {:?} are published; \
                         the panel would take its own command for a report",
                        who(index, relay),
                        relays[other].id
                    ),
                ));
                continue;
            }
            match listened.get(&topic) {
                Some(&first)
                    if !(relay.shares_report_topic(&topic)
                        && relays[first].kind == relay.kind
                        && relays[first].device == relay.device) =>
                {
                    clashes.push((
                        index,
                        key,
                        format!(
                            "{}: state topic {topic:?} is also relay {:?}'s; its reports would be taken for both",
                            who(index, relay),
                            relays[first].id
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    listened.insert(topic, index);
                }
            }
        }
    }
    // A last will where commands are published would read the panel's own
    // commands as the device going on- or offline.
    for (index, relay) in relays.iter().enumerate() {
        if !usable(relay) {
            continue;
        }
        let Some(topic) = relay.availability_topic() else {
            continue;
        };
        if let Some(&other) = published.get(&topic).and_then(|users| users.first()) {
            let key = match relay.kind {
                Kind::Mqtt5 | Kind::State => "availability_topic",
                Kind::Shelly | Kind::Tasmota => "device",
            };
            clashes.push((
                index,
                key,
                format!(
                    "{}: its availability topic {topic:?} is where commands to relay {:?} are published",
                    who(index, relay),
                    relays[other].id
                ),
            ));
        }
    }
    clashes
}

/// Finds the text position of a [`Place`] in the original file.
pub(super) struct SpanFinder {
    doc: Option<toml_edit::Document<String>>,
}

impl SpanFinder {
    pub(super) fn new(text: &str) -> Self {
        SpanFinder {
            doc: toml_edit::Document::parse(text.to_owned()).ok(),
        }
    }

    pub(super) fn offset(&self, place: &Place) -> usize {
        let Some(doc) = &self.doc else { return 0 };
        let root = doc.as_table();
        let (table, key) = match place {
            Place::Broker(key) => (root.get("broker").and_then(|i| i.as_table()), *key),
            Place::Panel(key) => (root.get("panel").and_then(|i| i.as_table()), *key),
            Place::Relay(index, key) => (
                root.get("relay")
                    .and_then(|i| i.as_array_of_tables())
                    .and_then(|a| a.get(*index)),
                *key,
            ),
        };
        let Some(table) = table else { return 0 };
        table
            .get_key_value(key)
            .and_then(|(k, _)| k.span())
            .or_else(|| table.span())
            .map_or(0, |s| s.start)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ConfigError;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("panel.toml"))
    }

    fn error_text(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// Each rule gives a message naming file, line, column and the relay.
    #[test]
    fn every_rule_names_file_line_and_relay() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\ncolour = 1\n",
                "panel.toml:6:1",
                "unknown field `colour`",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"u\"\n",
                "panel.toml:7:1",
                "relay \"a\": duplicate id",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\n[[relay]]\nid = \"b\"\nrequest_topic = \"t\"\n",
                "panel.toml:8:1",
                "relay \"b\": request_topic \"t\" is also used by relay \"a\"",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"dev/+/x\"\n",
                "panel.toml:5:1",
                "wildcard",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"dev/#\"\n",
                "panel.toml:5:1",
                "wildcard",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"\"\n",
                "panel.toml:5:1",
                "request_topic is empty",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\npayload_on = \"x\"\npayload_off = \"x\"\n",
                "panel.toml:7:1",
                "payload_on and payload_off are both \"x\"",
            ),
            (
                "[broker]\nurl = \"http://h\"\n",
                "panel.toml:2:1",
                "use mqtt:// or mqtts://",
            ),
            (
                "[broker]\nurl = \"not a url\"\n",
                "panel.toml:2:1",
                "is not a URL",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\ntimeout_ms = \"fast\"\n",
                "panel.toml:6:14",
                "invalid type",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\npayload_query = \"1\"\n",
                "panel.toml:6:1",
                "payload_query",
            ),
            ("[broker\n", "panel.toml:1:8", ""),
            (
                // The panel would receive its own request as an "answer".
                "[broker]\nurl = \"mqtt://h\"\nclient_id = \"desk\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"relay-panel/desk/response\"\n",
                "panel.toml:6:1",
                "relay \"a\": request_topic \"relay-panel/desk/response\" is under \"relay-panel/\"",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\n[[relay]]\nid = \"a\"\nrequest_topic = \"relay-panel/other\"\n",
                "panel.toml:5:1",
                "where panels receive their answers",
            ),
            (
                "[broker]\nurl = \"mqtt://h\"\nclient_id = \"a/b\"\n",
                "panel.toml:3:1",
                "client_id",
            ),
        ];
        for (text, place, fragment) in cases {
            let message = error_text(text);
            assert!(
                message.starts_with(place) && message.contains(fragment),
                "for {text:?}: expected {place} and {fragment:?}, got {message:?}"
            );
        }
    }

    /// Each kind checks its own keys: another kind's key is named with
    /// its kind, required keys must be there, and topics stay unique
    /// across kinds.
    #[test]
    fn kinds_check_their_own_keys() {
        const HEAD: &str = "[broker]\nurl = \"mqtt://h\"\n";
        let cases: &[(&str, &str, &str)] = &[
            (
                "[[relay]]\nid = \"a\"\nrequest_topic = \"t\"\nswitch = 1\n",
                "panel.toml:6:1",
                "relay \"a\": switch is a key of kind shelly, not of kind mqtt5",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"shelly\"\ndevice = \"d\"\nrequest_topic = \"t\"\n",
                "panel.toml:7:1",
                "request_topic is a key of kind mqtt5, not of kind shelly",
            ),
            (
                // Spelled out at its default, still a mistake.
                "[[relay]]\nid = \"a\"\nkind = \"tasmota\"\ndevice = \"d\"\npayload_on = \"ON\"\n",
                "panel.toml:7:1",
                "payload_on is a key of kinds mqtt5 and state, not of kind tasmota",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"state\"\ncommand_topic = \"c\"\nstate_topic = \"s\"\ndevice = \"d\"\n",
                "panel.toml:8:1",
                "device is a key of kinds shelly and tasmota, not of kind state",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"shelly\"\n",
                "panel.toml:3:1",
                "device is empty or missing (kind shelly",
            ),
            (
                "[[relay]]\nid = \"a\"\n",
                "panel.toml:3:1",
                "request_topic is empty or missing (kind mqtt5",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"state\"\ncommand_topic = \"c\"\n",
                "panel.toml:3:1",
                "state_topic is empty or missing",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"state\"\ncommand_topic = \"c\"\nstate_topic = \"c\"\n",
                "panel.toml:7:1",
                "would hear its own command",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"state\"\ncommand_topic = \"c/+\"\nstate_topic = \"s\"\n",
                "panel.toml:6:1",
                "wildcard",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"shelly\"\ndevice = \"s/#\"\n",
                "panel.toml:6:1",
                "wildcard",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"shelly\"\ndevice = \"relay-panel/x\"\n",
                "panel.toml:6:1",
                "where panels receive their answers",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"tasmota\"\ndevice = \"t\"\npower = 0\n",
                "panel.toml:7:1",
                "power = 0 is out of range",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"relayboard\"\n",
                "panel.toml:5:8",
                "unknown variant `relayboard`",
            ),
            (
                // Two switches of one Shelly are fine; the same one twice is not.
                "[[relay]]\nid = \"a\"\nkind = \"shelly\"\ndevice = \"s\"\n[[relay]]\nid = \"b\"\nkind = \"shelly\"\ndevice = \"s\"\nswitch = 1\n[[relay]]\nid = \"c\"\nkind = \"shelly\"\ndevice = \"s\"\nswitch = 1\n",
                "panel.toml:15:1",
                "relay \"c\": switch 1 of device \"s\" is also used by relay \"b\"",
            ),
            (
                // POWER is POWER1.
                "[[relay]]\nid = \"a\"\nkind = \"tasmota\"\ndevice = \"t\"\n[[relay]]\nid = \"b\"\nkind = \"tasmota\"\ndevice = \"t\"\npower = 1\n",
                "panel.toml:10:1",
                "relay \"b\": its commands go to \"cmnd/t/POWER1\", which relay \"a\" also uses",
            ),
            (
                "[[relay]]\nid = \"a\"\nrequest_topic = \"cmnd/t/POWER\"\n[[relay]]\nid = \"b\"\nkind = \"tasmota\"\ndevice = \"t\"\n",
                "panel.toml:9:1",
                "relay \"b\": its commands go to \"cmnd/t/POWER\", which relay \"a\" also uses",
            ),
            (
                "[[relay]]\nid = \"a\"\nrequest_topic = \"stat/q\"\n[[relay]]\nid = \"b\"\nkind = \"state\"\ncommand_topic = \"cmnd/q\"\nstate_topic = \"stat/q\"\n",
                "panel.toml:10:1",
                "relay \"b\": listens on \"stat/q\", where commands to relay \"a\" are published",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"state\"\ncommand_topic = \"c/1\"\nstate_topic = \"s\"\n[[relay]]\nid = \"b\"\nkind = \"state\"\ncommand_topic = \"c/2\"\nstate_topic = \"s\"\n",
                "panel.toml:12:1",
                "relay \"b\": state topic \"s\" is also relay \"a\"'s",
            ),
            (
                "[[relay]]\nid = \"a\"\nkind = \"tasmota\"\ndevice = \"t\"\n[[relay]]\nid = \"b\"\nkind = \"state\"\ncommand_topic = \"c/2\"\nstate_topic = \"stat/t/RESULT\"\n",
                "panel.toml:11:1",
                "relay \"b\": state topic \"stat/t/RESULT\" is also relay \"a\"'s",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|(relays, place, fragment)| {
                let text = format!("{HEAD}{relays}");
                let message = error_text(&text);
                (!(message.starts_with(place) && message.contains(fragment))).then(|| {
                    format!("for {text:?}: expected {place} and {fragment:?}, got {message:?}")
                })
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        // Relays of one Tasmota share its RESULT topic.
        let two_powers = format!(
            "{HEAD}[[relay]]\nid = \"a\"\nkind = \"tasmota\"\ndevice = \"t\"\npower = 1\n\
             [[relay]]\nid = \"b\"\nkind = \"tasmota\"\ndevice = \"t\"\npower = 2\n"
        );
        parse(&two_powers).unwrap();
    }
}
