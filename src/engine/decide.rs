//! The decision core: what an answer, a timeout, a refusal or a dropped
//! connection does to a request — which status the relay gets, which audit
//! entry is written, which acknowledgement is stored. Pure: times come in
//! as arguments, nothing is sent or written here; the engine task applies
//! the [`Ended`] it gets back.
//!
//! Rules (DESIGN.md, "Panel rules"):
//! - a state is taken only from an answer to a request this panel sent:
//!   a reply tied to it (*confirmed*, [`answered`]) or the device's state
//!   message after it was sent (*reported*, [`reported`]), never mixed up;
//! - a report that contradicts the command is a failure, not a state;
//! - of two answers, the one to the request *sent later* wins, whatever
//!   order they arrive in (an older late answer is logged, not shown);
//! - a failure never changes the last acknowledged state.
//!
//! (The file passes 400 lines because of its table tests, kept beside the
//! rules they check.)

use std::time::{Duration, SystemTime};

use crate::outcome::{Evidence, Outcome};
use crate::protocol::{Action, CorrelationId, RelayState, Reply};
use crate::relay::{DeviceReport, DeviceSays, Failure, LateAnswer, RelayStatus};
use crate::store::{AuditEntry, StoredAck, StoredReport};

/// The request an event is about.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The relay's id (audit entries name relays by id).
    pub relay_id: &'a str,
    /// What was asked.
    pub action: Action,
    /// Its correlation id, when it got one (requests refused before being
    /// registered have none).
    pub id: Option<CorrelationId>,
    /// Who asked.
    pub operator: &'a str,
}

/// What to do about a request that ended (or was answered late).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The audit entry to write and report.
    pub entry: AuditEntry,
    /// The acknowledgement to store, when the answer became the relay's
    /// last acknowledged state.
    pub ack: Option<StoredAck>,
    /// The device's own report to store, when a report that contradicted
    /// the request became the newest evidence.
    pub report: Option<StoredReport>,
    /// Whether the relay's status changed (a status event is due).
    pub status_changed: bool,
}

/// The audit entry; its evidence is what the outcome says (a
/// contradicting report overrides it).
fn entry(
    request: &Request<'_>,
    outcome: Outcome,
    state: Option<RelayState>,
    rtt: Option<Duration>,
    detail: Option<String>,
    at: SystemTime,
) -> AuditEntry {
    AuditEntry {
        at,
        relay_id: request.relay_id.to_owned(),
        action: request.action,
        outcome,
        state,
        evidence: outcome.evidence(),
        rtt,
        detail,
        operator: request.operator.to_owned(),
        correlation: request.id.map(|id| id.to_hex()),
    }
}

/// The device answered `reply` to `request` in a reply tied to it
/// (correlated), `rtt` after it was sent, at `at` (wall clock). `late`: the
/// request had already ended.
pub fn answered(
    status: &mut RelayStatus,
    request: &Request<'_>,
    reply: Reply,
    rtt: Duration,
    at: SystemTime,
    late: bool,
) -> Ended {
    // The request's send time on the wall clock: acknowledgements are
    // ordered by it, here and in the store (across processes).
    let requested = at.checked_sub(rtt).unwrap_or(at);
    match reply {
        Reply::State(state) => {
            let before = late.then(|| status.phase.clone());
            let taken = if late {
                status.late(state, requested, at, rtt, request.id, request.operator)
            } else {
                status.confirm(
                    state,
                    Evidence::Correlated,
                    requested,
                    at,
                    rtt,
                    request.operator,
                )
            };
            let detail = if late {
                (!taken).then(|| {
                    "answers a request older than the last acknowledged state; not shown".to_owned()
                })
            } else {
                match request.action {
                    Action::On | Action::Off if Action::switch_to(state) != request.action => {
                        Some(format!("asked {}, device reports {state}", request.action))
                    }
                    _ => None,
                }
            };
            let outcome = if late {
                Outcome::LateConfirmed
            } else {
                Outcome::Confirmed
            };
            let ack = taken.then(|| StoredAck {
                relay_id: request.relay_id.to_owned(),
                state,
                evidence: Evidence::Correlated,
                requested,
                at,
                rtt,
                late,
                operator: Some(request.operator.to_owned()),
            });
            Ended {
                entry: entry(request, outcome, Some(state), Some(rtt), detail, at),
                ack,
                report: None,
                // A current answer always ends the pending phase; a late
                // one may replace its request's failure.
                status_changed: taken || before.is_none_or(|phase| status.phase != phase),
            }
        }
        Reply::DeviceError(text) if late => {
            let phase = status.phase.clone();
            status.answered_late(LateAnswer::DeviceError(text.clone()), request.id, at);
            Ended {
                entry: entry(
                    request,
                    Outcome::LateDeviceError,
                    None,
                    Some(rtt),
                    Some(text),
                    at,
                ),
                ack: None,
                report: None,
                status_changed: status.phase != phase,
            }
        }
        Reply::DeviceError(text) => failed(
            status,
            request,
            Failure::DeviceError { text },
            Some(rtt),
            at,
        ),
    }
}

/// The device reported `state` on its state topic while `request` was in
/// flight, `rtt` after it was sent, at `at`, in a message tied to nothing
/// but its timing (evidence *reported*). The state asked for (or any
/// state, for a query) ends the request as [`Outcome::Reported`] and
/// becomes the last acknowledged state, marked reported. The other state
/// is a failure, as a device error is: the report may be the device's
/// refusal or a change at the device, and the last acknowledged state
/// stays.
pub fn reported(
    status: &mut RelayStatus,
    request: &Request<'_>,
    state: RelayState,
    rtt: Duration,
    at: SystemTime,
) -> Ended {
    if matches!(request.action, Action::On | Action::Off)
        && Action::switch_to(state) != request.action
    {
        let text = format!(
            "asked {}, device reports {state} on its state topic",
            request.action
        );
        let mut ended = failed(
            status,
            request,
            Failure::DeviceError { text },
            Some(rtt),
            at,
        );
        ended.entry.evidence = Some(Evidence::Reported);
        // Still the device's word on its state, and the newest: shown as
        // its report (not as an acknowledgement of the request).
        status.device_report = Some(DeviceReport {
            state,
            at,
            source: None,
            retained: false,
            restored: false,
        });
        ended.report = Some(StoredReport {
            relay_id: request.relay_id.to_owned(),
            state,
            at,
            source: None,
        });
        return ended;
    }
    let requested = at.checked_sub(rtt).unwrap_or(at);
    let taken = status.confirm(
        state,
        Evidence::Reported,
        requested,
        at,
        rtt,
        request.operator,
    );
    let ack = taken.then(|| StoredAck {
        relay_id: request.relay_id.to_owned(),
        state,
        evidence: Evidence::Reported,
        requested,
        at,
        rtt,
        late: false,
        operator: Some(request.operator.to_owned()),
    });
    Ended {
        entry: entry(request, Outcome::Reported, Some(state), Some(rtt), None, at),
        ack,
        report: None,
        status_changed: true,
    }
}

/// The request ended without a state: no answer in time, the connection
/// dropped, the broker refused it, it was never sent, the device said
/// something else. The last acknowledged state stays.
pub fn failed(
    status: &mut RelayStatus,
    request: &Request<'_>,
    failure: Failure,
    rtt: Option<Duration>,
    at: SystemTime,
) -> Ended {
    let detail = match &failure {
        Failure::DeviceError { text } => Some(text.clone()),
        Failure::NotSent { reason } | Failure::Refused { reason } => Some(reason.clone()),
        Failure::NoResponse { .. } | Failure::ConnectionLost => None,
    };
    let entry = entry(request, failure.outcome(), None, rtt, detail, at);
    status.fail(failure, at, request.id);
    Ended {
        entry,
        ack: None,
        report: None,
        status_changed: true,
    }
}

/// A request for a relay that already has one in flight: not sent, said at
/// once; the request in flight (and the status) are untouched.
pub fn busy(request: &Request<'_>, at: SystemTime) -> Ended {
    let detail = format!(
        "not sent: relay {} already has a request in flight",
        request.relay_id
    );
    Ended {
        entry: entry(request, Outcome::Busy, None, None, Some(detail), at),
        ack: None,
        report: None,
        status_changed: false,
    }
}

/// Why a request of a relay removed from the configuration ended, when it
/// had been handed to the broker.
pub const REMOVED_IN_FLIGHT: &str = "the relay was removed from the configuration before the device answered; \
     the request was sent, so the device may still have switched";
/// The same, when it was still waiting to be sent.
pub const REMOVED_BEFORE_SENT: &str = "the relay was removed from the configuration before the request was sent; \
     it never will be, so it cannot switch anything later";

/// The relay of `request` was removed from the configuration while the
/// request was in flight (`sent`: handed to the broker) or still waiting
/// to be sent. It ends at once: unanswered (`NoResponse`: the state is
/// unconfirmed, the device may have acted), or `NotSent`. No status
/// changes: the relay leaves with the new configuration.
pub fn removed(request: &Request<'_>, sent: bool, at: SystemTime) -> Ended {
    let (outcome, detail) = if sent {
        (Outcome::NoResponse, REMOVED_IN_FLIGHT)
    } else {
        (Outcome::NotSent, REMOVED_BEFORE_SENT)
    };
    Ended {
        entry: entry(request, outcome, None, None, Some(detail.to_owned()), at),
        ack: None,
        report: None,
        status_changed: false,
    }
}

/// What a device's own state message (tied to no request) does to its
/// relay: see [`RelayStatus::device_reported`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNews {
    /// How it was taken.
    pub says: DeviceSays,
    /// The audit entry of a change at the device ([`Outcome::ChangedAtDevice`]).
    pub entry: Option<AuditEntry>,
    /// The report to store, when it became the relay's newest evidence
    /// heard live (retained ones are heard again on every subscribe).
    pub report: Option<StoredReport>,
}

impl DeviceNews {
    /// Whether the relay's status changed (a status event is due).
    pub fn status_changed(&self) -> bool {
        !matches!(self.says, DeviceSays::Unchanged | DeviceSays::Echo)
    }
}

/// The device of relay `relay_id` published `state` by itself (`source`:
/// what switched it, when it says), heard at `at`; `retained` and
/// `request_sent` as for [`RelayStatus::device_reported`]. A change at
/// the device is logged with its source as the detail and no operator
/// (nobody this panel knows asked for it).
pub fn device_reported(
    status: &mut RelayStatus,
    relay_id: &str,
    state: RelayState,
    source: Option<String>,
    at: SystemTime,
    retained: bool,
    request_sent: bool,
) -> DeviceNews {
    let says = status.device_reported(state, source.clone(), at, retained, request_sent);
    let entry = (says == DeviceSays::Changed).then(|| AuditEntry {
        at,
        relay_id: relay_id.to_owned(),
        action: Action::switch_to(state),
        outcome: Outcome::ChangedAtDevice,
        state: Some(state),
        evidence: Some(Evidence::Reported),
        rtt: None,
        detail: source.clone(),
        operator: String::new(),
        correlation: None,
    });
    let report = matches!(says, DeviceSays::Changed | DeviceSays::Renewed).then(|| StoredReport {
        relay_id: relay_id.to_owned(),
        state,
        at,
        source,
    });
    DeviceNews {
        says,
        entry,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::{PendingRequests, Resolution};
    use crate::relay::Phase;

    const TIMEOUT: Duration = Duration::from_secs(3);

    fn wall(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000 + ms)
    }

    fn request(action: Action, n: u8) -> Request<'static> {
        Request {
            relay_id: "pump-1",
            action,
            id: Some(CorrelationId([n; 16])),
            operator: "tech",
        }
    }

    /// Table: each event on a pending request, and what it decides.
    #[test]
    fn decisions_table() {
        use RelayState::{Off, On};
        struct Case {
            what: &'static str,
            action: Action,
            reply: Option<Reply>,
            failure: Option<Failure>,
            late: bool,
            outcome: Outcome,
            shown: Option<RelayState>,
            stored: bool,
            detail: Option<&'static str>,
        }
        let cases = [
            Case {
                what: "answer in time",
                action: Action::On,
                reply: Some(Reply::State(On)),
                failure: None,
                late: false,
                outcome: Outcome::Confirmed,
                shown: Some(On),
                stored: true,
                detail: None,
            },
            Case {
                what: "the device reports the other state",
                action: Action::On,
                reply: Some(Reply::State(Off)),
                failure: None,
                late: false,
                outcome: Outcome::Confirmed,
                shown: Some(Off),
                stored: true,
                detail: Some("asked on, device reports off"),
            },
            Case {
                what: "a query is answered",
                action: Action::Query,
                reply: Some(Reply::State(Off)),
                failure: None,
                late: false,
                outcome: Outcome::Confirmed,
                shown: Some(Off),
                stored: true,
                detail: None,
            },
            Case {
                what: "device error",
                action: Action::On,
                reply: Some(Reply::DeviceError("coil".into())),
                failure: None,
                late: false,
                outcome: Outcome::DeviceError,
                shown: None,
                stored: false,
                detail: Some("coil"),
            },
            Case {
                what: "late answer with nothing newer known",
                action: Action::On,
                reply: Some(Reply::State(On)),
                failure: None,
                late: true,
                outcome: Outcome::LateConfirmed,
                shown: Some(On),
                stored: true,
                detail: None,
            },
            Case {
                what: "late device error",
                action: Action::On,
                reply: Some(Reply::DeviceError("jammed".into())),
                failure: None,
                late: true,
                outcome: Outcome::LateDeviceError,
                shown: None,
                stored: false,
                detail: Some("jammed"),
            },
            Case {
                what: "timeout",
                action: Action::Off,
                reply: None,
                failure: Some(Failure::NoResponse { after: TIMEOUT }),
                late: false,
                outcome: Outcome::NoResponse,
                shown: None,
                stored: false,
                detail: None,
            },
            Case {
                what: "connection lost",
                action: Action::Off,
                reply: None,
                failure: Some(Failure::ConnectionLost),
                late: false,
                outcome: Outcome::ConnectionLost,
                shown: None,
                stored: false,
                detail: None,
            },
            Case {
                what: "refused by the broker",
                action: Action::Off,
                reply: None,
                failure: Some(Failure::Refused {
                    reason: "NotAuthorized".into(),
                }),
                late: false,
                outcome: Outcome::Refused,
                shown: None,
                stored: false,
                detail: Some("NotAuthorized"),
            },
        ];
        for case in cases {
            let mut status = RelayStatus::default();
            status.begin(case.action, wall(0), TIMEOUT).unwrap();
            let request = request(case.action, 1);
            let rtt = Duration::from_millis(if case.late { 4000 } else { 2 });
            let at = wall(rtt.as_millis() as u64);
            let ended = match (case.reply, case.failure) {
                (Some(reply), None) => answered(&mut status, &request, reply, rtt, at, case.late),
                (None, Some(failure)) => failed(&mut status, &request, failure, None, at),
                _ => unreachable!(),
            };
            let what = case.what;
            assert_eq!(ended.entry.outcome, case.outcome, "{what}");
            assert_eq!(
                status.last_acknowledged.as_ref().map(|a| a.state),
                case.shown,
                "{what}"
            );
            assert_eq!(ended.ack.is_some(), case.stored, "{what}");
            // A current answer always ends the pending phase; a late one
            // changes the status only when it is taken.
            assert_eq!(
                ended.status_changed,
                !case.late || case.stored,
                "{what}: status event"
            );
            assert_eq!(ended.entry.detail.as_deref(), case.detail, "{what}");
            assert_eq!(ended.entry.relay_id, "pump-1", "{what}");
            assert_eq!(ended.entry.operator, "tech", "{what}");
            assert_eq!(
                ended.entry.correlation.as_deref(),
                Some("01".repeat(16).as_str()),
                "{what}"
            );
            if let Some(ack) = &ended.ack {
                assert_eq!(ack.requested, wall(0), "{what}: ordered by send time");
                assert_eq!(ack.late, case.late, "{what}");
            }
            // A late answer leaves the phase of whatever came after alone.
            if !case.late {
                assert!(!status.is_pending(), "{what}");
            }
        }
    }

    /// Table: what a report does to a request in flight — the state asked
    /// for (or any, for a query) ends it as reported and is kept, marked
    /// reported; the other state is a failure that keeps the last
    /// acknowledged state.
    #[test]
    fn reports_table() {
        use RelayState::{Off, On};
        // (action, reported state, outcome, shown, detail)
        let cases = [
            (Action::On, On, Outcome::Reported, Some(On), None),
            (Action::Off, Off, Outcome::Reported, Some(Off), None),
            (Action::Query, On, Outcome::Reported, Some(On), None),
            (Action::Query, Off, Outcome::Reported, Some(Off), None),
            (
                Action::On,
                Off,
                Outcome::DeviceError,
                None,
                Some("asked on, device reports off on its state topic"),
            ),
            (
                Action::Off,
                On,
                Outcome::DeviceError,
                None,
                Some("asked off, device reports on on its state topic"),
            ),
        ];
        for (action, state, outcome, shown, detail) in cases {
            let what = format!("{action} reported {state}");
            let mut status = RelayStatus::default();
            status.begin(action, wall(0), TIMEOUT).unwrap();
            let ended = reported(
                &mut status,
                &request(action, 1),
                state,
                Duration::from_millis(7),
                wall(7),
            );
            assert_eq!(ended.entry.outcome, outcome, "{what}");
            assert_eq!(ended.entry.evidence, Some(Evidence::Reported), "{what}");
            assert_eq!(ended.entry.detail.as_deref(), detail, "{what}");
            assert_eq!(ended.entry.rtt, Some(Duration::from_millis(7)), "{what}");
            assert!(ended.status_changed && !status.is_pending(), "{what}");
            assert_eq!(
                status.last_acknowledged.as_ref().map(|a| a.state),
                shown,
                "{what}"
            );
            match &ended.ack {
                Some(ack) => {
                    assert_eq!(ack.evidence, Evidence::Reported, "{what}");
                    assert_eq!(ack.requested, wall(0), "{what}");
                    assert_eq!(
                        status.last_acknowledged.clone().unwrap().evidence,
                        Evidence::Reported
                    );
                    assert_eq!(status.phase.to_string(), "reported in 7.0 ms");
                }
                None => assert_eq!(shown, None, "{what}"),
            }
        }
        // A correlated answer says so, and a correlated device error too.
        let mut status = RelayStatus::default();
        status.begin(Action::On, wall(0), TIMEOUT).unwrap();
        let ended = answered(
            &mut status,
            &request(Action::On, 1),
            Reply::State(On),
            Duration::from_millis(2),
            wall(2),
            false,
        );
        assert_eq!(ended.entry.evidence, Some(Evidence::Correlated));
        assert_eq!(ended.ack.unwrap().evidence, Evidence::Correlated);
        assert_eq!(status.phase.to_string(), "confirmed in 2.0 ms");
        let timed_out = failed(
            &mut status,
            &request(Action::On, 2),
            Failure::NoResponse { after: TIMEOUT },
            None,
            wall(3000),
        );
        assert_eq!(timed_out.entry.evidence, None);
    }

    /// A late answer to an older request, arriving after the answer to a
    /// newer one, is logged but neither shown nor stored.
    #[test]
    fn older_late_answer_is_logged_not_shown() {
        let mut status = RelayStatus::default();
        // A (on) sent at 0, timed out; B (off) sent at 3100, answered at 3105.
        status.begin(Action::On, wall(0), TIMEOUT).unwrap();
        failed(
            &mut status,
            &request(Action::On, 1),
            Failure::NoResponse { after: TIMEOUT },
            None,
            wall(3000),
        );
        status.begin(Action::Off, wall(3100), TIMEOUT).unwrap();
        let b = answered(
            &mut status,
            &request(Action::Off, 2),
            Reply::State(RelayState::Off),
            Duration::from_millis(5),
            wall(3105),
            false,
        );
        assert!(b.ack.is_some());
        // A's answer arrives at 3500: 3500 ms after it was sent.
        let a = answered(
            &mut status,
            &request(Action::On, 1),
            Reply::State(RelayState::On),
            Duration::from_millis(3500),
            wall(3500),
            true,
        );
        assert_eq!(a.entry.outcome, Outcome::LateConfirmed);
        assert!(a.ack.is_none(), "not stored");
        assert!(!a.status_changed, "no status event");
        assert!(a.entry.detail.unwrap().contains("older"));
        assert_eq!(
            status.last_acknowledged.as_ref().map(|a| a.state),
            Some(RelayState::Off)
        );
        assert!(matches!(status.phase, Phase::Confirmed { .. }));
    }

    /// Busy changes nothing and says why.
    #[test]
    fn busy_leaves_the_request_in_flight() {
        let ended = busy(
            &Request {
                id: None,
                ..request(Action::Off, 1)
            },
            wall(0),
        );
        assert_eq!(ended.entry.outcome, Outcome::Busy);
        assert!(!ended.status_changed && ended.ack.is_none());
        assert!(ended.entry.correlation.is_none());
    }

    /// A request of a removed relay ends unanswered when it was sent (the
    /// device may have switched), not sent when it was still waiting; it
    /// keeps its correlation id for the audit log and changes no status.
    #[test]
    fn removed_relay_ends_its_request() {
        for (sent, outcome, detail) in [
            (true, Outcome::NoResponse, REMOVED_IN_FLIGHT),
            (false, Outcome::NotSent, REMOVED_BEFORE_SENT),
        ] {
            let ended = removed(&request(Action::On, 1), sent, wall(0));
            assert_eq!(ended.entry.outcome, outcome, "sent: {sent}");
            assert_eq!(ended.entry.detail.as_deref(), Some(detail));
            assert!(detail.contains("removed from the configuration"));
            assert!(!ended.status_changed && ended.ack.is_none());
            assert_eq!((ended.entry.state, ended.entry.rtt), (None, None));
            assert_eq!(
                ended.entry.correlation.as_deref(),
                Some("01".repeat(16).as_str())
            );
        }
    }

    /// Table: what a device's own message logs, stores and reports: a
    /// change is logged (source as detail, no operator) and stored; a
    /// renewal of the shown state is stored, not logged; a retained state
    /// is shown, neither logged nor stored; an echo or the same state
    /// again changes nothing.
    #[test]
    fn device_reports_table() {
        use RelayState::{Off, On};
        let confirmed_on = || {
            let mut status = RelayStatus::default();
            status.begin(Action::On, wall(0), TIMEOUT).unwrap();
            status.confirm(
                On,
                Evidence::Correlated,
                wall(0),
                wall(0),
                Duration::ZERO,
                "tech",
            );
            status
        };
        // (what, state, heard at, retained, decision, logged, stored, status changed)
        let cases = [
            (
                "echo",
                On,
                100,
                false,
                DeviceSays::Echo,
                false,
                false,
                false,
            ),
            (
                "same again",
                On,
                9_000,
                false,
                DeviceSays::Unchanged,
                false,
                false,
                false,
            ),
            (
                "button",
                Off,
                9_000,
                false,
                DeviceSays::Changed,
                true,
                true,
                true,
            ),
            (
                "retained",
                Off,
                9_000,
                true,
                DeviceSays::Retained,
                false,
                false,
                true,
            ),
        ];
        for (what, state, ms, retained, says, logged, stored, changed) in cases {
            let mut status = confirmed_on();
            let source = Some("button".to_owned());
            let news = device_reported(
                &mut status,
                "pump-1",
                state,
                source,
                wall(ms),
                retained,
                false,
            );
            assert_eq!(news.says, says, "{what}");
            assert_eq!(news.status_changed(), changed, "{what}");
            assert_eq!(news.entry.is_some(), logged, "{what}");
            assert_eq!(news.report.is_some(), stored, "{what}");
            if let Some(entry) = news.entry {
                assert_eq!(entry.outcome, Outcome::ChangedAtDevice, "{what}");
                assert_eq!(entry.action, Action::Off, "{what}");
                assert_eq!(entry.state, Some(state), "{what}");
                assert_eq!(entry.evidence, Some(Evidence::Reported), "{what}");
                assert_eq!(entry.detail.as_deref(), Some("button"), "{what}");
                assert_eq!(
                    (entry.operator.as_str(), entry.at),
                    ("", wall(ms)),
                    "{what}"
                );
                assert_eq!(entry.correlation, None, "{what}");
            }
            if let Some(report) = news.report {
                assert_eq!(
                    (report.relay_id.as_str(), report.state, report.at),
                    ("pump-1", state, wall(ms)),
                    "{what}"
                );
            }
        }
        // Renewed: an earlier session's state heard again, live.
        let mut restored = RelayStatus::restored(confirmed_on().last_acknowledged.unwrap());
        let news = device_reported(&mut restored, "pump-1", On, None, wall(9_000), false, false);
        assert_eq!(news.says, DeviceSays::Renewed);
        assert!(news.status_changed() && news.entry.is_none() && news.report.is_some());
    }

    /// Timeouts and late answers on tokio's paused clock, as the engine
    /// sees them: the correlation table ends the request at its deadline,
    /// a late answer within the grace period is still the device's report,
    /// one after it is forgotten.
    #[tokio::test(start_paused = true)]
    async fn timeout_then_late_answer_on_a_paused_clock() {
        let grace = Duration::from_secs(60);
        let mut table = PendingRequests::new(grace, 100);
        let mut status = RelayStatus::default();
        let id = CorrelationId([7; 16]);
        let sent = tokio::time::Instant::now();
        table
            .start(id, 0, Action::On, sent.into_std(), TIMEOUT)
            .unwrap();
        status.begin(Action::On, wall(0), TIMEOUT).unwrap();

        tokio::time::advance(TIMEOUT - Duration::from_millis(1)).await;
        assert!(
            table
                .expire(tokio::time::Instant::now().into_std())
                .is_empty()
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        let now = tokio::time::Instant::now().into_std();
        let expired = table.expire(now);
        assert_eq!(expired.len(), 1);
        let timed_out = failed(
            &mut status,
            &request(Action::On, 7),
            Failure::NoResponse { after: TIMEOUT },
            None,
            wall(3000),
        );
        assert_eq!(timed_out.entry.outcome, Outcome::NoResponse);
        assert_eq!(status.last_acknowledged, None);

        tokio::time::advance(Duration::from_secs(2)).await;
        let now = tokio::time::Instant::now().into_std();
        let Resolution::Late(late) = table.resolve(&id, now) else {
            panic!("a late answer within the grace period is recognised");
        };
        let rtt = now.duration_since(late.sent);
        assert_eq!(rtt, Duration::from_secs(5));
        let ended = answered(
            &mut status,
            &request(Action::On, 7),
            Reply::State(RelayState::On),
            rtt,
            wall(5000),
            true,
        );
        assert_eq!(ended.entry.outcome, Outcome::LateConfirmed);
        assert_eq!(ended.ack.unwrap().requested, wall(0));
        assert_eq!(table.resolve(&id, now), Resolution::Unknown, "once only");

        // Another request, answered after the grace period: forgotten.
        let id2 = CorrelationId([8; 16]);
        let now = tokio::time::Instant::now().into_std();
        table.start(id2, 0, Action::Off, now, TIMEOUT).unwrap();
        tokio::time::advance(TIMEOUT).await;
        assert_eq!(
            table.expire(tokio::time::Instant::now().into_std()).len(),
            1
        );
        tokio::time::advance(grace).await;
        assert_eq!(
            table.resolve(&id2, tokio::time::Instant::now().into_std()),
            Resolution::Unknown
        );
    }
}
