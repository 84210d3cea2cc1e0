//! Kind `state`: a command topic and a state topic (ESPHome,
//! Zigbee2MQTT, OpenBeken, small daemons). The payload goes to
//! `command_topic`; the first message on `state_topic` after the command
//! was handed to the client that equals `payload_on` / `payload_off` is
//! the device's report: evidence *reported* (nothing ties it to the
//! command). `payload_query`, when configured, asks without switching.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use super::{Encoded, RelayKind, RequestContext, StateReport};
use crate::config::RelayConfig;
use crate::protocol::{self, Action, Reply};

/// The `state` kind.
pub struct State;

/// `payload_on` / `payload_off` on the relay's `state_topic` (kinds
/// `state` and `mqtt5`); anything else (an availability text, a JSON
/// status) says nothing.
pub(super) fn read_state_topic(
    relay: &RelayConfig,
    topic: &str,
    payload: &[u8],
) -> Option<StateReport> {
    if relay.state_topic.is_empty() || topic != relay.state_topic {
        return None;
    }
    match protocol::parse_reply(payload, relay) {
        Reply::State(state) => Some(StateReport::of(state)),
        Reply::DeviceError(_) => None,
    }
}

impl RelayKind for State {
    fn name(&self) -> &'static str {
        "state"
    }

    fn encode(
        &self,
        relay: &RelayConfig,
        action: Action,
        request: &RequestContext<'_>,
    ) -> Option<Encoded> {
        let payload = action.payload(relay)?;
        Some(Encoded {
            topic: relay.command_topic.clone(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            // Such devices know nothing of Response Topics; the expiry
            // still keeps a late command from acting.
            properties: PublishProperties {
                message_expiry_interval: Some(protocol::expiry_seconds(request.left)),
                user_properties: vec![("operator".to_owned(), request.operator.to_owned())],
                ..Default::default()
            },
        })
    }

    /// No correlated answers come for this kind; should one, it is read
    /// against the relay's payloads.
    fn read_answer(&self, relay: &RelayConfig, _action: Action, payload: &[u8]) -> Reply {
        protocol::parse_reply(payload, relay)
    }

    /// `payload_on` / `payload_off` on `state_topic`; anything else (an
    /// availability text, a JSON status) says nothing.
    fn read_report(&self, relay: &RelayConfig, topic: &str, payload: &[u8]) -> Option<StateReport> {
        read_state_topic(relay, topic, payload)
    }

    fn report_answers(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::protocol::{CorrelationId, RelayState};

    /// Payloads go to the command topic, without a Response Topic; the
    /// query only when configured.
    #[test]
    fn encodes_to_the_command_topic() {
        let mut relay = RelayConfig::state("bench", "cmnd/QWERT/1", "stat/QWERT/1");
        let request = RequestContext {
            id: CorrelationId([1; 16]),
            response_topic: "relay-panel/desk/response",
            rpc_src: "relay-panel/desk",
            left: Duration::from_millis(3000),
            expires_at: SystemTime::UNIX_EPOCH,
            operator: "carol",
        };
        let on = State.encode(&relay, Action::On, &request).unwrap();
        assert_eq!(on.topic, "cmnd/QWERT/1");
        assert_eq!(on.payload.as_ref(), b"ON");
        assert_eq!(on.properties.response_topic, None);
        assert_eq!(on.properties.correlation_data, None);
        assert_eq!(on.properties.message_expiry_interval, Some(3));
        assert_eq!(
            on.properties.user_properties,
            [("operator".to_owned(), "carol".to_owned())]
        );
        let off = State.encode(&relay, Action::Off, &request).unwrap();
        assert_eq!(off.payload.as_ref(), b"OFF");
        assert!(State.encode(&relay, Action::Query, &request).is_none());
        relay.payload_query = Some("STATUS".into());
        let query = State.encode(&relay, Action::Query, &request).unwrap();
        assert_eq!(query.payload.as_ref(), b"STATUS");
        assert_eq!(State.name(), "state");
        assert_eq!(State.report_wait(), None);
        assert!(State.report_answers());
    }

    /// Table: only the relay's payloads on its state topic are reports.
    #[test]
    fn reads_reports_on_the_state_topic() {
        let relay = RelayConfig::state("bench", "c", "s");
        let cases: &[(&str, &str, Option<RelayState>)] = &[
            ("s", "ON", Some(RelayState::On)),
            ("s", "OFF", Some(RelayState::Off)),
            ("s", "on", None),
            ("s", "online", None),
            ("s", "", None),
            ("c", "ON", None),
            ("other", "ON", None),
        ];
        for (topic, payload, expected) in cases {
            assert_eq!(
                State
                    .read_report(&relay, topic, payload.as_bytes())
                    .map(|report| report.state),
                *expected,
                "{topic} {payload}"
            );
        }
        assert_eq!(
            State.read_answer(&relay, Action::On, b"ON"),
            Reply::State(RelayState::On)
        );
    }
}
