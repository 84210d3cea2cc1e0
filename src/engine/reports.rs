//! Reports waiting for a correlated answer: a Tasmota built with MQTT 5
//! publishes `stat/<device>/RESULT` *before* its correlated answer, so a
//! report does not settle its request at once; it waits until the answer
//! comes (and wins) or its time is up (and the report settles it as
//! *reported*). Which devices have answered correlated is remembered: for
//! those, a report waits for the answer until the request's deadline.
//!
//! Pure: every method takes `now`; no clocks, no I/O.
//!
//! Invariants: at most one report held per request (the first: later ones
//! of the same request change nothing); `due` is ordered by time, one
//! entry per held report.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::protocol::{CorrelationId, RelayState};

/// A report held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Held {
    /// What the device reported.
    pub state: RelayState,
    /// When it arrived (the request's round trip ends here).
    pub heard: Instant,
    /// When it settles the request unless the correlated answer came.
    pub until: Instant,
}

/// The held reports and what is known of the devices.
#[derive(Debug, Default)]
pub(super) struct HeldReports {
    /// By request.
    held: HashMap<CorrelationId, Held>,
    /// The same, by time due.
    due: BTreeSet<(Instant, CorrelationId)>,
    /// Devices (by topic) that have answered a request correlated.
    correlated: HashSet<String>,
}

impl HeldReports {
    /// Holds the report `state` of request `id` for `device`, heard at
    /// `now`: for `wait`, or until `deadline` when the device is known to
    /// answer correlated (never past `deadline`, when the request ends
    /// anyway). A second report for the same request changes nothing.
    pub fn hold(
        &mut self,
        id: CorrelationId,
        device: &str,
        state: RelayState,
        now: Instant,
        wait: Duration,
        deadline: Instant,
    ) {
        if self.held.contains_key(&id) {
            return;
        }
        let until = if self.correlated.contains(device) {
            deadline
        } else {
            (now + wait).min(deadline)
        };
        self.held.insert(
            id,
            Held {
                state,
                heard: now,
                until,
            },
        );
        self.due.insert((until, id));
    }

    /// The correlated answer to `id` came from `device`: its held report,
    /// if any, is dropped (the answer wins), and the device is
    /// remembered as one that answers correlated.
    pub fn answered(&mut self, id: &CorrelationId, device: &str) -> Option<Held> {
        if !self.correlated.contains(device) {
            self.correlated.insert(device.to_owned());
        }
        self.take(id)
    }

    /// Takes the report held for `id` (the request ends another way, or
    /// must settle now).
    pub fn take(&mut self, id: &CorrelationId) -> Option<Held> {
        let held = self.held.remove(id)?;
        self.due.remove(&(held.until, *id));
        Some(held)
    }

    /// Every held report whose time is up at `now`, oldest first.
    pub fn due(&mut self, now: Instant) -> Vec<(CorrelationId, Held)> {
        let mut out = Vec::new();
        while let Some(&(until, id)) = self.due.first() {
            if until > now {
                break;
            }
            self.due.pop_first();
            if let Some(held) = self.held.remove(&id) {
                out.push((id, held));
            }
        }
        out
    }

    /// Every held report, to settle now (the connection dropped: what was
    /// heard before still stands).
    pub fn all(&mut self) -> Vec<(CorrelationId, Held)> {
        self.due.clear();
        let mut out: Vec<_> = self.held.drain().collect();
        out.sort_by_key(|(_, held)| held.until);
        out
    }

    /// When the next held report is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(until, _)| *until)
    }

    /// Whether `device` has answered correlated.
    #[cfg(test)]
    pub fn answers_correlated(&self, device: &str) -> bool {
        self.correlated.contains(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(300);

    fn id(n: u8) -> CorrelationId {
        CorrelationId([n; 16])
    }

    /// A report waits its time, the answer takes it away, and a device
    /// that answered correlated gets until the deadline next time.
    #[test]
    fn reports_wait_for_the_answer() {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(3);
        let mut reports = HeldReports::default();
        reports.hold(id(1), "cmnd/t/POWER1", RelayState::On, t0, WAIT, deadline);
        // The second report of the same request changes nothing.
        let later = t0 + Duration::from_millis(10);
        reports.hold(
            id(1),
            "cmnd/t/POWER1",
            RelayState::Off,
            later,
            WAIT,
            deadline,
        );
        assert_eq!(reports.next_due(), Some(t0 + WAIT));
        assert!(reports.due(t0 + WAIT - Duration::from_millis(1)).is_empty());
        let due = reports.due(t0 + WAIT);
        assert_eq!(
            due,
            [(
                id(1),
                Held {
                    state: RelayState::On,
                    heard: t0,
                    until: t0 + WAIT
                }
            )]
        );
        assert_eq!(reports.next_due(), None);

        // The answer comes within the wait: the report is dropped.
        reports.hold(id(2), "t", RelayState::On, t0, WAIT, deadline);
        assert!(!reports.answers_correlated("t"));
        assert!(reports.answered(&id(2), "t").is_some());
        assert!(reports.answers_correlated("t"));
        assert!(reports.due(deadline).is_empty());

        // Known to answer correlated: held until the deadline.
        reports.hold(id(3), "t", RelayState::Off, t0, WAIT, deadline);
        assert_eq!(reports.next_due(), Some(deadline));
        // Never past the deadline, for an unknown device either.
        let soon = t0 + Duration::from_millis(100);
        reports.hold(id(4), "u", RelayState::Off, t0, WAIT, soon);
        assert_eq!(reports.next_due(), Some(soon));
        let all = reports.all();
        assert_eq!(
            all.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [id(4), id(3)]
        );
        assert_eq!(reports.next_due(), None);
        assert!(reports.take(&id(3)).is_none());
    }
}
