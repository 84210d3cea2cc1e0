//! Kind `shelly`: Shelly Gen2+ JSON-RPC over MQTT (Plus, Pro, Gen3, Gen4).
//!
//! A request is a JSON-RPC frame on `<device>/rpc`:
//! `{"id":N,"src":SRC,"method":"Switch.Set","params":{"id":S,"on":true}}`
//! (`Switch.GetStatus` to ask). The device answers on `<SRC>/rpc` with
//! `{"id":N,"src":<device>,"dst":SRC,"result":{…}}` or an
//! `"error":{"code":…,"message":…}`. The answer is tied to its request by
//! the echoed `id` sent to this panel's own `SRC` (Shelly devices speak
//! MQTT 3.1.1, so there is no Correlation Data): evidence *correlated*.
//!
//! The RPC `id` is the request's [`CorrelationId`] in a form JSON carries
//! exactly: its first six bytes as a number below 2^48 (Shelly's firmware
//! reads JSON numbers as doubles, exact only up to 2^53), the other ten
//! bytes zero ([`Shelly::new_id`]). Six random bytes per request, from a
//! panel whose `SRC` is its own, cannot be guessed by another panel.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::{Value, json};

use super::{Encoded, Identified, PanelTopics, RelayKind, RequestContext, StateReport};
use crate::config::RelayConfig;
use crate::protocol::{self, Action, CORRELATION_LEN, CorrelationId, RelayState, Reply};

/// The `shelly` kind.
pub struct Shelly;

/// Bytes of a [`CorrelationId`] that make the RPC id (the rest are zero).
const RPC_ID_BYTES: usize = 6;

/// The JSON-RPC `id` of a request.
pub fn rpc_id(id: &CorrelationId) -> u64 {
    id.0[..RPC_ID_BYTES]
        .iter()
        .fold(0, |n, byte| (n << 8) | u64::from(*byte))
}

/// The request whose JSON-RPC `id` is `n`, if `n` has the shape this
/// panel sends (below 2^48).
pub fn from_rpc_id(n: u64) -> Option<CorrelationId> {
    if n >> (8 * RPC_ID_BYTES) != 0 {
        return None;
    }
    let mut bytes = [0u8; CORRELATION_LEN];
    bytes[..RPC_ID_BYTES].copy_from_slice(&n.to_be_bytes()[8 - RPC_ID_BYTES..]);
    Some(CorrelationId(bytes))
}

/// The topic a Shelly answers a panel whose `src` is `src` on.
pub fn reply_topic(src: &str) -> String {
    format!("{src}/rpc")
}

/// The output and source in a Switch status object
/// (`{"id":0,"output":true,"source":"button",…}`); `None` without an
/// `output` (a status that only updates power readings).
fn switch_status(status: &Value) -> Option<StateReport> {
    let state = match status.get("output")?.as_bool()? {
        true => RelayState::On,
        false => RelayState::Off,
    };
    let source = status
        .get("source")
        .and_then(Value::as_str)
        .filter(|source| !source.is_empty())
        .map(|source| protocol::sanitise_device_text(source.as_bytes()));
    Some(StateReport { state, source })
}

/// Why a frame on this panel's `<SRC>/rpc` is not an answer.
fn not_an_answer(why: &str, payload: &[u8]) -> String {
    format!(
        "Shelly frame {why}: {}",
        protocol::sanitise_device_text(payload)
    )
}

impl RelayKind for Shelly {
    fn name(&self) -> &'static str {
        "shelly"
    }

    fn new_id(&self) -> CorrelationId {
        let mut bytes = [0u8; CORRELATION_LEN];
        // Zero is kept out: a device that lost the id may echo 0.
        while bytes[..RPC_ID_BYTES] == [0; RPC_ID_BYTES] {
            let random: [u8; RPC_ID_BYTES] = protocol::random_bytes();
            bytes[..RPC_ID_BYTES].copy_from_slice(&random);
        }
        CorrelationId(bytes)
    }

    fn panel_topics(&self, panel: &PanelTopics<'_>) -> Vec<String> {
        vec![reply_topic(panel.rpc_src)]
    }

    fn encode(
        &self,
        relay: &RelayConfig,
        action: Action,
        request: &RequestContext<'_>,
    ) -> Option<Encoded> {
        let (method, params) = match action {
            Action::On | Action::Off => (
                "Switch.Set",
                json!({"id": relay.switch, "on": action == Action::On}),
            ),
            Action::Query => ("Switch.GetStatus", json!({"id": relay.switch})),
        };
        let frame = json!({
            "id": rpc_id(&request.id),
            "src": request.rpc_src,
            "method": method,
            "params": params,
        });
        Some(Encoded {
            topic: relay.publish_topic(),
            payload: Bytes::from(frame.to_string()),
            // No Response Topic or Correlation Data: Shelly answers to
            // `src`. The expiry still keeps a late command from acting.
            properties: PublishProperties {
                message_expiry_interval: Some(protocol::expiry_seconds(request.left)),
                user_properties: vec![("operator".to_owned(), request.operator.to_owned())],
                ..Default::default()
            },
        })
    }

    /// The frame's `id`, `src` and `dst`: a frame not addressed to this
    /// panel's `SRC`, without a `src`, or with an `id` this panel never
    /// sends is no answer. Which device sent it is checked against the
    /// request's relay by [`RelayKind::is_from`].
    fn identify(&self, payload: &[u8], panel: &PanelTopics<'_>) -> Result<Identified, String> {
        let frame: Value =
            serde_json::from_slice(payload).map_err(|_| not_an_answer("is not JSON", payload))?;
        if frame.get("dst").and_then(Value::as_str) != Some(panel.rpc_src) {
            return Err(not_an_answer("is addressed to another panel", payload));
        }
        let from = frame
            .get("src")
            .and_then(Value::as_str)
            .ok_or_else(|| not_an_answer("has no src", payload))?;
        let id = frame
            .get("id")
            .and_then(Value::as_u64)
            .and_then(from_rpc_id)
            .ok_or_else(|| not_an_answer("has no id this panel sends", payload))?;
        Ok(Identified {
            id,
            from: from.to_owned(),
        })
    }

    fn is_from(&self, relay: &RelayConfig, from: &str) -> bool {
        from == relay.device
    }

    /// `NotifyStatus` (or `NotifyFullStatus`) on `<device>/events/rpc`
    /// with `params["switch:<n>"].output`, or the status object on
    /// `<device>/status/switch:<n>`; each with the device's `source` of
    /// the change (`button`, `MQTT`, `HTTP_in`, `init`…). A notification
    /// about other components or without an output says nothing.
    fn read_report(&self, relay: &RelayConfig, topic: &str, payload: &[u8]) -> Option<StateReport> {
        let component = format!("switch:{}", relay.switch);
        let rest = topic.strip_prefix(relay.device.as_str())?;
        let frame: Value = serde_json::from_slice(payload).ok()?;
        if rest == "/events/rpc" {
            let method = frame.get("method")?.as_str()?;
            if method != "NotifyStatus" && method != "NotifyFullStatus" {
                return None;
            }
            switch_status(frame.get("params")?.get(&component)?)
        } else if rest.strip_prefix("/status/") == Some(component.as_str()) {
            switch_status(&frame)
        } else {
            None
        }
    }

    /// `result` of `Switch.Set`: done as asked (its `was_on` is the state
    /// *before*). `result.output` of `Switch.GetStatus`: the state. An
    /// `error` object: its message (and code) as the device's words.
    fn read_answer(&self, _relay: &RelayConfig, action: Action, payload: &[u8]) -> Reply {
        let Ok(frame) = serde_json::from_slice::<Value>(payload) else {
            return Reply::DeviceError(protocol::sanitise_device_text(payload));
        };
        if let Some(error) = frame.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)");
            let text = match error.get("code").and_then(Value::as_i64) {
                Some(code) => format!("{message} (code {code})"),
                None => message.to_owned(),
            };
            return Reply::DeviceError(protocol::sanitise_device_text(text.as_bytes()));
        }
        let Some(result) = frame.get("result") else {
            return Reply::DeviceError(format!(
                "reply without result or error: {}",
                protocol::sanitise_device_text(payload)
            ));
        };
        match action {
            Action::On => Reply::State(RelayState::On),
            Action::Off => Reply::State(RelayState::Off),
            Action::Query => match result.get("output").and_then(Value::as_bool) {
                Some(true) => Reply::State(RelayState::On),
                Some(false) => Reply::State(RelayState::Off),
                None => Reply::DeviceError(format!(
                    "status without output: {}",
                    protocol::sanitise_device_text(payload)
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    const SRC: &str = "relay-panel/desk";

    fn panel() -> PanelTopics<'static> {
        PanelTopics {
            response_topic: "relay-panel/desk/response",
            rpc_src: SRC,
        }
    }

    fn context(id: CorrelationId) -> RequestContext<'static> {
        RequestContext {
            id,
            response_topic: "relay-panel/desk/response",
            rpc_src: SRC,
            left: Duration::from_millis(2500),
            expires_at: SystemTime::UNIX_EPOCH,
            operator: "alice",
        }
    }

    /// RPC ids carry the request exactly, only in the shape this panel
    /// sends, never zero.
    #[test]
    fn rpc_ids_round_trip() {
        for _ in 0..1000 {
            let id = Shelly.new_id();
            let n = rpc_id(&id);
            assert!(n > 0 && n < 1 << 48, "{n}");
            assert_eq!(from_rpc_id(n), Some(id));
        }
        assert_eq!(from_rpc_id(1 << 48), None);
        assert_eq!(from_rpc_id(u64::MAX), None);
        let mut id = [0u8; 16];
        id[5] = 7;
        assert_eq!(rpc_id(&CorrelationId(id)), 7);
        assert_eq!(
            from_rpc_id(0x0102_0304_0506).unwrap().0[..6],
            [1, 2, 3, 4, 5, 6]
        );
    }

    /// Switch.Set and Switch.GetStatus frames go to `<device>/rpc`, with
    /// this panel's `src`, the switch id and the RPC id.
    #[test]
    fn encodes_switch_set_and_get_status() {
        let relay = RelayConfig::shelly("porch", "shellyplus1-a1", 2);
        let id = from_rpc_id(42).unwrap();
        let frame = |action| {
            let encoded = Shelly.encode(&relay, action, &context(id)).unwrap();
            assert_eq!(encoded.topic, "shellyplus1-a1/rpc");
            assert_eq!(encoded.properties.response_topic, None);
            assert_eq!(encoded.properties.correlation_data, None);
            assert_eq!(encoded.properties.message_expiry_interval, Some(3));
            // Who asked travels with the call, as for every kind.
            assert_eq!(
                encoded.properties.user_properties,
                [("operator".to_owned(), context(id).operator.to_owned())]
            );
            serde_json::from_slice::<Value>(&encoded.payload).unwrap()
        };
        assert_eq!(
            frame(Action::On),
            json!({"id": 42, "src": SRC, "method": "Switch.Set", "params": {"id": 2, "on": true}})
        );
        assert_eq!(
            frame(Action::Off),
            json!({"id": 42, "src": SRC, "method": "Switch.Set", "params": {"id": 2, "on": false}})
        );
        assert_eq!(
            frame(Action::Query),
            json!({"id": 42, "src": SRC, "method": "Switch.GetStatus", "params": {"id": 2}})
        );
        assert_eq!(Shelly.panel_topics(&panel()), ["relay-panel/desk/rpc"]);
        assert_eq!(Shelly.name(), "shelly");
    }

    /// Table: which frames on `<SRC>/rpc` identify a request, and from
    /// whom.
    #[test]
    fn identifies_frames_by_id_and_dst() {
        let ok = |id: u64, from: &str| {
            Ok::<_, String>(Identified {
                id: from_rpc_id(id).unwrap(),
                from: from.to_owned(),
            })
        };
        let cases: &[(&str, Result<Identified, &str>)] = &[
            (
                r#"{"id":42,"src":"shelly-1","dst":"relay-panel/desk","result":{"was_on":false}}"#,
                ok(42, "shelly-1").map_err(|_| ""),
            ),
            (
                r#"{"id":42,"src":"shelly-1","dst":"relay-panel/other","result":{}}"#,
                Err("addressed to another panel"),
            ),
            (
                r#"{"id":42,"src":"shelly-1","result":{}}"#,
                Err("addressed to another panel"),
            ),
            (
                r#"{"id":42,"dst":"relay-panel/desk","result":{}}"#,
                Err("has no src"),
            ),
            (
                r#"{"id":"42","src":"s","dst":"relay-panel/desk","result":{}}"#,
                Err("no id this panel sends"),
            ),
            (
                r#"{"id":281474976710656,"src":"s","dst":"relay-panel/desk","result":{}}"#,
                Err("no id this panel sends"),
            ),
            (
                r#"{"id":-1,"src":"s","dst":"relay-panel/desk"}"#,
                Err("no id"),
            ),
            ("not json", Err("is not JSON")),
        ];
        for (frame, expected) in cases {
            let got = Shelly.identify(frame.as_bytes(), &panel());
            match (expected, &got) {
                (Ok(want), Ok(got)) => assert_eq!(got, want, "{frame}"),
                (Err(fragment), Err(why)) => assert!(why.contains(fragment), "{frame}: {why}"),
                _ => panic!("{frame}: expected {expected:?}, got {got:?}"),
            }
        }
        let relay = RelayConfig::shelly("porch", "shelly-1", 0);
        assert!(Shelly.is_from(&relay, "shelly-1"));
        assert!(!Shelly.is_from(&relay, "shelly-2"));
    }

    /// Table: what an answer says, for each action.
    #[test]
    fn reads_results_and_errors() {
        let relay = RelayConfig::shelly("porch", "shelly-1", 0);
        let on = Reply::State(RelayState::On);
        let off = Reply::State(RelayState::Off);
        let error = |text: &str| Reply::DeviceError(text.to_owned());
        let cases: &[(Action, &str, Reply)] = &[
            (
                Action::On,
                r#"{"id":1,"result":{"was_on":false}}"#,
                on.clone(),
            ),
            (
                Action::On,
                r#"{"id":1,"result":{"was_on":true}}"#,
                on.clone(),
            ),
            (
                Action::Off,
                r#"{"id":1,"result":{"was_on":true}}"#,
                off.clone(),
            ),
            (
                Action::Query,
                r#"{"id":1,"result":{"id":0,"output":true}}"#,
                on.clone(),
            ),
            (
                Action::Query,
                r#"{"id":1,"result":{"id":0,"output":false}}"#,
                off.clone(),
            ),
            (
                Action::Query,
                r#"{"id":1,"result":{"id":0}}"#,
                error(r#"status without output: {"id":1,"result":{"id":0}}"#),
            ),
            (
                Action::On,
                r#"{"id":1,"error":{"code":-105,"message":"Argument 'id', value 3 not found!"}}"#,
                error("Argument 'id', value 3 not found! (code -105)"),
            ),
            (Action::Off, r#"{"id":1,"error":{}}"#, error("(no message)")),
            (
                Action::On,
                r#"{"id":1}"#,
                error(r#"reply without result or error: {"id":1}"#),
            ),
            (Action::On, "garbage", error("garbage")),
        ];
        for (action, payload, expected) in cases {
            assert_eq!(
                &Shelly.read_answer(&relay, *action, payload.as_bytes()),
                expected,
                "{action} {payload}"
            );
        }
        assert!(
            !Shelly.report_answers(),
            "replies answer, reports tell changes"
        );
    }

    /// Table: NotifyStatus and status messages tell the switch's output
    /// and what changed it; other switches, components and methods say
    /// nothing.
    #[test]
    fn reads_notifications_and_status() {
        let relay = RelayConfig::shelly("porch", "shelly-1", 1);
        assert_eq!(
            relay.report_topics(),
            ["shelly-1/events/rpc", "shelly-1/status/switch:1"]
        );
        let report = |state, source: Option<&str>| {
            Some(StateReport {
                state,
                source: source.map(str::to_owned),
            })
        };
        let events = "shelly-1/events/rpc";
        let status = "shelly-1/status/switch:1";
        let cases: &[(&str, &str, Option<StateReport>)] = &[
            (
                events,
                r#"{"src":"shellyplus2-aa","dst":"shelly-1/events","method":"NotifyStatus","params":{"ts":1.5,"switch:1":{"id":1,"output":true,"source":"button"}}}"#,
                report(RelayState::On, Some("button")),
            ),
            (
                events,
                r#"{"method":"NotifyFullStatus","params":{"switch:1":{"id":1,"output":false}}}"#,
                report(RelayState::Off, None),
            ),
            (
                events,
                r#"{"method":"NotifyStatus","params":{"switch:0":{"id":0,"output":true,"source":"button"}}}"#,
                None,
            ),
            (
                events,
                r#"{"method":"NotifyStatus","params":{"switch:1":{"id":1,"apower":12.5}}}"#,
                None,
            ),
            (
                events,
                r#"{"method":"NotifyEvent","params":{"switch:1":{"output":true}}}"#,
                None,
            ),
            (
                status,
                r#"{"id":1,"source":"HTTP_in","output":false,"apower":0.0}"#,
                report(RelayState::Off, Some("HTTP_in")),
            ),
            (
                status,
                r#"{"id":1,"source":"","output":true}"#,
                report(RelayState::On, None),
            ),
            (status, r#"{"id":1,"output":"on"}"#, None),
            (status, "garbage", None),
            (
                "shelly-1/status/switch:0",
                r#"{"id":0,"output":true}"#,
                None,
            ),
            (
                "shelly-2/status/switch:1",
                r#"{"id":1,"output":true}"#,
                None,
            ),
            ("shelly-1/online", "true", None),
        ];
        for (topic, payload, expected) in cases {
            assert_eq!(
                &Shelly.read_report(&relay, topic, payload.as_bytes()),
                expected,
                "{topic} {payload}"
            );
        }
    }
}
