//! How a request ended, decided once, where it happens (the engine), and
//! read everywhere else as a type: the window, the store, the CSV export
//! and `relayctl`. Stored and printed as a stable text code ([`Outcome::code`]),
//! parsed in one place ([`Outcome::parse`]).

use std::fmt;

/// What ties a reported state to the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// A reply carrying this request's MQTT 5 Correlation Data.
    Correlated,
}

impl Evidence {
    /// `"correlated"`.
    pub fn code(self) -> &'static str {
        match self {
            Evidence::Correlated => "correlated",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The device answered with a state, in time.
    Confirmed,
    /// The device answered with a state after the request had ended (timed
    /// out, cut off): still its own report.
    LateConfirmed,
    /// The device did not answer within the timeout.
    NoResponse,
    /// The device answered, in time, with something other than a state.
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
}

impl Outcome {
    /// Every outcome, for tables and tests.
    pub const ALL: [Outcome; 9] = [
        Outcome::Confirmed,
        Outcome::LateConfirmed,
        Outcome::NoResponse,
        Outcome::DeviceError,
        Outcome::LateDeviceError,
        Outcome::ConnectionLost,
        Outcome::Refused,
        Outcome::NotSent,
        Outcome::Busy,
    ];

    /// The stable text code: stored in the audit log, printed by relayctl
    /// (`--json` `outcome`), written to the CSV. Never change one.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::LateConfirmed => "late confirmed",
            Outcome::NoResponse => "no response",
            Outcome::DeviceError => "device error",
            Outcome::LateDeviceError => "late device error",
            Outcome::ConnectionLost => "connection lost",
            Outcome::Refused => "refused by broker",
            Outcome::NotSent => "not sent",
            Outcome::Busy => "busy",
        }
    }

    /// The outcome with this code.
    pub fn parse(code: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The device reported a state (on time or late).
    pub fn is_confirmed(self) -> bool {
        matches!(self, Outcome::Confirmed | Outcome::LateConfirmed)
    }

    /// The answer came after its request had ended.
    pub fn is_late(self) -> bool {
        matches!(self, Outcome::LateConfirmed | Outcome::LateDeviceError)
    }

    /// What ties the device's answer to the request, when one came.
    pub fn evidence(self) -> Option<Evidence> {
        match self {
            Outcome::Confirmed
            | Outcome::LateConfirmed
            | Outcome::DeviceError
            | Outcome::LateDeviceError => Some(Evidence::Correlated),
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
            ("late confirmed", Outcome::LateConfirmed),
            ("no response", Outcome::NoResponse),
            ("device error", Outcome::DeviceError),
            ("late device error", Outcome::LateDeviceError),
            ("connection lost", Outcome::ConnectionLost),
            ("refused by broker", Outcome::Refused),
            ("not sent", Outcome::NotSent),
            ("busy", Outcome::Busy),
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
            (LateConfirmed, true, true, Some(Evidence::Correlated)),
            (NoResponse, false, false, None),
            (DeviceError, false, false, Some(Evidence::Correlated)),
            (LateDeviceError, false, true, Some(Evidence::Correlated)),
            (ConnectionLost, false, false, None),
            (Refused, false, false, None),
            (NotSent, false, false, None),
            (Busy, false, false, None),
        ];
        for (outcome, confirmed, late, evidence) in table {
            assert_eq!(outcome.is_confirmed(), confirmed, "{outcome}");
            assert_eq!(outcome.is_late(), late, "{outcome}");
            assert_eq!(outcome.evidence(), evidence, "{outcome}");
        }
        assert_eq!(Evidence::Correlated.code(), "correlated");
        // Display is the code, and honours widths (the soak's table).
        assert_eq!(Outcome::NoResponse.to_string(), "no response");
        assert_eq!(format!("[{:<8}]", Outcome::Busy), "[busy    ]");
        assert_eq!(
            serde_json::to_string(&Outcome::Refused).unwrap(),
            "\"refused by broker\""
        );
    }
}
