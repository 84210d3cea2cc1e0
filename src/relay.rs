//! The per-relay state machine. Pure: times come in as arguments.
//!
//! ```text
//! Idle ──request──▶ Pending{requested, since} ──answer──▶ Confirmed{state, at, rtt}
//!                          │                   ──error/timeout/lost──▶ Failed{reason, at}
//! ```
//! Alongside the phase, `last_acknowledged` holds the last state a device
//! confirmed. It changes only on a confirmation (current, or late when it
//! is newer than what is known) — never on a request, a timeout or an error.
//!
//! "Newer" means *requested later*: answers overtake each other (a late
//! answer to an old request can arrive after the answer to a newer one),
//! so acknowledgements are ordered by the send time of the request they
//! answer, never by arrival.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::outcome::Outcome;
use crate::pending::AlreadyPending;
use crate::protocol::{Action, RelayState};

/// A state some device confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The state the device reported.
    pub state: RelayState,
    /// When the request this answers was sent: acknowledgements are
    /// ordered by it (see the module doc).
    pub requested: SystemTime,
    /// When the answer arrived (wall clock, for display and the store).
    pub at: SystemTime,
    /// Request-to-answer time.
    pub rtt: Duration,
    /// The answer came after its request had timed out or was cut off.
    pub late: bool,
    /// Loaded from the store at start-up: confirmed in an earlier session,
    /// not since. Shown as "last acknowledged … ago" until refreshed.
    pub restored: bool,
}

/// Why a request ended without a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The device did not answer within the timeout.
    NoResponse {
        /// The timeout that ran out.
        after: Duration,
    },
    /// The device answered with something other than on/off.
    DeviceError {
        /// The device's text, bounded and sanitised.
        text: String,
    },
    /// The broker connection dropped while the request was in flight.
    ConnectionLost,
    /// The broker refused the request (PUBACK reason, e.g. its ACL).
    Refused {
        /// The broker's reason.
        reason: String,
    },
    /// The request was never published.
    NotSent {
        /// Why (not connected, queue full…).
        reason: String,
    },
}

impl Failure {
    /// The outcome of a request that ended this way.
    pub fn outcome(&self) -> Outcome {
        match self {
            Failure::NoResponse { .. } => Outcome::NoResponse,
            Failure::DeviceError { .. } => Outcome::DeviceError,
            Failure::ConnectionLost => Outcome::ConnectionLost,
            Failure::Refused { .. } => Outcome::Refused,
            Failure::NotSent { .. } => Outcome::NotSent,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoResponse { after } => {
                write!(f, "no response after {:.1} s", after.as_secs_f64())
            }
            Failure::DeviceError { text } => write!(f, "device error: {text}"),
            Failure::ConnectionLost => f.write_str("connection lost before the device answered"),
            Failure::Refused { reason } => write!(f, "refused by the broker: {reason}"),
            Failure::NotSent { reason } => write!(f, "not sent: {reason}"),
        }
    }
}

/// Where the relay's latest request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Nothing asked in this session.
    Idle,
    /// A request is in flight.
    Pending {
        /// What was asked.
        requested: Action,
        /// When it was sent.
        since: SystemTime,
        /// When it will end as "no response".
        deadline: SystemTime,
    },
    /// The last request was confirmed.
    Confirmed {
        /// The state the device reported.
        state: RelayState,
        /// When.
        at: SystemTime,
        /// Round trip.
        rtt: Duration,
    },
    /// The last request ended without confirmation.
    Failed {
        /// Why.
        reason: Failure,
        /// When.
        at: SystemTime,
    },
}

/// Everything the panel knows about one relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStatus {
    /// The latest request's phase.
    pub phase: Phase,
    /// The last state a device confirmed, if any ever did.
    pub last_acknowledged: Option<Acknowledgement>,
}

impl Default for RelayStatus {
    fn default() -> Self {
        RelayStatus {
            phase: Phase::Idle,
            last_acknowledged: None,
        }
    }
}

impl RelayStatus {
    /// A relay whose last acknowledgement comes from the store.
    pub fn restored(mut ack: Acknowledgement) -> Self {
        ack.restored = true;
        RelayStatus {
            phase: Phase::Idle,
            last_acknowledged: Some(ack),
        }
    }

    /// Whether a request is in flight.
    pub fn is_pending(&self) -> bool {
        matches!(self.phase, Phase::Pending { .. })
    }

    /// A request was sent. Refused while another is in flight.
    pub fn begin(
        &mut self,
        requested: Action,
        now: SystemTime,
        timeout: Duration,
    ) -> Result<(), AlreadyPending> {
        if self.is_pending() {
            return Err(AlreadyPending);
        }
        self.phase = Phase::Pending {
            requested,
            since: now,
            deadline: now + timeout,
        };
        Ok(())
    }

    /// The device confirmed `state` for the request in flight (sent at
    /// `requested`). Returns whether it became the last acknowledged state
    /// (it does unless a newer-requested one is known).
    pub fn confirm(
        &mut self,
        state: RelayState,
        requested: SystemTime,
        at: SystemTime,
        rtt: Duration,
    ) -> bool {
        self.phase = Phase::Confirmed { state, at, rtt };
        self.acknowledge(state, requested, at, rtt, false)
    }

    /// The request in flight ended without confirmation; the last
    /// acknowledged state stays.
    pub fn fail(&mut self, reason: Failure, at: SystemTime) {
        self.phase = Phase::Failed { reason, at };
    }

    /// A device answered a request (sent at `requested`) that had already
    /// ended. It is the device's own report, so it becomes the last
    /// acknowledged state — unless a newer-requested acknowledgement is
    /// known. Returns whether it was taken.
    pub fn late(
        &mut self,
        state: RelayState,
        requested: SystemTime,
        at: SystemTime,
        rtt: Duration,
    ) -> bool {
        self.acknowledge(state, requested, at, rtt, true)
    }

    /// Whether an answer to a request sent at `requested` is newer than
    /// the known acknowledgement. One restored from the store is from an
    /// earlier session: anything confirmed in this one replaces it.
    pub fn is_newer(&self, requested: SystemTime) -> bool {
        match &self.last_acknowledged {
            None => true,
            Some(known) => known.restored || requested >= known.requested,
        }
    }

    fn acknowledge(
        &mut self,
        state: RelayState,
        requested: SystemTime,
        at: SystemTime,
        rtt: Duration,
        late: bool,
    ) -> bool {
        if !self.is_newer(requested) {
            return false;
        }
        self.last_acknowledged = Some(Acknowledgement {
            state,
            requested,
            at,
            rtt,
            late,
            restored: false,
        });
        true
    }
}

/// "3.1 ms", "250 µs", "1.20 s": a round trip for people.
pub fn format_rtt(rtt: Duration) -> String {
    let us = rtt.as_micros();
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", rtt.as_secs_f64())
    }
}

/// "just now", "12 s ago", "5 min ago", "3 h ago", "2 days ago".
pub fn format_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0 => "just now".to_owned(),
        1..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => match s / 86_400 {
            1 => "1 day ago".to_owned(),
            days => format!("{days} days ago"),
        },
    }
}

/// Time until [`format_age`] of `age` next changes its text.
pub fn age_changes_in(age: Duration) -> Duration {
    let s = age.as_secs();
    let unit = match s {
        0..=59 => 1,
        60..=3599 => 60,
        3600..=86_399 => 3600,
        _ => 86_400,
    };
    Duration::from_secs(unit - s % unit) - Duration::from_nanos(u64::from(age.subsec_nanos()))
}

/// Local date and time, "2026-11-25 14:03:07".
pub fn format_time(at: SystemTime) -> String {
    let local: chrono::DateTime<chrono::Local> = at.into();
    local.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000 + ms)
    }
    const TIMEOUT: Duration = Duration::from_secs(3);

    /// The displayed state changes only on confirmations.
    #[test]
    fn transitions_table() {
        enum Step {
            Begin(Action, u64, bool),
            /// State, request sent (ms), answer arrived (ms).
            Confirm(RelayState, u64, u64),
            Fail(Failure, u64),
            /// State, request sent, answer arrived, whether it is taken.
            Late(RelayState, u64, u64, bool),
        }
        use RelayState::{Off, On};
        // (steps, last acknowledged state afterwards)
        let cases: Vec<(Vec<Step>, Option<RelayState>)> = vec![
            (vec![], None),
            (vec![Step::Begin(Action::On, 0, true)], None),
            (
                vec![Step::Begin(Action::On, 0, true), Step::Confirm(On, 0, 5)],
                Some(On),
            ),
            (
                vec![
                    Step::Begin(Action::On, 0, true),
                    Step::Begin(Action::Off, 1, false),
                ],
                None,
            ),
            (
                vec![
                    Step::Begin(Action::On, 0, true),
                    Step::Fail(Failure::NoResponse { after: TIMEOUT }, 3000),
                ],
                None,
            ),
            (
                vec![
                    Step::Begin(Action::On, 0, true),
                    Step::Confirm(On, 0, 5),
                    Step::Begin(Action::Off, 10, true),
                    Step::Fail(
                        Failure::DeviceError {
                            text: "coil".into(),
                        },
                        20,
                    ),
                ],
                Some(On),
            ),
            (
                vec![
                    Step::Begin(Action::On, 0, true),
                    Step::Fail(Failure::ConnectionLost, 1),
                    Step::Late(On, 0, 4000, true),
                ],
                Some(On),
            ),
            (
                // A late answer to an older request, arriving after the
                // confirmation of a newer one, is ignored: requested
                // earlier, whatever the arrival order.
                vec![
                    Step::Begin(Action::On, 0, true),
                    Step::Fail(Failure::NoResponse { after: TIMEOUT }, 3000),
                    Step::Begin(Action::Off, 3100, true),
                    Step::Confirm(Off, 3100, 3105),
                    Step::Late(On, 0, 3200, false),
                ],
                Some(Off),
            ),
            (
                // A late answer arriving before the newer request's answer
                // is taken, then replaced by the newer one.
                vec![
                    Step::Begin(Action::On, 0, true),
                    Step::Fail(Failure::NoResponse { after: TIMEOUT }, 3000),
                    Step::Begin(Action::Off, 3100, true),
                    Step::Late(On, 0, 3150, true),
                    Step::Confirm(Off, 3100, 3160),
                ],
                Some(Off),
            ),
            (
                // Two late answers overtaking each other: the one to the
                // later request wins.
                vec![
                    Step::Begin(Action::On, 0, true),
                    Step::Fail(Failure::NoResponse { after: TIMEOUT }, 3000),
                    Step::Begin(Action::Off, 3100, true),
                    Step::Fail(Failure::NoResponse { after: TIMEOUT }, 6100),
                    Step::Late(Off, 3100, 6200, true),
                    Step::Late(On, 0, 6300, false),
                ],
                Some(Off),
            ),
            (
                // Equal send times (same millisecond): the later arrival wins.
                vec![
                    Step::Begin(Action::On, 0, true),
                    Step::Fail(Failure::ConnectionLost, 1),
                    Step::Late(On, 0, 10, true),
                    Step::Late(Off, 0, 20, true),
                ],
                Some(Off),
            ),
        ];
        for (index, (steps, expected)) in cases.into_iter().enumerate() {
            let mut relay = RelayStatus::default();
            for step in steps {
                match step {
                    Step::Begin(action, ms, ok) => {
                        assert_eq!(
                            relay.begin(action, t(ms), TIMEOUT).is_ok(),
                            ok,
                            "case {index}"
                        )
                    }
                    Step::Confirm(state, requested, ms) => {
                        relay.confirm(state, t(requested), t(ms), Duration::from_millis(1));
                    }
                    Step::Fail(reason, ms) => relay.fail(reason, t(ms)),
                    Step::Late(state, requested, ms, taken) => assert_eq!(
                        relay.late(state, t(requested), t(ms), Duration::from_millis(1)),
                        taken,
                        "case {index}"
                    ),
                }
            }
            assert_eq!(
                relay.last_acknowledged.map(|a| a.state),
                expected,
                "case {index}"
            );
        }
    }

    /// A restored state stays until replaced and is marked as restored.
    #[test]
    fn restored_state_is_marked_until_refreshed() {
        let ack = Acknowledgement {
            state: RelayState::On,
            requested: t(0),
            at: t(0),
            rtt: Duration::from_millis(2),
            late: false,
            restored: false,
        };
        let mut relay = RelayStatus::restored(ack);
        assert!(relay.last_acknowledged.unwrap().restored);
        relay.begin(Action::Query, t(10), TIMEOUT).unwrap();
        relay.fail(Failure::NoResponse { after: TIMEOUT }, t(3010));
        assert!(relay.last_acknowledged.unwrap().restored);
        relay.begin(Action::Query, t(4000), TIMEOUT).unwrap();
        relay.confirm(RelayState::Off, t(4000), t(4001), Duration::from_millis(1));
        let ack = relay.last_acknowledged.unwrap();
        assert!(!ack.restored);
        assert_eq!(ack.state, RelayState::Off);
    }

    /// Ages and round trips read naturally.
    #[test]
    fn human_formats() {
        for (secs, text) in [
            (0, "just now"),
            (12, "12 s ago"),
            (125, "2 min ago"),
            (7200, "2 h ago"),
            (86_400, "1 day ago"),
            (3 * 86_400, "3 days ago"),
        ] {
            assert_eq!(format_age(Duration::from_secs(secs)), text);
        }
        assert_eq!(format_rtt(Duration::from_micros(250)), "250 µs");
        assert_eq!(format_rtt(Duration::from_micros(3140)), "3.1 ms");
        assert_eq!(format_rtt(Duration::from_millis(1200)), "1.20 s");
    }

    /// The next repaint comes when the age text changes, not sooner.
    #[test]
    fn age_text_changes_when_predicted() {
        for secs in [0.2, 12.5, 59.9, 61.0, 3599.5, 7300.0, 90_000.0] {
            let age = Duration::from_secs_f64(secs);
            let wait = age_changes_in(age);
            let before = format_age(age + wait - Duration::from_millis(1));
            assert_eq!(format_age(age), before, "at {secs} s");
            assert_ne!(format_age(age), format_age(age + wait), "at {secs} s");
        }
    }

    /// Failure texts are what the technician reads.
    #[test]
    fn failure_texts() {
        assert_eq!(
            Failure::NoResponse { after: TIMEOUT }.to_string(),
            "no response after 3.0 s"
        );
        assert_eq!(
            Failure::DeviceError {
                text: "jammed".into()
            }
            .to_string(),
            "device error: jammed"
        );
    }
}
