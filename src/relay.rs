//! The per-relay state machine. Pure: times come in as arguments.
//!
//! ```text
//! Idle ──request──▶ Pending{requested, since} ──answer──▶ Confirmed{state, at, rtt}
//!                          │                   ──error/timeout/lost──▶ Failed{reason, at}
//!                                                                        │
//!                                          late answer to that request ──▶ Late{answer, at, late_by}
//! ```
//! Alongside the phase, `last_acknowledged` holds the last state a device
//! confirmed or reported, with its [`Evidence`]. It changes only on a
//! confirmation or a report (current, or a late confirmation when it is
//! newer than what is known) — never on a request, a timeout or an error.
//!
//! "Newer" means *requested later*: answers overtake each other (a late
//! answer to an old request can arrive after the answer to a newer one),
//! so acknowledgements are ordered by the send time of the request they
//! answer, never by arrival.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::outcome::{Evidence, Outcome};
use crate::pending::AlreadyPending;
use crate::protocol::{Action, CorrelationId, RelayState};

/// A state some device confirmed or reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The state the device reported.
    pub state: RelayState,
    /// How it is tied to the request: a correlated reply (confirmed) or
    /// the device's state message (reported). The badge says which.
    pub evidence: Evidence,
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
    /// Who asked for the request it answers (the hover's "by alice"), when
    /// known (acknowledgements stored before the column have none).
    pub operator: Option<String>,
}

impl Acknowledgement {
    /// " by alice", or "" when who asked is not known.
    pub fn by_whom(&self) -> String {
        match self.operator.as_deref() {
            Some(operator) if !operator.is_empty() => format!(" by {operator}"),
            _ => String::new(),
        }
    }
}

/// How long after this panel's own request was answered a matching state
/// from the device is still taken as part of that request (a Shelly sends
/// `NotifyStatus`, a Tasmota `stat/…/POWER`, right after its answer), not
/// as a change at the device.
pub const ECHO_WINDOW: Duration = Duration::from_secs(2);

/// Whether a relay's device is reachable, as its last-will topic says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Availability {
    /// Nothing heard: no availability topic, or nothing published there.
    #[default]
    Unknown,
    /// The device said it is online.
    Online {
        /// Since when (when it was heard).
        since: SystemTime,
        /// Heard as a retained message on subscribing: it was true before
        /// `since`, since when exactly is unknown.
        retained: bool,
    },
    /// The device is gone (its will fired, or it said so).
    Offline {
        /// Since when (when it was heard).
        since: SystemTime,
        /// Heard as a retained message on subscribing: offline since
        /// before `since`.
        retained: bool,
    },
}

impl Availability {
    /// `Some(true)` online, `Some(false)` offline, `None` unknown.
    pub fn online(self) -> Option<bool> {
        match self {
            Availability::Unknown => None,
            Availability::Online { .. } => Some(true),
            Availability::Offline { .. } => Some(false),
        }
    }

    /// Whether the device is known to be offline.
    pub fn is_offline(self) -> bool {
        self.online() == Some(false)
    }

    /// Since when, and whether only "since before" is known (retained).
    pub fn since(self) -> Option<(SystemTime, bool)> {
        match self {
            Availability::Unknown => None,
            Availability::Online { since, retained }
            | Availability::Offline { since, retained } => Some((since, retained)),
        }
    }
}

/// A state the device published by itself that no request of this panel
/// explains: a change at the device (a wall button, another panel, an
/// automation), or a retained state heard on subscribing (time unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// The state it told.
    pub state: RelayState,
    /// When it was heard.
    pub at: SystemTime,
    /// What switched it, when the device says (`button`, `MQTT`…).
    pub source: Option<String>,
    /// A retained message heard on subscribing: published at some time
    /// before `at`, exactly when is unknown.
    pub retained: bool,
    /// Loaded from the store at start-up: heard in an earlier session.
    pub restored: bool,
}

impl DeviceReport {
    /// " (button)": what switched it, or "" when the device did not say.
    pub fn from_source(&self) -> String {
        self.source
            .as_deref()
            .map(|source| format!(" ({source})"))
            .unwrap_or_default()
    }
}

/// What a device's own state message did to a relay
/// ([`RelayStatus::device_reported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSays {
    /// The state shown already: nothing new.
    Unchanged,
    /// Part of this panel's own request: the state it asked for while it
    /// is in flight, or the state it was answered with, within
    /// [`ECHO_WINDOW`].
    Echo,
    /// The state shown, heard live where only an earlier session's or a
    /// retained one was known: its time is now known (not a change).
    Renewed,
    /// Another state than the one shown, live: a change at the device.
    Changed,
    /// Another state than the one shown, from a retained message: shown
    /// as reported (retained; time unknown), not logged as a change.
    Retained,
}

/// The newest evidence of a relay's state: which of the two facts the
/// panel holds is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown<'a> {
    /// The last acknowledgement of a request.
    Acknowledged(&'a Acknowledgement),
    /// The device's own report, newer than any acknowledgement.
    Device(&'a DeviceReport),
}

impl Shown<'_> {
    /// The state.
    pub fn state(self) -> RelayState {
        match self {
            Shown::Acknowledged(ack) => ack.state,
            Shown::Device(report) => report.state,
        }
    }

    /// When it was heard.
    pub fn at(self) -> SystemTime {
        match self {
            Shown::Acknowledged(ack) => ack.at,
            Shown::Device(report) => report.at,
        }
    }

    /// Its evidence: a device report is always *reported*.
    pub fn evidence(self) -> Evidence {
        match self {
            Shown::Acknowledged(ack) => ack.evidence,
            Shown::Device(_) => Evidence::Reported,
        }
    }

    /// From an earlier session (italics until refreshed).
    pub fn restored(self) -> bool {
        match self {
            Shown::Acknowledged(ack) => ack.restored,
            Shown::Device(report) => report.restored,
        }
    }
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
    /// The last request was confirmed (or reported: see `evidence`).
    Confirmed {
        /// The state the device reported.
        state: RelayState,
        /// A correlated reply, or the device's state message.
        evidence: Evidence,
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
        /// The request's correlation id (none when it never got one), so
        /// that a late answer to it replaces the failure.
        request: Option<CorrelationId>,
    },
    /// The last request had failed, then its answer came after all: the
    /// failure text would no longer be true.
    Late {
        /// What the device answered.
        answer: LateAnswer,
        /// When the answer arrived.
        at: SystemTime,
        /// How long after the request had ended.
        late_by: Duration,
    },
}

/// What a late answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LateAnswer {
    /// A state.
    State(RelayState),
    /// A device error, with its text.
    DeviceError(String),
}

impl fmt::Display for Phase {
    /// The row's status text for phases that have one ("" for idle;
    /// pending shows a countdown, which needs the time: see the list view).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Idle | Phase::Pending { .. } => Ok(()),
            Phase::Confirmed { rtt, evidence, .. } => {
                write!(f, "{} in {}", evidence.verb(), format_rtt(*rtt))
            }
            Phase::Failed { reason, .. } => write!(f, "{reason}"),
            Phase::Late {
                answer, late_by, ..
            } => {
                let late_by = format!("{:.1} s", late_by.as_secs_f64());
                match answer {
                    LateAnswer::State(state) => write!(
                        f,
                        "answered {} {late_by} late",
                        state.as_str().to_uppercase()
                    ),
                    LateAnswer::DeviceError(text) => {
                        write!(f, "answered {late_by} late: device error: {text}")
                    }
                }
            }
        }
    }
}

/// Everything the panel knows about one relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStatus {
    /// The latest request's phase.
    pub phase: Phase,
    /// The last state a device confirmed, if any ever did.
    pub last_acknowledged: Option<Acknowledgement>,
    /// The device's own latest report no request explains (a change at
    /// the device, a retained state), if any; shown when newer than
    /// `last_acknowledged` ([`RelayStatus::shown`]).
    pub device_report: Option<DeviceReport>,
    /// Whether the device is reachable, from its last-will topic.
    pub availability: Availability,
}

impl Default for RelayStatus {
    fn default() -> Self {
        RelayStatus {
            phase: Phase::Idle,
            last_acknowledged: None,
            device_report: None,
            availability: Availability::Unknown,
        }
    }
}

impl RelayStatus {
    /// A relay whose last acknowledgement comes from the store.
    pub fn restored(mut ack: Acknowledgement) -> Self {
        ack.restored = true;
        RelayStatus {
            last_acknowledged: Some(ack),
            ..RelayStatus::default()
        }
    }

    /// The newest evidence of the relay's state: the device's own report
    /// when it was heard after the last acknowledgement, else the
    /// acknowledgement (on a tie, the acknowledgement: it is tied to a
    /// request). A retained report counts as heard when it arrived.
    pub fn shown(&self) -> Option<Shown<'_>> {
        match (&self.last_acknowledged, &self.device_report) {
            (None, None) => None,
            (Some(ack), None) => Some(Shown::Acknowledged(ack)),
            (None, Some(report)) => Some(Shown::Device(report)),
            (Some(ack), Some(report)) if report.at > ack.at => Some(Shown::Device(report)),
            (Some(ack), Some(_)) => Some(Shown::Acknowledged(ack)),
        }
    }

    /// The state shown (the newest evidence), if any.
    pub fn shown_state(&self) -> Option<RelayState> {
        self.shown().map(Shown::state)
    }

    /// The device's last will said `online` at `at` (`retained`: a
    /// retained message heard on subscribing). Returns whether the
    /// availability changed; the same again keeps its first time.
    pub fn set_availability(&mut self, online: bool, at: SystemTime, retained: bool) -> bool {
        if self.availability.online() == Some(online) {
            return false;
        }
        self.availability = if online {
            Availability::Online {
                since: at,
                retained,
            }
        } else {
            Availability::Offline {
                since: at,
                retained,
            }
        };
        true
    }

    /// The device published `state` by itself (`source`: what switched
    /// it, when it says), heard at `at`; `retained`: a retained message
    /// heard on subscribing. `request_sent`: the relay's request in
    /// flight, if any, was handed to the broker (a state heard before
    /// that cannot be its effect).
    ///
    /// Decides whether it is part of this panel's own request (an echo),
    /// nothing new, or newer evidence — and records it as the device's
    /// report when it is. Only called for messages that do not answer a
    /// request (kinds whose reports answer, with a request in flight, go
    /// to [`RelayStatus::confirm`] instead).
    pub fn device_reported(
        &mut self,
        state: RelayState,
        source: Option<String>,
        at: SystemTime,
        retained: bool,
        request_sent: bool,
    ) -> DeviceSays {
        if !retained {
            match &self.phase {
                Phase::Pending { requested, .. }
                    if request_sent && *requested == Action::switch_to(state) =>
                {
                    return DeviceSays::Echo;
                }
                Phase::Confirmed {
                    state: answered,
                    at: answered_at,
                    ..
                }
                | Phase::Late {
                    answer: LateAnswer::State(answered),
                    at: answered_at,
                    ..
                } if *answered == state
                    && at.duration_since(*answered_at).unwrap_or_default() < ECHO_WINDOW =>
                {
                    return DeviceSays::Echo;
                }
                _ => {}
            }
        }
        let shown = self.shown();
        let says = match shown {
            Some(shown) if shown.state() == state => {
                let known_live = !shown.restored()
                    && !matches!(shown, Shown::Device(DeviceReport { retained: true, .. }));
                if retained || known_live {
                    return DeviceSays::Unchanged;
                }
                DeviceSays::Renewed
            }
            _ if retained => DeviceSays::Retained,
            _ => DeviceSays::Changed,
        };
        self.device_report = Some(DeviceReport {
            state,
            at,
            source,
            retained,
            restored: false,
        });
        says
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

    /// The device confirmed (or, by `evidence`, reported) `state` for the
    /// request in flight (sent at `requested`). Returns whether it became
    /// the last acknowledged state (it does unless a newer-requested one
    /// is known).
    pub fn confirm(
        &mut self,
        state: RelayState,
        evidence: Evidence,
        requested: SystemTime,
        at: SystemTime,
        rtt: Duration,
        operator: &str,
    ) -> bool {
        self.phase = Phase::Confirmed {
            state,
            evidence,
            at,
            rtt,
        };
        self.acknowledge(state, evidence, requested, at, rtt, false, operator)
    }

    /// The request in flight (correlation id `request`) ended without
    /// confirmation; the last acknowledged state stays.
    pub fn fail(&mut self, reason: Failure, at: SystemTime, request: Option<CorrelationId>) {
        self.phase = Phase::Failed {
            reason,
            at,
            request,
        };
    }

    /// A device answered a request (sent at `requested`, correlation id
    /// `request`) that had already ended, in a reply tied to it. It is the
    /// device's own report, so it becomes the last acknowledged state —
    /// unless a newer-requested acknowledgement is known. Returns whether
    /// it was taken. (Only correlated replies are late: a state message
    /// after its request ended is tied to nothing.)
    pub fn late(
        &mut self,
        state: RelayState,
        requested: SystemTime,
        at: SystemTime,
        rtt: Duration,
        request: Option<CorrelationId>,
        operator: &str,
    ) -> bool {
        self.answered_late(LateAnswer::State(state), request, at);
        self.acknowledge(
            state,
            Evidence::Correlated,
            requested,
            at,
            rtt,
            true,
            operator,
        )
    }

    /// A late answer to `request` arrived at `at`. When the phase shows
    /// that very request's failure, it shows the answer instead; a failure
    /// of a newer request, or a request in flight, stays as it is.
    pub fn answered_late(
        &mut self,
        answer: LateAnswer,
        request: Option<CorrelationId>,
        at: SystemTime,
    ) {
        if let Phase::Failed {
            at: ended,
            request: Some(failed),
            ..
        } = self.phase
            && request == Some(failed)
        {
            self.phase = Phase::Late {
                answer,
                at,
                late_by: at.duration_since(ended).unwrap_or_default(),
            };
        }
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

    #[allow(clippy::too_many_arguments)] // the fields of an Acknowledgement
    fn acknowledge(
        &mut self,
        state: RelayState,
        evidence: Evidence,
        requested: SystemTime,
        at: SystemTime,
        rtt: Duration,
        late: bool,
        operator: &str,
    ) -> bool {
        if !self.is_newer(requested) {
            return false;
        }
        self.last_acknowledged = Some(Acknowledgement {
            state,
            evidence,
            requested,
            at,
            rtt,
            late,
            restored: false,
            operator: Some(operator.to_owned()),
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
                        relay.confirm(
                            state,
                            Evidence::Correlated,
                            t(requested),
                            t(ms),
                            Duration::from_millis(1),
                            "alice",
                        );
                    }
                    Step::Fail(reason, ms) => relay.fail(reason, t(ms), None),
                    Step::Late(state, requested, ms, taken) => assert_eq!(
                        relay.late(
                            state,
                            t(requested),
                            t(ms),
                            Duration::from_millis(1),
                            None,
                            "alice"
                        ),
                        taken,
                        "case {index}"
                    ),
                }
            }
            assert_eq!(
                relay.last_acknowledged.as_ref().map(|a| a.state),
                expected,
                "case {index}"
            );
        }
    }

    /// A late answer replaces the failure of its own request, and only
    /// that: a newer request's failure or a request in flight stays.
    #[test]
    fn late_answer_replaces_its_own_failure_only() {
        let a = Some(CorrelationId([1; 16]));
        let b = Some(CorrelationId([2; 16]));
        let mut relay = RelayStatus::default();
        relay.begin(Action::Off, t(0), TIMEOUT).unwrap();
        relay.fail(Failure::ConnectionLost, t(1000), a);
        relay.late(
            RelayState::Off,
            t(0),
            t(3100),
            Duration::from_millis(3100),
            a,
            "alice",
        );
        assert_eq!(
            relay.phase,
            Phase::Late {
                answer: LateAnswer::State(RelayState::Off),
                at: t(3100),
                late_by: Duration::from_millis(2100),
            }
        );
        assert_eq!(relay.phase.to_string(), "answered OFF 2.1 s late");

        // B failed after A: A's late answer leaves B's failure shown.
        relay.begin(Action::On, t(4000), TIMEOUT).unwrap();
        relay.fail(Failure::NoResponse { after: TIMEOUT }, t(7000), b);
        relay.answered_late(LateAnswer::DeviceError("x".into()), a, t(7100));
        assert!(matches!(relay.phase, Phase::Failed { request, .. } if request == b));
        relay.answered_late(LateAnswer::DeviceError("coil".into()), b, t(7500));
        assert_eq!(
            relay.phase.to_string(),
            "answered 0.5 s late: device error: coil"
        );

        // A request in flight is never replaced.
        relay.begin(Action::On, t(8000), TIMEOUT).unwrap();
        relay.answered_late(LateAnswer::State(RelayState::On), b, t(8100));
        assert!(relay.is_pending());
        // Nor is a failure without a correlation id.
        relay.fail(Failure::NotSent { reason: "x".into() }, t(8200), None);
        relay.answered_late(LateAnswer::State(RelayState::On), None, t(8300));
        assert!(matches!(relay.phase, Phase::Failed { .. }));
    }

    /// A restored state stays until replaced and is marked as restored.
    #[test]
    fn restored_state_is_marked_until_refreshed() {
        let ack = Acknowledgement {
            state: RelayState::On,
            evidence: Evidence::Correlated,
            requested: t(0),
            at: t(0),
            rtt: Duration::from_millis(2),
            late: false,
            restored: false,
            operator: None,
        };
        let mut relay = RelayStatus::restored(ack);
        assert!(relay.last_acknowledged.as_ref().unwrap().restored);
        relay.begin(Action::Query, t(10), TIMEOUT).unwrap();
        relay.fail(Failure::NoResponse { after: TIMEOUT }, t(3010), None);
        assert!(relay.last_acknowledged.as_ref().unwrap().restored);
        relay.begin(Action::Query, t(4000), TIMEOUT).unwrap();
        relay.confirm(
            RelayState::Off,
            Evidence::Reported,
            t(4000),
            t(4001),
            Duration::from_millis(1),
            "bob",
        );
        let ack = relay.last_acknowledged.clone().unwrap();
        assert!(!ack.restored);
        assert_eq!(ack.operator.as_deref(), Some("bob"));
        assert_eq!(ack.state, RelayState::Off);
        assert_eq!(ack.evidence, Evidence::Reported);
        assert_eq!(relay.phase.to_string(), "reported in 1.0 ms");
    }

    /// Table: what a device's own state message does, against what the
    /// relay shows and the request in flight or just answered.
    #[test]
    fn device_reports_table() {
        use RelayState::{Off, On};
        #[derive(Clone, Copy)]
        enum Before {
            /// Nothing known.
            Nothing,
            /// Confirmed `state` at 0 ms (this session).
            Confirmed(RelayState),
            /// Restored from the store (an earlier session).
            Restored(RelayState),
            /// A request to switch to `state` in flight since 0 ms.
            Pending(RelayState),
            /// A retained `state` heard at 0 ms.
            Retained(RelayState),
        }
        // (what, before, reported state, heard at ms, retained, request
        // sent, decision, shown afterwards)
        let cases = [
            (
                "first word, live",
                Before::Nothing,
                On,
                10,
                false,
                false,
                DeviceSays::Changed,
                Some(On),
            ),
            (
                "first word, retained",
                Before::Nothing,
                Off,
                10,
                true,
                false,
                DeviceSays::Retained,
                Some(Off),
            ),
            (
                "echo of the answer",
                Before::Confirmed(On),
                On,
                500,
                false,
                false,
                DeviceSays::Echo,
                Some(On),
            ),
            (
                "same state, just past the echo window",
                Before::Confirmed(On),
                On,
                2_000,
                false,
                false,
                DeviceSays::Unchanged,
                Some(On),
            ),
            (
                "same state, later",
                Before::Confirmed(On),
                On,
                5_000,
                false,
                false,
                DeviceSays::Unchanged,
                Some(On),
            ),
            (
                "button right after the answer",
                Before::Confirmed(On),
                Off,
                500,
                false,
                false,
                DeviceSays::Changed,
                Some(Off),
            ),
            (
                "button later",
                Before::Confirmed(On),
                Off,
                60_000,
                false,
                false,
                DeviceSays::Changed,
                Some(Off),
            ),
            (
                "retained, same",
                Before::Confirmed(On),
                On,
                60_000,
                true,
                false,
                DeviceSays::Unchanged,
                Some(On),
            ),
            (
                "retained, other (reconnect)",
                Before::Confirmed(On),
                Off,
                60_000,
                true,
                false,
                DeviceSays::Retained,
                Some(Off),
            ),
            (
                "restored, same, live",
                Before::Restored(On),
                On,
                10,
                false,
                false,
                DeviceSays::Renewed,
                Some(On),
            ),
            (
                "restored, same, retained",
                Before::Restored(On),
                On,
                10,
                true,
                false,
                DeviceSays::Unchanged,
                Some(On),
            ),
            (
                "restored, other, retained",
                Before::Restored(On),
                Off,
                10,
                true,
                false,
                DeviceSays::Retained,
                Some(Off),
            ),
            (
                "retained, then live same",
                Before::Retained(Off),
                Off,
                10,
                false,
                false,
                DeviceSays::Renewed,
                Some(Off),
            ),
            (
                "in flight, asked state",
                Before::Pending(On),
                On,
                10,
                false,
                true,
                DeviceSays::Echo,
                None,
            ),
            (
                "in flight, not yet sent",
                Before::Pending(On),
                On,
                10,
                false,
                false,
                DeviceSays::Changed,
                Some(On),
            ),
            (
                "in flight, other state",
                Before::Pending(On),
                Off,
                10,
                false,
                true,
                DeviceSays::Changed,
                Some(Off),
            ),
        ];
        for (what, before, state, ms, retained, sent, says, shown) in cases {
            let mut relay = RelayStatus::default();
            match before {
                Before::Nothing => {}
                Before::Confirmed(known) => {
                    relay
                        .begin(Action::switch_to(known), t(0), TIMEOUT)
                        .unwrap();
                    relay.confirm(known, Evidence::Correlated, t(0), t(0), Duration::ZERO, "a");
                }
                Before::Restored(known) => {
                    relay = RelayStatus::restored(Acknowledgement {
                        state: known,
                        evidence: Evidence::Correlated,
                        requested: t(0),
                        at: t(0),
                        rtt: Duration::ZERO,
                        late: false,
                        restored: false,
                        operator: None,
                    });
                }
                Before::Pending(asked) => {
                    relay
                        .begin(Action::switch_to(asked), t(0), TIMEOUT)
                        .unwrap();
                }
                Before::Retained(known) => {
                    relay.device_reported(known, None, t(0), true, false);
                }
            }
            assert_eq!(
                relay.device_reported(state, Some("button".into()), t(ms), retained, sent),
                says,
                "{what}"
            );
            assert_eq!(relay.shown_state(), shown, "{what}");
            if matches!(
                says,
                DeviceSays::Changed | DeviceSays::Renewed | DeviceSays::Retained
            ) {
                let report = relay.device_report.clone().unwrap();
                assert_eq!((report.at, report.retained), (t(ms), retained), "{what}");
                assert!(matches!(relay.shown(), Some(Shown::Device(_))), "{what}");
            }
        }
    }

    /// Newest evidence wins, by the time it was heard: a confirmation
    /// after a change at the device wins again; a tie goes to the
    /// confirmation.
    #[test]
    fn newest_evidence_is_shown() {
        let mut relay = RelayStatus::default();
        relay.begin(Action::Off, t(0), TIMEOUT).unwrap();
        relay.confirm(
            RelayState::Off,
            Evidence::Correlated,
            t(0),
            t(10),
            Duration::ZERO,
            "a",
        );
        assert_eq!(
            relay.device_reported(RelayState::On, None, t(10_000), false, false),
            DeviceSays::Changed
        );
        assert_eq!(relay.shown().map(Shown::evidence), Some(Evidence::Reported));
        assert_eq!(relay.shown().map(Shown::at), Some(t(10_000)));
        relay.begin(Action::Off, t(20_000), TIMEOUT).unwrap();
        relay.confirm(
            RelayState::Off,
            Evidence::Correlated,
            t(20_000),
            t(20_005),
            Duration::ZERO,
            "a",
        );
        assert_eq!(relay.shown_state(), Some(RelayState::Off));
        assert!(matches!(relay.shown(), Some(Shown::Acknowledged(_))));
        // Both facts stay.
        assert_eq!(
            relay.device_report.as_ref().map(|r| r.state),
            Some(RelayState::On)
        );
        assert_eq!(relay.device_report.as_ref().unwrap().from_source(), "");
        assert_eq!(relay.last_acknowledged.as_ref().unwrap().by_whom(), " by a");
        let mut pressed = relay.device_report.clone().unwrap();
        pressed.source = Some("button".into());
        assert_eq!(pressed.from_source(), " (button)");
        let mut nobody = relay.last_acknowledged.clone().unwrap();
        nobody.operator = Some(String::new());
        assert_eq!(nobody.by_whom(), "");
        let mut tie = relay.clone();
        tie.device_report.as_mut().unwrap().at = t(20_005);
        assert!(matches!(tie.shown(), Some(Shown::Acknowledged(_))));
    }

    /// Availability changes only when the device says the other thing,
    /// and keeps its first time.
    #[test]
    fn availability_keeps_its_first_time() {
        let mut relay = RelayStatus::default();
        assert_eq!(relay.availability.online(), None);
        assert!(relay.set_availability(false, t(0), true));
        assert_eq!(
            relay.availability,
            Availability::Offline {
                since: t(0),
                retained: true
            }
        );
        assert!(relay.availability.is_offline());
        assert!(!relay.set_availability(false, t(5), false), "still offline");
        assert_eq!(relay.availability.since(), Some((t(0), true)));
        assert!(relay.set_availability(true, t(9), false));
        assert_eq!(
            relay.availability,
            Availability::Online {
                since: t(9),
                retained: false
            }
        );
        assert_eq!(relay.availability.online(), Some(true));
        assert!(!relay.availability.is_offline());
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
