//! Correlation bookkeeping: which requests are in flight, and which ended
//! recently without an answer (so a late answer is still recognised).
//!
//! Pure: every method takes `now`; no clocks, no I/O.
//!
//! Invariants:
//! - at most one request in flight per relay;
//! - a correlation id is in at most one of `in_flight` and `recent`;
//! - `recent` forgets entries after the grace period and never holds more
//!   than `max_recent`, so memory stays bounded whatever devices do.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::{Action, CorrelationId};

/// One request the panel sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Index of the relay in the configuration.
    pub relay: usize,
    /// What was asked.
    pub action: Action,
    /// When it was published (round trips are measured from here).
    pub sent: Instant,
    /// When it ends as "no response".
    pub deadline: Instant,
}

/// What an incoming correlation id refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// A request still in flight: this answers it.
    Current(InFlight),
    /// A request that already ended (timed out, connection lost) within the
    /// grace period: the device's own late report.
    Late(InFlight),
    /// Nothing this panel remembers: foreign, duplicate, forged or too late.
    Unknown,
}

/// The relay already has a request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyPending;

/// The correlation table.
#[derive(Debug)]
pub struct PendingRequests {
    /// Requests waiting for an answer, by correlation id.
    in_flight: HashMap<CorrelationId, InFlight>,
    /// The one in-flight request of each relay.
    by_relay: HashMap<usize, CorrelationId>,
    /// In-flight requests ordered by deadline, for the next timer.
    deadlines: BTreeSet<(Instant, CorrelationId)>,
    /// Ended requests that may still be answered late.
    recent: HashMap<CorrelationId, InFlight>,
    /// When each `recent` entry is forgotten, oldest first.
    forget_order: VecDeque<(Instant, CorrelationId)>,
    /// How long ended requests are remembered.
    grace: Duration,
    /// Cap on `recent`, whatever the grace period.
    max_recent: usize,
}

impl PendingRequests {
    /// A table remembering ended requests for `grace`, at most `max_recent`.
    pub fn new(grace: Duration, max_recent: usize) -> Self {
        PendingRequests {
            in_flight: HashMap::new(),
            by_relay: HashMap::new(),
            deadlines: BTreeSet::new(),
            recent: HashMap::new(),
            forget_order: VecDeque::new(),
            grace,
            max_recent,
        }
    }

    /// Registers a new request under `id` (chosen by the caller, normally
    /// [`CorrelationId::random`]).
    pub fn start(
        &mut self,
        id: CorrelationId,
        relay: usize,
        action: Action,
        now: Instant,
        timeout: Duration,
    ) -> Result<(), AlreadyPending> {
        if self.by_relay.contains_key(&relay) {
            return Err(AlreadyPending);
        }
        let request = InFlight {
            relay,
            action,
            sent: now,
            deadline: now + timeout,
        };
        // A (vanishingly unlikely) id collision with a remembered request
        // must not let an old answer confirm the new one.
        self.recent.remove(&id);
        self.in_flight.insert(id, request);
        self.by_relay.insert(relay, id);
        self.deadlines.insert((request.deadline, id));
        Ok(())
    }

    /// Whether the relay has a request in flight.
    pub fn is_pending(&self, relay: usize) -> bool {
        self.by_relay.contains_key(&relay)
    }

    /// Whether the request with this id is in flight.
    pub fn is_in_flight(&self, id: &CorrelationId) -> bool {
        self.in_flight.contains_key(id)
    }

    /// The request in flight of `relay`, if any.
    pub fn in_flight_of(&self, relay: usize) -> Option<(CorrelationId, InFlight)> {
        let id = self.by_relay.get(&relay)?;
        self.in_flight.get(id).map(|request| (*id, *request))
    }

    /// The request with this id, in flight or remembered, without
    /// resolving it (to check who may answer it first).
    pub fn peek(&self, id: &CorrelationId) -> Option<InFlight> {
        self.in_flight
            .get(id)
            .or_else(|| self.recent.get(id))
            .copied()
    }

    /// Number of requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Number of ended requests still remembered.
    pub fn remembered(&self) -> usize {
        self.recent.len()
    }

    /// The earliest deadline of a request in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Matches an answer's correlation id. Each request is answered at most
    /// once: a second answer with the same id is `Unknown`.
    pub fn resolve(&mut self, id: &CorrelationId, now: Instant) -> Resolution {
        self.forget_old(now);
        if let Some(request) = self.remove_in_flight(id) {
            return Resolution::Current(request);
        }
        match self.recent.remove(id) {
            Some(request) => Resolution::Late(request),
            None => Resolution::Unknown,
        }
    }

    /// Ends a request in flight for good (the broker refused it: no device
    /// will ever answer it).
    pub fn cancel(&mut self, id: &CorrelationId) -> Option<InFlight> {
        self.remove_in_flight(id)
    }

    /// Ends every request whose deadline has passed; they stay answerable
    /// (late) for the grace period.
    pub fn expire(&mut self, now: Instant) -> Vec<(CorrelationId, InFlight)> {
        let mut ended = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            if let Some(request) = self.remove_in_flight(&id) {
                self.remember(id, request, now);
                ended.push((id, request));
            }
        }
        self.forget_old(now);
        ended
    }

    /// Ends every request in flight (the connection dropped); they stay
    /// answerable (late) for the grace period.
    pub fn abandon_all(&mut self, now: Instant) -> Vec<(CorrelationId, InFlight)> {
        let ids: Vec<CorrelationId> = self.deadlines.iter().map(|(_, id)| *id).collect();
        let mut ended = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(request) = self.remove_in_flight(&id) {
                self.remember(id, request, now);
                ended.push((id, request));
            }
        }
        ended
    }

    /// The relays were renumbered (the configuration changed): `moves[old]`
    /// is the new index of the relay at `old`, `None` when it was removed
    /// (as is any index past the end). Requests of relays that stay keep
    /// their correlation ids, deadlines and send times under the new index,
    /// remembered ones too, so a late answer still finds its relay. The
    /// requests in flight of removed relays are returned, with their old
    /// index, and forgotten: no answer can find them any more (it is
    /// `Unknown`), and neither can a late answer to a removed relay.
    pub fn renumber(&mut self, moves: &[Option<usize>]) -> Vec<(CorrelationId, InFlight)> {
        let new_index = |old: usize| moves.get(old).copied().flatten();
        let mut removed = Vec::new();
        for (id, request) in std::mem::take(&mut self.in_flight) {
            match new_index(request.relay) {
                Some(relay) => {
                    self.in_flight.insert(id, InFlight { relay, ..request });
                }
                None => {
                    self.deadlines.remove(&(request.deadline, id));
                    removed.push((id, request));
                }
            }
        }
        self.by_relay = self
            .in_flight
            .iter()
            .map(|(id, request)| (request.relay, *id))
            .collect();
        // Stale ids left in `forget_order` are dropped when they come due
        // (see `forget_old`).
        self.recent = std::mem::take(&mut self.recent)
            .into_iter()
            .filter_map(|(id, request)| {
                new_index(request.relay).map(|relay| (id, InFlight { relay, ..request }))
            })
            .collect();
        // Oldest first, as the deadlines would have ended them.
        removed.sort_by_key(|(id, request)| (request.deadline, *id));
        removed
    }

    fn remove_in_flight(&mut self, id: &CorrelationId) -> Option<InFlight> {
        let request = self.in_flight.remove(id)?;
        self.by_relay.remove(&request.relay);
        self.deadlines.remove(&(request.deadline, *id));
        Some(request)
    }

    fn remember(&mut self, id: CorrelationId, request: InFlight, now: Instant) {
        self.recent.insert(id, request);
        self.forget_order.push_back((now + self.grace, id));
        while self.recent.len() > self.max_recent {
            match self.forget_order.pop_front() {
                Some((_, old)) => {
                    self.recent.remove(&old);
                }
                None => break,
            }
        }
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&(forget_at, id)) = self.forget_order.front() {
            if forget_at > now {
                break;
            }
            self.forget_order.pop_front();
            self.recent.remove(&id);
        }
        // Entries resolved late leave stale ids in `forget_order`; they are
        // dropped here when they come due, so the queue stays bounded too.
        if self.forget_order.len() > 2 * self.max_recent.max(1) {
            let recent = &self.recent;
            self.forget_order.retain(|(_, id)| recent.contains_key(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(3);
    const GRACE: Duration = Duration::from_secs(30);

    fn id(n: u8) -> CorrelationId {
        CorrelationId([n; 16])
    }

    /// Table-driven walk through the life of requests.
    #[test]
    fn lifecycle_table() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut table = PendingRequests::new(GRACE, 100);
        table.start(id(1), 0, Action::On, at(0), TIMEOUT).unwrap();
        table.start(id(2), 1, Action::Off, at(10), TIMEOUT).unwrap();
        assert_eq!(
            table.start(id(3), 0, Action::Off, at(20), TIMEOUT),
            Err(AlreadyPending),
            "one request in flight per relay"
        );
        assert_eq!(table.next_deadline(), Some(at(3000)));

        // (step, id, now ms, expected)
        enum Step {
            Resolve(u8, u64, &'static str),
            Expire(u64, usize),
        }
        let steps = [
            Step::Resolve(9, 100, "unknown"),
            Step::Resolve(2, 200, "current"),
            Step::Resolve(2, 210, "unknown"), // duplicate answer
            Step::Expire(2999, 0),
            Step::Expire(3000, 1), // id 1 times out
            Step::Resolve(1, 4000, "late"),
            Step::Resolve(1, 4001, "unknown"), // late duplicate
        ];
        for step in steps {
            match step {
                Step::Resolve(n, ms, expected) => {
                    let got = match table.resolve(&id(n), at(ms)) {
                        Resolution::Current(_) => "current",
                        Resolution::Late(_) => "late",
                        Resolution::Unknown => "unknown",
                    };
                    assert_eq!(got, expected, "resolve id {n} at {ms} ms");
                }
                Step::Expire(ms, n) => {
                    assert_eq!(table.expire(at(ms)).len(), n, "expire at {ms} ms")
                }
            }
        }
        assert!(!table.is_pending(0));
        table
            .start(id(4), 0, Action::Off, at(5000), TIMEOUT)
            .unwrap();
    }

    /// Ended requests are forgotten after the grace period.
    #[test]
    fn late_answers_only_within_grace() {
        let t0 = Instant::now();
        let mut table = PendingRequests::new(GRACE, 100);
        table.start(id(1), 0, Action::On, t0, TIMEOUT).unwrap();
        table.start(id(2), 1, Action::On, t0, TIMEOUT).unwrap();
        assert_eq!(table.expire(t0 + TIMEOUT).len(), 2);
        assert!(matches!(
            table.resolve(&id(1), t0 + TIMEOUT + GRACE - Duration::from_millis(1)),
            Resolution::Late(_)
        ));
        assert_eq!(
            table.resolve(&id(2), t0 + TIMEOUT + GRACE),
            Resolution::Unknown
        );
        assert_eq!(table.remembered(), 0);
    }

    /// A dropped connection ends everything in flight, still answerable late.
    #[test]
    fn abandon_all_ends_everything() {
        let t0 = Instant::now();
        let mut table = PendingRequests::new(GRACE, 100);
        for n in 0..5 {
            table
                .start(id(n), n as usize, Action::On, t0, TIMEOUT)
                .unwrap();
        }
        assert_eq!(table.abandon_all(t0).len(), 5);
        assert_eq!(table.in_flight(), 0);
        assert_eq!(table.next_deadline(), None);
        assert!(matches!(table.resolve(&id(3), t0), Resolution::Late(_)));
    }

    /// Renumbering moves requests in flight and remembered ones to their
    /// relay's new index (deadlines and late answers unchanged), and ends
    /// those of removed relays: returned once, then unknown.
    #[test]
    fn renumber_follows_relays_and_drops_removed_ones() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut table = PendingRequests::new(GRACE, 100);
        // Relay 0 ends unanswered (remembered), 1 and 2 are in flight, 3
        // ends unanswered too.
        table.start(id(1), 0, Action::On, at(0), TIMEOUT).unwrap();
        table.start(id(4), 3, Action::On, at(0), TIMEOUT).unwrap();
        assert_eq!(table.expire(at(3000)).len(), 2);
        table
            .start(id(2), 1, Action::Off, at(3100), TIMEOUT)
            .unwrap();
        table
            .start(id(3), 2, Action::On, at(3200), TIMEOUT)
            .unwrap();

        // 0 → 2, 1 → 0, 2 removed, 3 past the end: removed.
        let removed = table.renumber(&[Some(2), Some(0), None]);
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert_eq!(removed[0].0, id(3));
        assert_eq!(removed[0].1.relay, 2, "returned with its old index");
        assert_eq!(table.in_flight(), 1);
        assert!(table.is_pending(0), "relay 1's request is now relay 0's");
        assert!(!table.is_pending(1) && !table.is_pending(2));
        assert_eq!(table.next_deadline(), Some(at(6100)), "deadline kept");
        assert_eq!(
            table.start(id(5), 0, Action::On, at(3300), TIMEOUT),
            Err(AlreadyPending),
            "still one request in flight for the relay that moved"
        );
        table
            .start(id(6), 1, Action::On, at(3300), TIMEOUT)
            .unwrap();

        assert!(
            matches!(table.resolve(&id(1), at(3400)), Resolution::Late(r) if r.relay == 2),
            "a late answer finds the relay at its new index"
        );
        assert_eq!(table.resolve(&id(4), at(3400)), Resolution::Unknown);
        assert_eq!(table.resolve(&id(3), at(3400)), Resolution::Unknown);
        match table.resolve(&id(2), at(3400)) {
            Resolution::Current(request) => {
                assert_eq!(request.relay, 0);
                assert_eq!(request.sent, at(3100), "round trip from the send time");
            }
            other => panic!("{other:?}"),
        }
        assert!(!table.is_pending(0));
        // The removed request's deadline is gone: only id 6 can expire.
        let expired = table.expire(at(10_000));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, id(6));
    }

    /// However many requests time out, memory stays under the cap.
    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut table = PendingRequests::new(Duration::from_secs(3600), 50);
        for n in 0..10_000u32 {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            let now = t0 + Duration::from_millis(n as u64);
            table
                .start(CorrelationId(bytes), 0, Action::On, now, Duration::ZERO)
                .unwrap();
            table.expire(now);
            table.resolve(&CorrelationId([0xff; 16]), now);
        }
        assert!(table.remembered() <= 50);
        assert!(table.forget_order.len() <= 100);
    }
}
