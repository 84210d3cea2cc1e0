//! Kind `mqtt5`: this project's own contract (README, "Device wire
//! contract"). A request on `request_topic` switches on `payload_on` /
//! `payload_off`, answers `payload_query` with the state, and is answered
//! on its Response Topic with its Correlation Data (none if it had none, so
//! `mosquitto_rr` works). The answer is the new state's payload, or a text
//! for anything else. A request past its `expires_at` is not acted on.
//! A device with a `state_topic` also publishes its state there, retained,
//! whenever it changes (with the MQTT 5 User Property `source`: `MQTT`
//! after a request, `button` after a press) and when it connects.
//!
//! Pure: reading a request and building the device's messages.

use bytes::Bytes;

use super::{Command, FAIL_TEXT, Outgoing, Role, Source};
use crate::config::RelayConfig;
use crate::protocol::{self, RelayState};

/// What a request payload asks.
pub(super) fn command(relay: &RelayConfig, payload: &[u8]) -> Command {
    if payload == relay.payload_on.as_bytes() {
        Command::Switch(RelayState::On)
    } else if payload == relay.payload_off.as_bytes() {
        Command::Switch(RelayState::Off)
    } else if relay.payload_query.as_deref().map(str::as_bytes) == Some(payload) {
        Command::Query
    } else {
        Command::Unknown(format!(
            "unknown command {:?}",
            protocol::sanitise_device_text(payload)
        ))
    }
}

/// The answer's payload: the state after, [`FAIL_TEXT`] for a failing
/// relay, or the text of an unknown command.
pub(super) fn answer_text(
    relay: &RelayConfig,
    command: &Command,
    after: RelayState,
    failing: bool,
) -> String {
    match command {
        _ if failing => FAIL_TEXT.to_owned(),
        Command::Unknown(text) | Command::Ignore(text) => text.clone(),
        Command::Switch(_) | Command::Toggle | Command::Query => match after {
            RelayState::On => relay.payload_on.clone(),
            RelayState::Off => relay.payload_off.clone(),
        },
    }
}

/// The answer on the request's Response Topic.
pub(super) fn answer(response_topic: String, correlation: Option<Bytes>, text: &str) -> Outgoing {
    Outgoing {
        topic: response_topic,
        payload: Bytes::copy_from_slice(text.as_bytes()),
        retain: false,
        correlation,
        source: None,
        role: Role::Tied,
    }
}

/// The state message on `state_topic` (retained), with what switched it
/// when the device knows (`None`: an announcement on connecting); `None`
/// for a relay without a `state_topic` (it has nowhere to say it).
pub(super) fn report(
    relay: &RelayConfig,
    state: RelayState,
    source: Option<Source>,
) -> Option<Outgoing> {
    if relay.state_topic.is_empty() {
        return None;
    }
    let payload = match state {
        RelayState::On => &relay.payload_on,
        RelayState::Off => &relay.payload_off,
    };
    Some(Outgoing {
        topic: relay.state_topic.clone(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        retain: true,
        correlation: None,
        source,
        role: Role::Notice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state message goes to `state_topic`, retained, with the
    /// relay's payload and its source; without a state topic, nothing.
    #[test]
    fn state_messages_only_with_a_state_topic() {
        let mut relay = RelayConfig::new("own", "dev/own");
        relay.payload_on = "start".into();
        assert!(report(&relay, RelayState::On, Some(Source::Button)).is_none());
        relay.state_topic = "dev/own/state".into();
        let out = report(&relay, RelayState::On, Some(Source::Button)).unwrap();
        assert_eq!(
            (out.topic.as_str(), &out.payload[..], out.retain),
            ("dev/own/state", &b"start"[..], true)
        );
        assert_eq!((out.source, out.role), (Some(Source::Button), Role::Notice));
        let out = report(&relay, RelayState::Off, None).unwrap();
        assert_eq!((&out.payload[..], out.source), (&b"0"[..], None));
    }
}
