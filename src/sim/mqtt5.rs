//! Kind `mqtt5`: this project's own contract (README, "Device wire
//! contract"). A request on `request_topic` switches on `payload_on` /
//! `payload_off`, answers `payload_query` with the state, and is answered
//! on its Response Topic with its Correlation Data (none if it had none, so
//! `mosquitto_rr` works). The answer is the new state's payload, or a text
//! for anything else. A request past its `expires_at` is not acted on.
//!
//! Pure: reading a request and building the device's answer.

use bytes::Bytes;

use super::{Command, FAIL_TEXT, Outgoing, Role};
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
        role: Role::Tied,
    }
}
