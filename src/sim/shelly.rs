//! Kind `shelly`: a Shelly Gen2+ (Plus, Pro, Gen3, Gen4) answering
//! JSON-RPC over MQTT, per the vendor's docs. A call arrives on
//! `<device>/rpc` as `{"id":N,"src":SRC,"method":…,"params":{"id":S,…}}`;
//! the answer goes to `<SRC>/rpc` as `{"id":N,"src":<device>,"dst":SRC,
//! "result":…}` or `{…,"error":{"code":…,"message":…}}`. A frame without
//! `src` is dropped (the firmware cannot answer it); a call without `id` is
//! acted on and not answered. After its output changes (by a call, or by
//! its button) the device also sends a `NotifyStatus` on
//! `<device>/events/rpc` and its switch's status on
//! `<device>/status/switch:<n>`, each saying what switched it (`source`:
//! `MQTT`, `button`).
//!
//! Pure: reading a frame and building the device's messages.

use bytes::Bytes;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::{Command, Outgoing, Role, Source};
use crate::protocol::RelayState;

/// Shelly's "not found" error code: a switch the device lacks, and the
/// answer of a relay listed in `--fail`.
pub const NOT_FOUND: i64 = -105;
/// Shelly's error code for a missing or wrong argument.
pub const INVALID_ARGUMENT: i64 = -103;
/// Shelly's error code for a method the device has no handler for.
pub const NO_HANDLER: i64 = 404;

/// One JSON-RPC frame, as far as the device could read it.
#[derive(Debug, Clone)]
pub(super) struct Call {
    /// The request's `id`, echoed in the answer; `None`: a notification,
    /// not answered.
    pub id: Option<Value>,
    /// Who asked: the answer goes to `<src>/rpc` with `dst` = `src`.
    pub src: Option<String>,
    /// `Switch.Set`, `Switch.GetStatus`, …
    pub method: String,
    /// `params.id`: the Switch component addressed.
    pub switch: Option<u32>,
    /// `params.on` (`Switch.Set`).
    pub on: Option<bool>,
}

/// An error object of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RpcError {
    /// Shelly's code (negative, or 404 for an unknown method).
    pub code: i64,
    /// Shelly's text.
    pub message: String,
}

/// Reads a frame; `None` if it is not a JSON object with a `method`.
pub(super) fn read(payload: &[u8]) -> Option<Call> {
    let frame: Value = serde_json::from_slice(payload).ok()?;
    let frame = frame.as_object()?;
    let params = frame.get("params");
    Some(Call {
        id: frame.get("id").filter(|id| !id.is_null()).cloned(),
        src: frame
            .get("src")
            .and_then(Value::as_str)
            .filter(|src| !src.is_empty())
            .map(str::to_owned),
        method: frame.get("method")?.as_str()?.to_owned(),
        switch: params
            .and_then(|p| p.get("id"))
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok()),
        on: params.and_then(|p| p.get("on")).and_then(Value::as_bool),
    })
}

/// Whether the method addresses a Switch component (needs `params.id`).
pub(super) fn is_switch_method(method: &str) -> bool {
    method.starts_with("Switch.")
}

/// What a call to an existing switch asks, or the error the firmware
/// answers instead.
pub(super) fn command(call: &Call) -> Result<Command, RpcError> {
    match call.method.as_str() {
        "Switch.Set" => match call.on {
            Some(true) => Ok(Command::Switch(RelayState::On)),
            Some(false) => Ok(Command::Switch(RelayState::Off)),
            None => Err(RpcError {
                code: INVALID_ARGUMENT,
                message: "Missing required argument 'on'!".to_owned(),
            }),
        },
        "Switch.Toggle" => Ok(Command::Toggle),
        "Switch.GetStatus" => Ok(Command::Query),
        other => Err(RpcError {
            code: NO_HANDLER,
            message: format!("No handler for {other}"),
        }),
    }
}

/// The error for a call that names no switch the device has.
pub(super) fn no_such_switch(call: &Call) -> RpcError {
    match call.switch {
        Some(id) => RpcError {
            code: NOT_FOUND,
            message: format!("Argument 'id', value {id} not found!"),
        },
        None if is_switch_method(&call.method) => RpcError {
            code: INVALID_ARGUMENT,
            message: "Missing required argument 'id'!".to_owned(),
        },
        None => RpcError {
            code: NO_HANDLER,
            message: format!("No handler for {}", call.method),
        },
    }
}

/// The answer frame to `call` (`None` for a notification or a frame
/// without `src`: nothing to answer to).
pub(super) fn answer(device: &str, call: &Call, body: Result<Value, RpcError>) -> Option<Outgoing> {
    let (id, src) = (call.id.as_ref()?, call.src.as_deref()?);
    let mut frame = json!({ "id": id, "src": device, "dst": src });
    match body {
        Ok(result) => frame["result"] = result,
        Err(error) => frame["error"] = json!({ "code": error.code, "message": error.message }),
    }
    Some(Outgoing {
        topic: format!("{src}/rpc"),
        payload: Bytes::from(frame.to_string()),
        retain: false,
        correlation: None,
        source: None,
        role: Role::Tied,
    })
}

/// The `result` of a call that was carried out.
pub(super) fn result(
    command: &Command,
    switch: u32,
    before: RelayState,
    after: RelayState,
) -> Value {
    match command {
        Command::Query => json!({
            "id": switch,
            "source": "MQTT",
            "output": after == RelayState::On,
        }),
        _ => json!({ "was_on": before == RelayState::On }),
    }
}

/// The switch's status object as the device tells it:
/// `{"id":n,"source":…,"output":…}`.
fn switch_status(switch: u32, after: RelayState, source: Source) -> Value {
    json!({ "id": switch, "source": source.as_str(), "output": after == RelayState::On })
}

/// What the device sends after switch `switch` changed, `source` saying
/// what changed it: a `NotifyStatus` on `<device>/events/rpc` (`ts`: the
/// device's clock, Unix seconds), then the status on
/// `<device>/status/switch:<n>`.
pub(super) fn notices(
    device: &str,
    switch: u32,
    after: RelayState,
    source: Source,
    ts: f64,
) -> [Outgoing; 2] {
    let status = switch_status(switch, after, source);
    let mut params = json!({ "ts": ts });
    params[format!("switch:{switch}")] = status.clone();
    let frame = json!({
        "src": device,
        "dst": format!("{device}/events"),
        "method": "NotifyStatus",
        "params": params,
    });
    let notice = |topic: String, payload: Value| Outgoing {
        topic,
        payload: Bytes::from(payload.to_string()),
        retain: false,
        correlation: None,
        source: None,
        role: Role::Notice,
    };
    [
        notice(format!("{device}/events/rpc"), frame),
        notice(format!("{device}/status/switch:{switch}"), status),
    ]
}

/// An answer frame as it would come from the wrong exchange: another
/// request's `id`, or addressed to another client (`dst`).
pub(super) fn forge(payload: &[u8], rng: &mut StdRng) -> Bytes {
    let Ok(mut frame) = serde_json::from_slice::<Value>(payload) else {
        return Bytes::copy_from_slice(payload);
    };
    if rng.random_bool(0.5) {
        frame["id"] = match &frame["id"] {
            Value::Number(n) => json!(
                n.as_u64()
                    .unwrap_or(0)
                    .wrapping_add(rng.random_range(1..1_000_000))
            ),
            other => json!(format!("{}-other", other.as_str().unwrap_or("id"))),
        };
    } else {
        let other: u32 = rng.random();
        frame["dst"] = json!(format!("relay-panel-{other:08x}"));
    }
    Bytes::from(frame.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn call(text: &str) -> Call {
        read(text.as_bytes()).expect("a frame")
    }

    /// Frames are read as the firmware does: `src`, `id` and the params.
    #[test]
    fn frames_are_read() {
        let c =
            call(r#"{"id":7,"src":"panel-1","method":"Switch.Set","params":{"id":1,"on":true}}"#);
        assert_eq!(c.id, Some(json!(7)));
        assert_eq!(c.src.as_deref(), Some("panel-1"));
        assert_eq!((c.switch, c.on), (Some(1), Some(true)));
        assert_eq!(command(&c), Ok(Command::Switch(RelayState::On)));
        let no_src = call(r#"{"id":7,"method":"Switch.GetStatus","params":{"id":0}}"#);
        assert_eq!(no_src.src, None);
        assert_eq!(command(&no_src), Ok(Command::Query));
        assert!(read(b"not json").is_none());
        assert!(read(br#"{"id":1,"src":"x"}"#).is_none());
    }

    /// Calls the firmware refuses get its error codes and texts.
    #[test]
    fn refusals_carry_shelly_codes() {
        let missing_on = call(r#"{"id":1,"src":"p","method":"Switch.Set","params":{"id":0}}"#);
        assert_eq!(command(&missing_on).unwrap_err().code, INVALID_ARGUMENT);
        let unknown = call(r#"{"id":1,"src":"p","method":"Switch.Frobnicate","params":{"id":0}}"#);
        assert_eq!(command(&unknown).unwrap_err().code, NO_HANDLER);
        let absent =
            call(r#"{"id":1,"src":"p","method":"Switch.Set","params":{"id":3,"on":true}}"#);
        assert_eq!(
            no_such_switch(&absent),
            RpcError {
                code: NOT_FOUND,
                message: "Argument 'id', value 3 not found!".into()
            }
        );
    }

    /// The answer echoes `id`, names the device as `src` and the caller as
    /// `dst`, on `<src>/rpc`; a notification gets none.
    #[test]
    fn answers_echo_id_and_src() {
        let c =
            call(r#"{"id":42,"src":"panel-1","method":"Switch.Set","params":{"id":0,"on":true}}"#);
        let out = answer("shelly-a", &c, Ok(json!({"was_on": false}))).unwrap();
        assert_eq!(out.topic, "panel-1/rpc");
        let frame: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(
            frame,
            json!({"id":42,"src":"shelly-a","dst":"panel-1","result":{"was_on":false}})
        );
        let err = answer(
            "shelly-a",
            &c,
            Err(RpcError {
                code: NOT_FOUND,
                message: "x".into(),
            }),
        )
        .unwrap();
        let frame: Value = serde_json::from_slice(&err.payload).unwrap();
        assert_eq!(frame["error"], json!({"code": -105, "message": "x"}));
        let notification =
            call(r#"{"src":"panel-1","method":"Switch.Set","params":{"id":0,"on":true}}"#);
        assert!(answer("shelly-a", &notification, Ok(json!({}))).is_none());
    }

    /// A change is told twice, with its source: `NotifyStatus` on
    /// `events/rpc`, then the status on `status/switch:<n>`.
    #[test]
    fn changes_are_notified_with_their_source() {
        let [notify, status] = notices("shelly-a", 1, RelayState::On, Source::Button, 12.5);
        assert_eq!(notify.topic, "shelly-a/events/rpc");
        let frame: Value = serde_json::from_slice(&notify.payload).unwrap();
        assert_eq!(
            frame,
            json!({"src": "shelly-a", "dst": "shelly-a/events", "method": "NotifyStatus",
                   "params": {"ts": 12.5, "switch:1": {"id": 1, "source": "button", "output": true}}})
        );
        assert_eq!(status.topic, "shelly-a/status/switch:1");
        let frame: Value = serde_json::from_slice(&status.payload).unwrap();
        assert_eq!(frame, json!({"id": 1, "source": "button", "output": true}));
        let [notify, _] = notices("shelly-a", 0, RelayState::Off, Source::Mqtt, 0.0);
        let frame: Value = serde_json::from_slice(&notify.payload).unwrap();
        assert_eq!(frame["params"]["switch:0"]["source"], "MQTT");
        assert!(!notify.retain && !status.retain);
    }

    /// A forged answer differs from the real one in `id` or `dst` only.
    #[test]
    fn forgery_changes_id_or_dst() {
        let real = json!({"id":42,"src":"shelly-a","dst":"panel-1","result":{"was_on":false}});
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            let forged: Value =
                serde_json::from_slice(&forge(real.to_string().as_bytes(), &mut rng)).unwrap();
            assert_ne!(forged, real);
            assert_eq!(forged["src"], real["src"]);
            assert_eq!(forged["result"], real["result"]);
            assert!(forged["id"] != real["id"] || forged["dst"] != real["dst"]);
        }
    }
}
