//! Kind `tasmota`: `ON` / `OFF` (or an empty payload, Tasmota's query) to
//! `cmnd/<device>/POWER<n>`, with this panel's Response Topic and
//! Correlation Data as for `mqtt5`.
//!
//! Tasmota builds with MQTT 5 answer on the Response Topic with the
//! Correlation Data and the JSON `{"POWER<n>":"ON"}`: evidence
//! *correlated*. Every build also publishes `stat/<device>/RESULT` (the
//! same JSON) and `stat/<device>/POWER<n>` (`ON` / `OFF`): tied to nothing,
//! evidence *reported*. An MQTT 5 build publishes RESULT *first*, so a
//! report waits briefly ([`REPORT_WAIT`]) for the correlated answer before
//! the engine settles for it. Other messages come on RESULT too (Tasmota's
//! docs warn of this): only the relay's own `POWER<n>` key decides.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::Value;

use super::{Encoded, RelayKind, RequestContext, StateReport};
use crate::config::RelayConfig;
use crate::protocol::{self, Action, RelayState, Reply};

/// The `tasmota` kind.
pub struct Tasmota;

/// How long a report waits for the correlated answer an MQTT 5 build
/// sends right after it.
pub const REPORT_WAIT: Duration = Duration::from_millis(300);

/// `ON` / `OFF` as Tasmota writes them (its default state texts; any
/// case accepted).
fn state_text(text: &str) -> Option<RelayState> {
    if text.eq_ignore_ascii_case("on") {
        Some(RelayState::On)
    } else if text.eq_ignore_ascii_case("off") {
        Some(RelayState::Off)
    } else {
        None
    }
}

/// The keys that name this relay in Tasmota's JSON: `POWER<n>`, and for
/// relay 1 (or a relay without `power`) also `POWER`, which a one-relay
/// device uses for it.
fn power_keys(relay: &RelayConfig) -> Vec<String> {
    match relay.power {
        None | Some(1) => vec!["POWER".to_owned(), "POWER1".to_owned()],
        Some(n) => vec![format!("POWER{n}")],
    }
}

/// The relay's state in a JSON object such as `{"POWER1":"ON"}`; `None`
/// when the object does not name it (another relay, another command).
fn state_in_json(relay: &RelayConfig, payload: &[u8]) -> Option<RelayState> {
    let object: Value = serde_json::from_slice(payload).ok()?;
    power_keys(relay)
        .iter()
        .find_map(|key| object.get(key).and_then(Value::as_str))
        .and_then(state_text)
}

impl RelayKind for Tasmota {
    fn name(&self) -> &'static str {
        "tasmota"
    }

    fn encode(
        &self,
        relay: &RelayConfig,
        action: Action,
        request: &RequestContext<'_>,
    ) -> Option<Encoded> {
        let payload = match action {
            Action::On => "ON",
            Action::Off => "OFF",
            Action::Query => "",
        };
        Some(Encoded {
            topic: relay.publish_topic(),
            payload: Bytes::from_static(payload.as_bytes()),
            properties: PublishProperties {
                response_topic: Some(request.response_topic.to_owned()),
                correlation_data: Some(Bytes::copy_from_slice(&request.id.0)),
                message_expiry_interval: Some(protocol::expiry_seconds(request.left)),
                user_properties: vec![("operator".to_owned(), request.operator.to_owned())],
                ..Default::default()
            },
        })
    }

    /// The correlated answer: `{"POWER<n>":"ON"}`. Anything else (an
    /// unknown command, another relay's key) is the device's words.
    fn read_answer(&self, relay: &RelayConfig, _action: Action, payload: &[u8]) -> Reply {
        match state_in_json(relay, payload) {
            Some(state) => Reply::State(state),
            None => Reply::DeviceError(protocol::sanitise_device_text(payload)),
        }
    }

    /// `stat/<device>/RESULT` with the relay's key, or
    /// `stat/<device>/POWER<n>` with `ON` / `OFF`.
    fn read_report(&self, relay: &RelayConfig, topic: &str, payload: &[u8]) -> Option<StateReport> {
        let stat = format!("stat/{}/", relay.device);
        let name = topic.strip_prefix(&stat)?;
        let state = if name == "RESULT" {
            state_in_json(relay, payload)
        } else if name == relay.power_key() {
            std::str::from_utf8(payload).ok().and_then(state_text)
        } else {
            None
        };
        // Tasmota does not say what switched it.
        state.map(StateReport::of)
    }

    fn report_answers(&self) -> bool {
        true
    }

    fn report_wait(&self) -> Option<Duration> {
        Some(REPORT_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::protocol::CorrelationId;

    /// ON / OFF / the empty query go to `cmnd/<device>/POWER<n>` with the
    /// Response Topic and Correlation Data of `mqtt5`.
    #[test]
    fn encodes_power_commands_with_correlation() {
        let relay = RelayConfig::tasmota("pump", "tasmota_8A3F21", Some(2));
        let request = RequestContext {
            id: CorrelationId([5; 16]),
            response_topic: "relay-panel/desk/response",
            rpc_src: "relay-panel/desk",
            left: Duration::from_millis(900),
            expires_at: SystemTime::UNIX_EPOCH,
            operator: "bob",
        };
        for (action, payload) in [
            (Action::On, "ON"),
            (Action::Off, "OFF"),
            (Action::Query, ""),
        ] {
            let encoded = Tasmota.encode(&relay, action, &request).unwrap();
            assert_eq!(encoded.topic, "cmnd/tasmota_8A3F21/POWER2");
            assert_eq!(encoded.payload.as_ref(), payload.as_bytes(), "{action}");
            let p = &encoded.properties;
            assert_eq!(
                p.response_topic.as_deref(),
                Some("relay-panel/desk/response")
            );
            assert_eq!(p.correlation_data.as_deref(), Some(&[5u8; 16][..]));
            assert_eq!(p.message_expiry_interval, Some(1));
            assert_eq!(
                p.user_properties,
                [("operator".to_owned(), "bob".to_owned())]
            );
        }
        let single = RelayConfig::tasmota("lamp", "t1", None);
        assert_eq!(
            Tasmota.encode(&single, Action::On, &request).unwrap().topic,
            "cmnd/t1/POWER"
        );
        assert_eq!(Tasmota.name(), "tasmota");
        assert_eq!(Tasmota.report_wait(), Some(REPORT_WAIT));
        assert!(Tasmota.report_answers());
    }

    /// Table: correlated answers; only the relay's own key decides.
    #[test]
    fn reads_correlated_answers() {
        let two = RelayConfig::tasmota("pump", "t", Some(2));
        let one = RelayConfig::tasmota("lamp", "t", None);
        let first = RelayConfig::tasmota("first", "t", Some(1));
        let cases: &[(&RelayConfig, &str, Reply)] = &[
            (&two, r#"{"POWER2":"ON"}"#, Reply::State(RelayState::On)),
            (&two, r#"{"POWER2":"off"}"#, Reply::State(RelayState::Off)),
            (
                &two,
                r#"{"POWER1":"ON"}"#,
                Reply::DeviceError(r#"{"POWER1":"ON"}"#.into()),
            ),
            (&one, r#"{"POWER":"OFF"}"#, Reply::State(RelayState::Off)),
            (&one, r#"{"POWER1":"ON"}"#, Reply::State(RelayState::On)),
            (&first, r#"{"POWER":"ON"}"#, Reply::State(RelayState::On)),
            (
                &two,
                r#"{"Command":"Unknown"}"#,
                Reply::DeviceError(r#"{"Command":"Unknown"}"#.into()),
            ),
            (
                &two,
                r#"{"POWER2":"TOGGLE"}"#,
                Reply::DeviceError(r#"{"POWER2":"TOGGLE"}"#.into()),
            ),
            (&two, "ON", Reply::DeviceError("ON".into())),
        ];
        for (relay, payload, expected) in cases {
            assert_eq!(
                &Tasmota.read_answer(relay, Action::On, payload.as_bytes()),
                expected,
                "{} {payload}",
                relay.id
            );
        }
    }

    /// Table: reports on `stat/…`; other keys, topics and devices say
    /// nothing about the relay.
    #[test]
    fn reads_reports_on_stat_topics() {
        let two = RelayConfig::tasmota("pump", "t", Some(2));
        let one = RelayConfig::tasmota("lamp", "t", None);
        let cases: &[(&RelayConfig, &str, &str, Option<RelayState>)] = &[
            (
                &two,
                "stat/t/RESULT",
                r#"{"POWER2":"ON"}"#,
                Some(RelayState::On),
            ),
            (&two, "stat/t/RESULT", r#"{"POWER1":"ON"}"#, None),
            (&two, "stat/t/RESULT", r#"{"Dimmer":40}"#, None),
            (&two, "stat/t/RESULT", "not json", None),
            (&two, "stat/t/POWER2", "OFF", Some(RelayState::Off)),
            (&two, "stat/t/POWER1", "OFF", None),
            (&two, "stat/t/POWER2", "garbage", None),
            (&two, "stat/other/POWER2", "ON", None),
            (&two, "tele/t/STATE", r#"{"POWER2":"ON"}"#, None),
            (&one, "stat/t/POWER", "ON", Some(RelayState::On)),
            (
                &one,
                "stat/t/RESULT",
                r#"{"POWER":"OFF"}"#,
                Some(RelayState::Off),
            ),
        ];
        for (relay, topic, payload, expected) in cases {
            assert_eq!(
                Tasmota
                    .read_report(relay, topic, payload.as_bytes())
                    .map(|report| report.state),
                *expected,
                "{} {topic} {payload}",
                relay.id
            );
        }
    }
}
