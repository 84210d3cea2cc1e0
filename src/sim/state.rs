//! Kind `state`: a device behind a command topic and a state topic
//! (ESPHome, Zigbee2MQTT, OpenBeken, small daemons). It acts on
//! `payload_on` / `payload_off` (and answers `payload_query`, if set, with
//! its state) on `command_topic`, ignores anything else, and publishes its
//! state on `state_topic` after acting, retained (ESPHome's default), and
//! whenever it connects.
//!
//! Pure: reading a command and building the device's message.

use bytes::Bytes;

use super::{Command, Outgoing, Role};
use crate::config::RelayConfig;
use crate::protocol::{self, RelayState};

/// What a payload on `command_topic` asks.
pub(super) fn command(relay: &RelayConfig, payload: &[u8]) -> Command {
    if payload == relay.payload_on.as_bytes() {
        Command::Switch(RelayState::On)
    } else if payload == relay.payload_off.as_bytes() {
        Command::Switch(RelayState::Off)
    } else if relay.payload_query.as_deref().map(str::as_bytes) == Some(payload) {
        Command::Query
    } else {
        Command::Ignore(format!(
            "not {:?} nor {:?}: {:?}",
            relay.payload_on,
            relay.payload_off,
            protocol::sanitise_device_text(payload)
        ))
    }
}

/// The state payload (`payload_on` / `payload_off`).
pub(super) fn payload(relay: &RelayConfig, state: RelayState) -> &str {
    match state {
        RelayState::On => &relay.payload_on,
        RelayState::Off => &relay.payload_off,
    }
}

/// The state message, retained.
pub(super) fn report(relay: &RelayConfig, state: RelayState) -> Outgoing {
    Outgoing {
        topic: relay.state_topic.clone(),
        payload: Bytes::copy_from_slice(payload(relay, state).as_bytes()),
        retain: true,
        correlation: None,
        source: None,
        role: Role::Report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the relay's own payloads act; the query only when configured.
    #[test]
    fn commands_are_the_relays_payloads() {
        let mut relay = RelayConfig::state("b", "cmnd/QWERT/1", "stat/QWERT/1");
        assert_eq!(command(&relay, b"ON"), Command::Switch(RelayState::On));
        assert_eq!(command(&relay, b"OFF"), Command::Switch(RelayState::Off));
        assert!(matches!(command(&relay, b"on"), Command::Ignore(_)));
        assert!(matches!(command(&relay, b"?"), Command::Ignore(_)));
        relay.payload_query = Some("?".into());
        assert_eq!(command(&relay, b"?"), Command::Query);
        let out = report(&relay, RelayState::On);
        assert_eq!(
            (out.topic.as_str(), &out.payload[..], out.retain),
            ("stat/QWERT/1", &b"ON"[..], true)
        );
    }
}
