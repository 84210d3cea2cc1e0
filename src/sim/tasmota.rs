//! Kind `tasmota`: a Tasmota device, per the vendor's docs. A command
//! arrives on `cmnd/<device>/POWER<n>` (`POWER` for a one-relay device):
//! `ON`, `OFF`, `TOGGLE` (or `1`, `0`, `2`, any case), or an empty payload
//! to ask the state; an argument the firmware cannot read also just shows
//! the state. It answers on `stat/<device>/RESULT` with `{"POWER<n>":"ON"}`
//! and on `stat/<device>/POWER<n>` with `ON`, neither retained (Tasmota's
//! default `PowerRetain 0`). A build with MQTT 5 (Tasmota PR #25050) also
//! answers the request's Response Topic with its Correlation Data, right
//! after the RESULT, with the RESULT's payload.
//!
//! Pure: reading a command and building the device's messages.

use bytes::Bytes;

use super::{Command, Outgoing, Role};
use crate::config::RelayConfig;
use crate::protocol::RelayState;

/// What a `POWER<n>` payload asks.
pub(super) fn command(payload: &[u8]) -> Command {
    let text = String::from_utf8_lossy(payload);
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" => Command::Switch(RelayState::On),
        "off" | "0" | "false" => Command::Switch(RelayState::Off),
        "toggle" | "2" => Command::Toggle,
        _ => Command::Query,
    }
}

/// `ON` / `OFF`.
fn word(state: RelayState) -> &'static str {
    match state {
        RelayState::On => "ON",
        RelayState::Off => "OFF",
    }
}

/// The RESULT payload: `{"POWER<n>":"ON"}`.
pub(super) fn result_payload(relay: &RelayConfig, state: RelayState) -> String {
    let mut result = serde_json::Map::new();
    result.insert(relay.power_key(), word(state).into());
    serde_json::Value::Object(result).to_string()
}

/// The device's messages after acting, in the order it sends them:
/// RESULT, the correlated answer (`response` = the request's Response
/// Topic and Correlation Data, for a build with MQTT 5), `POWER<n>`.
pub(super) fn answer(
    relay: &RelayConfig,
    state: RelayState,
    response: Option<(String, Option<Bytes>)>,
) -> Vec<Outgoing> {
    let result = result_payload(relay, state);
    let mut messages = vec![Outgoing {
        topic: format!("stat/{}/RESULT", relay.device),
        payload: Bytes::from(result.clone()),
        retain: false,
        correlation: None,
        source: None,
        role: Role::Report,
    }];
    if let Some((topic, correlation)) = response {
        messages.push(Outgoing {
            topic,
            payload: Bytes::from(result),
            retain: false,
            correlation,
            source: None,
            role: Role::Tied,
        });
    }
    messages.push(Outgoing {
        topic: format!("stat/{}/{}", relay.device, relay.power_key()),
        payload: Bytes::from_static(word(state).as_bytes()),
        retain: false,
        correlation: None,
        source: None,
        role: Role::Report,
    });
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasmota's spellings of on, off and toggle; anything else (the empty
    /// query included) shows the state.
    #[test]
    fn commands_are_read_as_tasmota_does() {
        for (payload, want) in [
            ("ON", Command::Switch(RelayState::On)),
            ("on", Command::Switch(RelayState::On)),
            ("1", Command::Switch(RelayState::On)),
            ("OFF", Command::Switch(RelayState::Off)),
            ("0", Command::Switch(RelayState::Off)),
            ("TOGGLE", Command::Toggle),
            ("", Command::Query),
            ("blah", Command::Query),
        ] {
            assert_eq!(command(payload.as_bytes()), want, "{payload:?}");
        }
    }

    /// RESULT, then the correlated answer, then `POWER<n>`; the key is
    /// `POWER` for a relay without `power`.
    #[test]
    fn answers_come_in_tasmota_order() {
        let relay = RelayConfig::tasmota("p", "tasmota_8A3F21", Some(2));
        let out = answer(
            &relay,
            RelayState::On,
            Some(("panel/response".into(), Some(Bytes::from_static(b"c")))),
        );
        let topics: Vec<&str> = out.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "stat/tasmota_8A3F21/RESULT",
                "panel/response",
                "stat/tasmota_8A3F21/POWER2"
            ]
        );
        assert_eq!(&out[0].payload[..], br#"{"POWER2":"ON"}"#);
        assert_eq!(out[1].payload, out[0].payload);
        assert_eq!(out[1].correlation.as_deref(), Some(&b"c"[..]));
        assert_eq!(&out[2].payload[..], b"ON");
        let single = RelayConfig::tasmota("q", "plug", None);
        let out = answer(&single, RelayState::Off, None);
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0].payload[..], br#"{"POWER":"OFF"}"#);
        assert_eq!(out[1].topic, "stat/plug/POWER");
    }
}
