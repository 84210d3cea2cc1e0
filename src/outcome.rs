//! How a request ended, decided once, where it happens (the engine), and
//! read everywhere else as a type: the window, the store, the CSV export
//! and `relayctl`. Stored and printed as a stable text code ([`Outcome::code`]),
//! parsed in one place ([`Outcome::parse`]).
//!
//! The line this project exists to draw: a state is *confirmed* only by a
//! reply tied to this very request ([`Evidence::Correlated`]); a state the
//! device published on its state topic after the command, tied to nothing,
//! is *reported* ([`Evidence::Reported`], outcome [`Outcome::Reported`]).

use std::fmt;

/// What ties a device's state to the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// A reply tied to this very request: its MQTT 5 Correlation Data
    /// (kinds `mqtt5`, `tasmota` with MQTT 5), or its JSON-RPC `id` echoed
    /// to this panel's `src` (kind `shelly`).
    Correlated,
    /// The device's own state message on its state topic, which arrived
    /// after the request was handed over but carries nothing tying it to
    /// the request (kinds `state`, `tasmota` without MQTT 5).
    Reported,
}

impl Evidence {
    /// Both, for tables and tests.
    pub const ALL: [Evidence; 2] = [Evidence::Correlated, Evidence::Reported];

    /// The stable text code: `"correlated"` / `"reported"` (stored, in the
    /// CSV export, relayctl's `evidence` field). Never change one.
    pub fn code(self) -> &'static str {
        match self {
            Evidence::Correlated => "correlated",
            Evidence::Reported => "reported",
        }
    }

    /// The evidence with this code.
    pub fn parse(code: &str) -> Option<Evidence> {
        Evidence::ALL.into_iter().find(|e| e.code() == code)
    }

    /// What a state with this evidence is called: `"confirmed"` /
    /// `"reported"` (the badge, relayctl's text).
    pub fn verb(self) -> &'static str {
        match self {
            Evidence::Correlated => "confirmed",
            Evidence::Reported => "reported",
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

impl serde::Serialize for Evidence {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The device answered with a state, in time, in a reply tied to the
    /// request ([`Evidence::Correlated`]).
    Confirmed,
    /// The device reported the state asked for on its state topic, in
    /// time, with nothing tying the message to the request
    /// ([`Evidence::Reported`]).
    Reported,
    /// The device answered with a state after the request had ended (timed
    /// out, cut off): still its own report.
    LateConfirmed,
    /// The device did not answer within the timeout.
    NoResponse,
    /// The device answered, in time, with something other than a state,
    /// or reported a state other than the one asked for.
    DeviceError,
    /// The same, after the request had ended.
    LateDeviceError,
    /// The connection dropped while the request was in flight.
    ConnectionLost,
    /// The broker refused the request (PUBACK reason, e.g. its ACL).
    Refused,
    /// The request was never published (not connected, no query payload,
    /// not handed over before its deadline…).
    NotSent,
    /// The relay already had a request in flight: nothing was sent.
    Busy,
    /// Not a request's end: the device published a state no request of
    /// this panel explains (a wall button, another panel, an automation).
    /// Its `detail` is the source when the device says it (`button`).
    ChangedAtDevice,
}

impl Outcome {
    /// Every outcome, for tables and tests.
    pub const ALL: [Outcome; 11] = [
        Outcome::Confirmed,
        Outcome::Reported,
        Outcome::LateConfirmed,
        Outcome::NoResponse,
        Outcome::DeviceError,
        Outcome::LateDeviceError,
        Outcome::ConnectionLost,
        Outcome::Refused,
        Outcome::NotSent,
        Outcome::Busy,
        Outcome::ChangedAtDevice,
    ];

    /// The stable text code: stored in the audit log, printed by relayctl
    /// (`--json` `outcome`), written to the CSV. Never change one.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::Reported => "reported",
            Outcome::LateConfirmed => "late confirmed",
            Outcome::NoResponse => "no response",
            Outcome::DeviceError => "device error",
            Outcome::LateDeviceError => "late device error",
            Outcome::ConnectionLost => "connection lost",
            Outcome::Refused => "refused by broker",
            Outcome::NotSent => "not sent",
            Outcome::Busy => "busy",
            Outcome::ChangedAtDevice => "changed at device",
        }
    }

    /// The outcome with this code.
    pub fn parse(code: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.code() == code)
    }

    /// A reply tied to the request gave a state (on time or late). A
    /// [`Outcome::Reported`] state is not confirmed: see [`Outcome::has_state`].
    pub fn is_confirmed(self) -> bool {
        matches!(self, Outcome::Confirmed | Outcome::LateConfirmed)
    }

    /// The device gave a state for the request, confirmed or reported.
    pub fn has_state(self) -> bool {
        self.is_confirmed() || self == Outcome::Reported
    }

    /// The answer came after its request had ended.
    pub fn is_late(self) -> bool {
        matches!(self, Outcome::LateConfirmed | Outcome::LateDeviceError)
    }

    /// What ties the device's answer to the request, as far as the
    /// outcome alone tells (a device error may also rest on a report that
    /// contradicted the request: the audit entry's `evidence` says which).
    pub fn evidence(self) -> Option<Evidence> {
        match self {
            Outcome::Confirmed
            | Outcome::LateConfirmed
            | Outcome::DeviceError
            | Outcome::LateDeviceError => Some(Evidence::Correlated),
            Outcome::Reported | Outcome::ChangedAtDevice => Some(Evidence::Reported),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so widths and alignment (`{:<16}`) apply.
        f.pad(self.code())
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code parses back to its outcome, and codes are distinct and
    /// the ones the audit logs of earlier versions hold.
    #[test]
    fn codes_round_trip_and_are_stable() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.code()), Some(outcome));
        }
        let codes: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.code()).collect();
        assert_eq!(codes.len(), Outcome::ALL.len());
        for (code, outcome) in [
            ("confirmed", Outcome::Confirmed),
            ("reported", Outcome::Reported),
            ("late confirmed", Outcome::LateConfirmed),
            ("no response", Outcome::NoResponse),
            ("device error", Outcome::DeviceError),
            ("late device error", Outcome::LateDeviceError),
            ("connection lost", Outcome::ConnectionLost),
            ("refused by broker", Outcome::Refused),
            ("not sent", Outcome::NotSent),
            ("busy", Outcome::Busy),
            ("changed at device", Outcome::ChangedAtDevice),
        ] {
            assert_eq!(Outcome::parse(code), Some(outcome), "{code}");
        }
        assert_eq!(Outcome::parse("Confirmed"), None);
        assert_eq!(Outcome::parse(""), None);
    }

    /// Which outcomes rest on a correlated answer, which are late, which
    /// carry a state.
    #[test]
    fn evidence_lateness_and_confirmation() {
        use Outcome::*;
        // (outcome, confirmed, late, evidence)
        let table = [
            (Confirmed, true, false, Some(Evidence::Correlated)),
            (Reported, false, false, Some(Evidence::Reported)),
            (LateConfirmed, true, true, Some(Evidence::Correlated)),
            (NoResponse, false, false, None),
            (DeviceError, false, false, Some(Evidence::Correlated)),
            (LateDeviceError, false, true, Some(Evidence::Correlated)),
            (ConnectionLost, false, false, None),
            (Refused, false, false, None),
            (NotSent, false, false, None),
            (Busy, false, false, None),
            (ChangedAtDevice, false, false, Some(Evidence::Reported)),
        ];
        for (outcome, confirmed, late, evidence) in table {
            assert_eq!(outcome.is_confirmed(), confirmed, "{outcome}");
            assert_eq!(outcome.is_late(), late, "{outcome}");
            assert_eq!(outcome.evidence(), evidence, "{outcome}");
        }
        assert!(Reported.has_state() && Confirmed.has_state() && !DeviceError.has_state());
        assert_eq!(Evidence::Correlated.code(), "correlated");
        assert_eq!(Evidence::Reported.code(), "reported");
        for evidence in Evidence::ALL {
            assert_eq!(Evidence::parse(evidence.code()), Some(evidence));
        }
        assert_eq!(Evidence::parse("confirmed"), None);
        assert_eq!(
            (Evidence::Correlated.verb(), Evidence::Reported.verb()),
            ("confirmed", "reported")
        );
        assert_eq!(
            serde_json::to_string(&Evidence::Reported).unwrap(),
            "\"reported\""
        );
        // Display is the code, and honours widths (the soak's table).
        assert_eq!(Outcome::NoResponse.to_string(), "no response");
        assert_eq!(format!("[{:<8}]", Outcome::Busy), "[busy    ]");
        assert_eq!(
            serde_json::to_string(&Outcome::Refused).unwrap(),
            "\"refused by broker\""
        );
    }
}
