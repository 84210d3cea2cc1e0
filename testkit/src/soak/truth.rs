//! The order check: after every answer, the state the engine shows must
//! be the answer to the latest-*requested* answered request.

use std::collections::HashMap;

use relay_panel::outcome::Evidence;
use relay_panel::protocol::RelayState;
use relay_panel::relay::RelayStatus;
use relay_panel::store::AuditEntry;

use super::SoakReport;

/// An answer that became (or should have become) a relay's last
/// acknowledged state.
#[derive(Debug, Clone)]
pub(super) struct Ack {
    /// The number of the request it answers (per relay, in send order).
    number: u64,
    /// What it said.
    pub(super) state: RelayState,
    /// What ties it to the request.
    pub(super) evidence: Option<Evidence>,
    /// The request's correlation (hex).
    pub(super) correlation: Option<String>,
}

/// What the engine should show, from what the devices answered: per
/// relay, the answer to the *latest-requested* answered request (answers
/// overtake each other; arrival order means nothing).
pub(super) struct Truth {
    /// Sequence number of each ended request, by correlation (hex); per
    /// relay, requests end in the order they were sent.
    sequence: HashMap<String, u64>,
    /// Next sequence number, per relay.
    next: Vec<u64>,
    /// The newest answered request's answer, per relay.
    newest: Vec<Option<Ack>>,
    /// The last acknowledged state the engine shows, per relay.
    pub(super) shown: Vec<Option<RelayState>>,
    /// The number of the last request that ended, per relay.
    last: Vec<Option<u64>>,
}

impl Truth {
    pub(super) fn new(relays: usize) -> Self {
        Truth {
            sequence: HashMap::new(),
            next: vec![0; relays],
            newest: vec![None; relays],
            shown: vec![None; relays],
            last: vec![None; relays],
        }
    }

    pub(super) fn status(&mut self, relay: usize, status: &RelayStatus) {
        self.shown[relay] = status.last_acknowledged.as_ref().map(|a| a.state);
    }

    /// A request ended (its status event came just before).
    pub(super) fn ended(&mut self, relay: usize, entry: &AuditEntry, report: &mut SoakReport) {
        let Some(correlation) = &entry.correlation else {
            return;
        };
        let number = self.next[relay];
        self.next[relay] += 1;
        self.sequence.insert(correlation.clone(), number);
        self.last[relay] = Some(number);
        self.answered(relay, number, entry, report);
    }

    /// A late answer (its status event, if any, came just before).
    pub(super) fn late(&mut self, relay: usize, entry: &AuditEntry, report: &mut SoakReport) {
        let number = entry
            .correlation
            .as_ref()
            .and_then(|c| self.sequence.get(c).copied());
        if let Some(number) = number {
            self.answered(relay, number, entry, report);
        }
    }

    fn answered(&mut self, relay: usize, number: u64, entry: &AuditEntry, report: &mut SoakReport) {
        let Some(state) = entry.state else {
            return;
        };
        if self.newest[relay]
            .as_ref()
            .is_none_or(|ack| number >= ack.number)
        {
            self.newest[relay] = Some(Ack {
                number,
                state,
                evidence: entry.evidence,
                correlation: entry.correlation.clone(),
            });
        }
        report.order_checked += 1;
        let expected = self.newest[relay].as_ref().map(|ack| ack.state);
        if self.shown[relay] != expected {
            report.order_violations += 1;
            if report.order_examples.len() < 5 {
                report.order_examples.push(format!(
                    "{}: shows {:?} after an answer to request #{number}, but the newest answered request says {expected:?}",
                    entry.relay_id, self.shown[relay]
                ));
            }
        }
    }

    /// The answer to the relay's last request, if it got one with a
    /// state.
    pub(super) fn last_request_answer(&self, relay: usize) -> Option<&Ack> {
        let ack = self.newest[relay].as_ref()?;
        (self.last[relay] == Some(ack.number)).then_some(ack)
    }
}
