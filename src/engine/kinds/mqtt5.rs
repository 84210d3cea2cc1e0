//! Kind `mqtt5`: this project's own contract (README, "Device wire
//! contract"). The request goes to `request_topic` with this panel's
//! Response Topic, 16 bytes of Correlation Data, a Message Expiry of the
//! time left and the `expires_at` and `operator` User Properties; the
//! answer comes back on the response topic with the Correlation Data.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use super::{Encoded, RelayKind, RequestContext, StateReport};
use crate::config::RelayConfig;
use crate::protocol::{self, Action, Reply};

/// The `mqtt5` kind.
pub struct Mqtt5;

impl RelayKind for Mqtt5 {
    fn name(&self) -> &'static str {
        "mqtt5"
    }

    fn encode(
        &self,
        relay: &RelayConfig,
        action: Action,
        request: &RequestContext<'_>,
    ) -> Option<Encoded> {
        let payload = action.payload(relay)?;
        let expires_at = chrono::DateTime::<chrono::Utc>::from(request.expires_at)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Some(Encoded {
            topic: relay.request_topic.clone(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            properties: PublishProperties {
                response_topic: Some(request.response_topic.to_owned()),
                correlation_data: Some(Bytes::copy_from_slice(&request.id.0)),
                message_expiry_interval: Some(protocol::expiry_seconds(request.left)),
                user_properties: vec![
                    ("operator".to_owned(), request.operator.to_owned()),
                    (protocol::EXPIRES_AT.to_owned(), expires_at),
                ],
                ..Default::default()
            },
        })
    }

    fn read_answer(&self, relay: &RelayConfig, _action: Action, payload: &[u8]) -> Reply {
        protocol::parse_reply(payload, relay)
    }

    /// `payload_on` / `payload_off` on the optional `state_topic`, where
    /// the device publishes its state whenever it changes: a change at the
    /// device (what switched it travels as the User Property `source`,
    /// read by the engine). Requests are answered by the reply alone.
    fn read_report(&self, relay: &RelayConfig, topic: &str, payload: &[u8]) -> Option<StateReport> {
        super::state::read_state_topic(relay, topic, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CorrelationId, RelayState};
    use std::time::{Duration, SystemTime};

    /// The request carries everything the contract names, with the
    /// payloads of the relay's configuration; a query is only encoded for
    /// a relay that has a query payload.
    #[test]
    fn encodes_the_contract() {
        let mut relay = RelayConfig::new("pump-1", "device_1/relay_1");
        let request = RequestContext {
            id: CorrelationId([3; 16]),
            response_topic: "relay-panel/desk/response",
            rpc_src: "relay-panel/desk",
            left: Duration::from_millis(2500),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_000_000_250),
            operator: "alice",
        };
        let on = Mqtt5.encode(&relay, Action::On, &request).unwrap();
        assert_eq!(on.topic, "device_1/relay_1");
        assert_eq!(on.payload.as_ref(), b"1");
        let p = &on.properties;
        assert_eq!(
            p.response_topic.as_deref(),
            Some("relay-panel/desk/response")
        );
        assert_eq!(p.correlation_data.as_deref(), Some(&[3u8; 16][..]));
        assert_eq!(p.message_expiry_interval, Some(3), "rounded up");
        assert_eq!(
            p.user_properties,
            vec![
                ("operator".to_owned(), "alice".to_owned()),
                (
                    "expires_at".to_owned(),
                    "2026-11-30T00:53:20.250Z".to_owned()
                ),
            ]
        );
        assert_eq!(
            Mqtt5
                .encode(&relay, Action::Off, &request)
                .unwrap()
                .payload
                .as_ref(),
            b"0"
        );
        assert!(Mqtt5.encode(&relay, Action::Query, &request).is_none());
        relay.payload_query = Some("?".into());
        assert_eq!(
            Mqtt5
                .encode(&relay, Action::Query, &request)
                .unwrap()
                .payload
                .as_ref(),
            b"?"
        );
        assert_eq!(
            Mqtt5.read_answer(&relay, Action::On, b"1"),
            Reply::State(RelayState::On)
        );
        assert!(relay.report_topics().is_empty());
        assert_eq!(Mqtt5.report_wait(), None);
        assert!(!Mqtt5.report_answers());
        // The optional state topic tells changes at the device.
        assert_eq!(Mqtt5.read_report(&relay, "dev/state", b"1"), None);
        relay.state_topic = "dev/state".into();
        assert_eq!(relay.report_topics(), ["dev/state"]);
        assert_eq!(
            Mqtt5.read_report(&relay, "dev/state", b"1"),
            Some(StateReport::of(RelayState::On))
        );
        assert_eq!(Mqtt5.read_report(&relay, "dev/state", b"?"), None);
        assert_eq!(Mqtt5.read_report(&relay, "dev/other", b"0"), None);
        assert_eq!(Mqtt5.name(), "mqtt5");
    }
}
