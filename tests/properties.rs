//! Property tests: response parsing, correlation bookkeeping and the
//! configuration loader hold their rules for any input.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use relay_panel::config::{Config, RelayConfig};
use relay_panel::pending::{PendingRequests, Resolution};
use relay_panel::protocol::{self, Action, CorrelationId, RelayState, Reply};

fn relay(on: &str, off: &str) -> RelayConfig {
    let mut r = RelayConfig::new("r", "t");
    r.payload_on = on.into();
    r.payload_off = off.into();
    r
}

proptest! {
    /// A state comes only from the exact on/off payload; anything else is
    /// a bounded, printable device error.
    #[test]
    fn replies_are_exact_and_bounded(payload in proptest::collection::vec(any::<u8>(), 0..2000), on in "[a-zA-Z0-9]{1,4}", off in "[a-zA-Z0-9]{1,4}") {
        prop_assume!(on != off);
        let r = relay(&on, &off);
        match protocol::parse_reply(&payload, &r) {
            Reply::State(RelayState::On) => prop_assert_eq!(&payload[..], on.as_bytes()),
            Reply::State(RelayState::Off) => prop_assert_eq!(&payload[..], off.as_bytes()),
            Reply::DeviceError(text) => {
                prop_assert!(payload != on.as_bytes() && payload != off.as_bytes());
                prop_assert!(text.chars().count() <= protocol::MAX_DEVICE_TEXT + 1);
                prop_assert!(!text.chars().any(char::is_control));
                prop_assert!(!text.is_empty());
            }
        }
    }

    /// Only 16-byte correlation data is ever taken as this panel's.
    #[test]
    fn correlation_length_is_exact(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(CorrelationId::from_bytes(&bytes).is_some(), bytes.len() == 16);
    }

    /// Any sequence of starts, answers (known or forged), timeouts and
    /// drops: at most one request in flight per relay, an answer is
    /// "current" only for a request started and not yet ended, at most once,
    /// and memory stays under the cap.
    #[test]
    fn bookkeeping_invariants(ops in proptest::collection::vec((0u8..5, 0usize..4, any::<u8>(), 0u64..400), 1..300)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut table = PendingRequests::new(Duration::from_millis(500), 8);
        let mut live: HashMap<CorrelationId, usize> = HashMap::new();
        let mut ended: HashSet<CorrelationId> = HashSet::new();
        let mut answered: HashSet<CorrelationId> = HashSet::new();
        let mut issued: Vec<CorrelationId> = Vec::new();
        for (op, relay, pick, step) in ops {
            now += Duration::from_millis(step);
            match op {
                0 => {
                    let id = CorrelationId::random();
                    let busy = live.values().any(|r| *r == relay);
                    let started = table.start(id, relay, Action::On, now, Duration::from_millis(200)).is_ok();
                    prop_assert_eq!(started, !busy);
                    if started {
                        live.insert(id, relay);
                        issued.push(id);
                    }
                }
                1 | 2 => {
                    let id = if op == 1 && !issued.is_empty() {
                        issued[pick as usize % issued.len()]
                    } else {
                        CorrelationId([pick; 16])
                    };
                    match table.resolve(&id, now) {
                        Resolution::Current(request) => {
                            prop_assert_eq!(live.remove(&id), Some(request.relay));
                            prop_assert!(answered.insert(id), "answered twice");
                        }
                        Resolution::Late(_) => {
                            prop_assert!(ended.remove(&id));
                            prop_assert!(answered.insert(id), "answered twice");
                        }
                        Resolution::Unknown => prop_assert!(!live.contains_key(&id)),
                    }
                }
                3 => {
                    for (id, _) in table.expire(now) {
                        prop_assert!(live.remove(&id).is_some());
                        ended.insert(id);
                    }
                }
                _ => {
                    for (id, _) in table.abandon_all(now) {
                        prop_assert!(live.remove(&id).is_some());
                        ended.insert(id);
                    }
                }
            }
            prop_assert_eq!(table.in_flight(), live.len());
            prop_assert!(table.remembered() <= 8);
            for relay in 0..4 {
                prop_assert_eq!(table.is_pending(relay), live.values().any(|r| *r == relay));
            }
        }
    }

    /// The loader never panics, and every error names the file and a
    /// line:column inside the text.
    #[test]
    fn loader_never_panics(text in "\\PC{0,300}") {
        if let Err(e) = Config::parse(&text, Path::new("f.toml")) {
            let message = e.to_string();
            prop_assert!(message.starts_with("f.toml:"), "{}", message);
        }
    }

    /// Valid configurations survive save and load unchanged, with any
    /// names, groups and payloads.
    #[test]
    fn valid_configs_round_trip(relays in proptest::collection::vec(("[a-z0-9-]{1,8}", "\\PC{0,12}", "\\PC{0,8}", "[a-z0-9/]{1,12}", proptest::option::of(1u64..60_000), any::<bool>()), 0..8)) {
        let mut config = Config::new("mqtt://127.0.0.1:1883");
        let mut ids = HashSet::new();
        let mut topics = HashSet::new();
        for (id, name, group, topic, timeout, confirm) in relays {
            if !ids.insert(id.clone()) || !topics.insert(topic.clone()) {
                continue;
            }
            let mut r = RelayConfig::new(&id, &topic);
            r.name = name;
            r.group = group;
            r.timeout_ms = timeout;
            r.confirm = confirm;
            config.relays.push(r);
        }
        prop_assert!(config.validate().is_empty());
        let text = config.render("");
        let back = Config::parse(&text, Path::new("f.toml")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, config);
    }
}
