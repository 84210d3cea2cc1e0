//! The wire contract between the panel and a device (see the README):
//! correlation ids, request payloads, response topics and response parsing.
//! Pure: no I/O.

use std::fmt;
use std::time::Duration;

use crate::config::RelayConfig;

/// `N` bytes from the OS's random source, read 4 KiB at a time per
/// thread: one system call per 256 correlation ids, and no user-space
/// generator, whose set-up probes the CPU's features (`cpuid`, slow
/// under virtualisation) in every one-shot `relayctl`.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    const POOL: usize = 4096;
    thread_local! {
        /// Random bytes not handed out yet: `pool[used..]`.
        static POOL_BYTES: std::cell::RefCell<(Box<[u8; POOL]>, usize)> =
            std::cell::RefCell::new((Box::new([0; POOL]), POOL));
    }
    let mut out = [0u8; N];
    POOL_BYTES.with(|pool| {
        let (bytes, used) = &mut *pool.borrow_mut();
        let mut filled = 0;
        while filled < N {
            if *used == POOL {
                // The OS's generator does not fail once the process runs;
                // if it ever did, ids must not be predictable: stop.
                getrandom::fill(&mut bytes[..]).expect("the OS random source failed");
                *used = 0;
            }
            let take = (N - filled).min(POOL - *used);
            out[filled..filled + take].copy_from_slice(&bytes[*used..*used + take]);
            // Handed-out bytes are not kept in memory.
            bytes[*used..*used + take].fill(0);
            *used += take;
            filled += take;
        }
    });
    out
}

/// Length of the correlation data the panel sends.
pub const CORRELATION_LEN: usize = 16;
/// Longest device error text shown to the technician.
pub const MAX_DEVICE_TEXT: usize = 200;

/// 16 random bytes identifying one request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CorrelationId(pub [u8; CORRELATION_LEN]);

impl CorrelationId {
    /// A fresh random id (from the OS's random source: unguessable by
    /// others).
    pub fn random() -> Self {
        CorrelationId(random_bytes())
    }

    /// The id carried in a response, if it has the panel's shape.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(CorrelationId)
    }

    /// Hex form, for logs.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..8])
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A relay's state as a device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayState {
    /// Energised.
    On,
    /// Released.
    Off,
}

impl RelayState {
    /// `"on"` / `"off"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayState::On => "on",
            RelayState::Off => "off",
        }
    }

    /// Parses `"on"` / `"off"` (store and command line).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" => Some(RelayState::On),
            "off" => Some(RelayState::Off),
            _ => None,
        }
    }
}

impl fmt::Display for RelayState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the technician asks of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Switch on.
    On,
    /// Switch off.
    Off,
    /// Ask the state without changing it.
    Query,
}

impl Action {
    /// `"on"`, `"off"`, `"query"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::On => "on",
            Action::Off => "off",
            Action::Query => "query",
        }
    }

    /// Parses `"on"` / `"off"` / `"query"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "on" => Some(Action::On),
            "off" => Some(Action::Off),
            "query" => Some(Action::Query),
            _ => None,
        }
    }

    /// The action that requests `state`.
    pub fn switch_to(state: RelayState) -> Self {
        match state {
            RelayState::On => Action::On,
            RelayState::Off => Action::Off,
        }
    }

    /// The payload to publish for this relay, or `None` for a query on a
    /// relay that did not opt in to queries.
    pub fn payload(self, relay: &RelayConfig) -> Option<&str> {
        match self {
            Action::On => Some(&relay.payload_on),
            Action::Off => Some(&relay.payload_off),
            Action::Query => relay.payload_query.as_deref(),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a correlated response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The relay's state after the request.
    State(RelayState),
    /// Anything else: the device's own words, bounded and sanitised.
    DeviceError(String),
}

/// Reads a response payload against the relay's payloads.
pub fn parse_reply(payload: &[u8], relay: &RelayConfig) -> Reply {
    if payload == relay.payload_on.as_bytes() {
        Reply::State(RelayState::On)
    } else if payload == relay.payload_off.as_bytes() {
        Reply::State(RelayState::Off)
    } else {
        Reply::DeviceError(sanitise_device_text(payload))
    }
}

/// Turns arbitrary device bytes into one short printable line: line
/// breaks and tabs become one space (a device's message over several lines
/// reads as one), invalid UTF-8 and other control characters are replaced,
/// at most [`MAX_DEVICE_TEXT`] chars.
pub fn sanitise_device_text(payload: &[u8]) -> String {
    let head = &payload[..payload.len().min(MAX_DEVICE_TEXT * 4)];
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for c in text.chars().take(MAX_DEVICE_TEXT) {
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else if c.is_control() {
            out.push('\u{FFFD}');
        } else {
            out.push(c);
        }
    }
    if out.trim().is_empty() {
        out = if payload.is_empty() {
            "(empty answer)".to_owned()
        } else {
            "(unprintable answer)".to_owned()
        };
    } else if text.chars().count() > MAX_DEVICE_TEXT || head.len() < payload.len() {
        out.push('…');
    }
    out
}

/// User Property on every request: the deadline (RFC 3339, UTC, e.g.
/// `2026-12-01T10:42:07.250Z`) after which a device with a clock must not
/// act on it. Message Expiry counts only from the broker's receipt; this
/// also covers time the request spent before the broker had it.
pub const EXPIRES_AT: &str = "expires_at";

/// This panel's response topic for a client id.
pub fn response_topic(client_id: &str) -> String {
    format!("relay-panel/{client_id}/response")
}

/// This panel's JSON-RPC `src` (Shelly answers on `<src>/rpc`): unique
/// per running panel like the response topic, under the same reserved
/// prefix, so no relay's topic can be it.
pub fn rpc_src(client_id: &str) -> String {
    format!("relay-panel/{client_id}")
}

/// A client id unique to this process: `relay-panel-` and 12 random hex digits.
pub fn random_client_id(prefix: &str) -> String {
    let bytes: [u8; 6] = random_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// Message Expiry Interval for a timeout: whole seconds, rounded up, at
/// least one, so an undelivered command is never actuated late.
pub fn expiry_seconds(timeout: Duration) -> u32 {
    let secs = timeout.as_millis().div_ceil(1000).max(1);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random bytes keep coming across refills of the pool (6 does not
    /// divide 4,096), and ids never repeat.
    #[test]
    fn random_bytes_cross_the_pool() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            assert!(seen.insert(random_bytes::<6>()));
            assert!(seen.insert(CorrelationId::random().0[..6].try_into().unwrap()));
        }
        assert!(seen.iter().any(|b: &[u8; 6]| b[0] != 0));
    }

    fn relay() -> RelayConfig {
        let mut r = RelayConfig::new("r", "t");
        r.payload_on = "ON".into();
        r.payload_off = "OFF".into();
        r
    }

    /// Payloads map to states exactly; everything else is a device error.
    #[test]
    fn replies_are_parsed_exactly() {
        let r = relay();
        let cases: &[(&[u8], Reply)] = &[
            (b"ON", Reply::State(RelayState::On)),
            (b"OFF", Reply::State(RelayState::Off)),
            (b"on", Reply::DeviceError("on".into())),
            (b"ON ", Reply::DeviceError("ON ".into())),
            (b"coil fault", Reply::DeviceError("coil fault".into())),
            (b"", Reply::DeviceError("(empty answer)".into())),
            (b"\xff\xfe", Reply::DeviceError("\u{FFFD}\u{FFFD}".into())),
            (b"a\nb", Reply::DeviceError("a b".into())),
            (
                b"overheated\r\n\tcode 7",
                Reply::DeviceError("overheated code 7".into()),
            ),
            (b"\x00\x01", Reply::DeviceError("\u{FFFD}\u{FFFD}".into())),
        ];
        for (payload, expected) in cases {
            assert_eq!(&parse_reply(payload, &r), expected, "payload {payload:?}");
        }
    }

    /// A megabyte of device text is cut to a bounded line.
    #[test]
    fn device_text_is_bounded() {
        let text = sanitise_device_text(&vec![b'x'; 1 << 20]);
        assert_eq!(text.chars().count(), MAX_DEVICE_TEXT + 1);
        assert!(text.ends_with('…'));
    }

    /// Correlation ids are 16 bytes, random, and only 16-byte data parses.
    #[test]
    fn correlation_ids() {
        let a = CorrelationId::random();
        let b = CorrelationId::random();
        assert_ne!(a, b);
        assert_eq!(CorrelationId::from_bytes(&a.0), Some(a));
        assert_eq!(CorrelationId::from_bytes(&a.0[..15]), None);
        assert_eq!(CorrelationId::from_bytes(&[0; 17]), None);
        assert_eq!(a.to_hex().len(), 32);
    }

    /// Expiry is the timeout rounded up to whole seconds, at least 1.
    #[test]
    fn expiry_rounds_up() {
        for (ms, s) in [(1, 1), (999, 1), (1000, 1), (1001, 2), (3000, 3), (0, 1)] {
            assert_eq!(expiry_seconds(Duration::from_millis(ms)), s, "{ms} ms");
        }
    }

    /// Queries are only sent to relays that configured a query payload.
    #[test]
    fn query_is_opt_in() {
        let mut r = relay();
        assert_eq!(Action::Query.payload(&r), None);
        r.payload_query = Some("?".into());
        assert_eq!(Action::Query.payload(&r), Some("?"));
        assert_eq!(Action::On.payload(&r), Some("ON"));
    }

    /// Response topics contain the client id and no wildcard.
    #[test]
    fn response_topic_is_per_client() {
        let id = random_client_id("relay-panel");
        let topic = response_topic(&id);
        assert!(topic.contains(&id));
        assert!(!topic.contains(['+', '#']));
        assert_ne!(id, random_client_id("relay-panel"));
    }
}
