//! The rules a configuration must keep, and where in the file a broken
//! rule is.
//!
//! [`Config::validate`] is shared by the file loader and the settings
//! window, so a file the panel accepts is exactly one the window would
//! let the technician save. Each [`Problem`] carries a [`Place`]; the
//! loader turns it into a line and column with [`SpanFinder`].

use std::collections::HashMap;
use std::fmt;

use super::{Config, MAX_TIMEOUT_MS, Scheme, parse_broker_url};

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
        let mut topics: HashMap<&str, usize> = HashMap::new();
        for (index, relay) in self.relays.iter().enumerate() {
            let who = if relay.id.is_empty() {
                format!("relay #{}", index + 1)
            } else {
                format!("relay {:?}", relay.id)
            };
            if relay.id.trim().is_empty() {
                problem(Place::Relay(index, "id"), format!("{who}: id is empty"));
            } else if let Some(first) = ids.insert(&relay.id, index) {
                ids.insert(&self.relays[first].id, first);
                problem(
                    Place::Relay(index, "id"),
                    format!("{who}: duplicate id (relay #{} has it too)", first + 1),
                );
            }
            let topic = &relay.request_topic;
            if topic.is_empty() {
                problem(
                    Place::Relay(index, "request_topic"),
                    format!("{who}: request_topic is empty"),
                );
            } else if has_wildcard(topic) {
                problem(
                    Place::Relay(index, "request_topic"),
                    format!(
                        "{who}: request_topic {topic:?} contains a wildcard ('+' or '#'); a request goes to exactly one device"
                    ),
                );
            } else if topic.contains('\0') {
                problem(
                    Place::Relay(index, "request_topic"),
                    format!("{who}: request_topic contains a NUL character"),
                );
            } else if is_reserved(topic) {
                problem(
                    Place::Relay(index, "request_topic"),
                    format!(
                        "{who}: request_topic {topic:?} is under {RESERVED_PREFIX:?}, where panels receive their answers; \
                         a request there could be taken for a device's answer. Use the device's own topic"
                    ),
                );
            } else if let Some(first) = topics.insert(topic, index) {
                topics.insert(&self.relays[first].request_topic, first);
                problem(
                    Place::Relay(index, "request_topic"),
                    format!(
                        "{who}: request_topic {topic:?} is also used by relay {:?}; answers would be confused",
                        self.relays[first].id
                    ),
                );
            }
            if relay.payload_on.is_empty() || relay.payload_off.is_empty() {
                problem(
                    Place::Relay(index, "payload_on"),
                    format!("{who}: payload_on and payload_off must not be empty"),
                );
            } else if relay.payload_on == relay.payload_off {
                problem(
                    Place::Relay(index, "payload_off"),
                    format!(
                        "{who}: payload_on and payload_off are both {:?}; the answer could not tell on from off",
                        relay.payload_on
                    ),
                );
            }
            if let Some(query) = &relay.payload_query
                && (query.is_empty() || *query == relay.payload_on || *query == relay.payload_off)
            {
                problem(
                    Place::Relay(index, "payload_query"),
                    format!(
                        "{who}: payload_query {query:?} must be non-empty and differ from payload_on and payload_off"
                    ),
                );
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
        problems
    }
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
}
