//! What a soak saw, and whether every check held.

use std::collections::BTreeMap;
use std::time::Duration;

use relay_panel::outcome::{Evidence, Outcome};

use super::SoakKind;

/// What happened.
#[derive(Debug, Default, Clone)]
pub struct SoakReport {
    /// Requests published.
    pub requests: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// How requests ended: confirmed, no response, device error, connection lost.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Answers after their request had ended: late confirmed, late device error.
    pub late: BTreeMap<Outcome, usize>,
    /// Requests refused because the broker was down (not counted in `requests`).
    pub not_sent: usize,
    /// What the devices did: answered, dropped, duplicated, garbage, wrong correlation.
    pub device: BTreeMap<&'static str, usize>,
    /// State reports the devices published on their state topics (of
    /// which garbage: `reports_garbage`).
    pub reports_published: usize,
    /// Of those, reports whose payload a fault made garbage.
    pub reports_garbage: usize,
    /// Reports the devices dropped because they were offline (broker down).
    pub reports_offline: usize,
    /// Requests ended with a state that no device gave (must be 0): a
    /// correlated state without the device's tied answer saying it, a
    /// reported one without the device's report of it (see `soak/devices.rs`).
    pub false_confirmations: usize,
    /// Descriptions of the first few false confirmations.
    pub false_examples: Vec<String>,
    /// Requests that ended later than timeout + 1 s after being sent, or never (must be 0).
    pub overdue: usize,
    /// Broker outages injected.
    pub outages: usize,
    /// Time from each broker restart to the engine being connected again.
    pub reconnects: Vec<Duration>,
    /// Answers with a state after which the shown state was checked
    /// against the newest-requested answer.
    pub order_checked: usize,
    /// Of those, times the engine showed the answer to an older request
    /// over a newer one's (must be 0).
    pub order_violations: usize,
    /// Descriptions of the first few.
    pub order_examples: Vec<String>,
    /// Relays whose last request got an answer with a state, once quiet:
    /// their last acknowledged state is checked against the device's.
    pub final_checked: usize,
    /// Of those, relays whose last acknowledged state differs from the
    /// state the simulated device really ended in (must be 0).
    pub final_mismatches: usize,
    /// Relays whose last request was answered by a report, left out of
    /// that check because their device published again after that report
    /// (a report with nothing in flight is not shown, by design).
    pub final_skipped: usize,
    /// Descriptions of the first few mismatches.
    pub final_examples: Vec<String>,
    /// The same, per kind of device.
    pub kinds: BTreeMap<SoakKind, KindReport>,
}

/// What one kind of device's relays saw.
#[derive(Debug, Default, Clone)]
pub struct KindReport {
    /// Relays of this kind.
    pub relays: usize,
    /// How their requests ended.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Their answers after their request had ended.
    pub late: BTreeMap<Outcome, usize>,
    /// Their states that no device gave (must be 0).
    pub false_confirmations: usize,
    /// Relays checked against their device once quiet.
    pub final_checked: usize,
    /// Left out of that check (see [`SoakReport::final_skipped`]).
    pub final_skipped: usize,
    /// Of those checked, relays whose shown state differs from the device's.
    pub final_mismatches: usize,
}

impl KindReport {
    /// Requests that ended this way (at the time, or late).
    pub fn count(&self, outcome: Outcome) -> usize {
        self.outcomes
            .get(&outcome)
            .or(self.late.get(&outcome))
            .copied()
            .unwrap_or(0)
    }
}

impl SoakReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.false_confirmations == 0
            && self.final_mismatches == 0
            && self.order_violations == 0
            && self.overdue == 0
            && self.reconnects.len() == self.outages
            && self.reconnects.iter().all(|d| *d <= Duration::from_secs(2))
    }

    /// A human-readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let rate = self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9);
        out.push_str(&format!(
            "requests published: {} in {:.1} s ({rate:.0}/s)\n",
            self.requests,
            self.elapsed.as_secs_f64()
        ));
        for (outcome, n) in &self.outcomes {
            out.push_str(&format!("  {outcome:<16} {n}\n"));
        }
        for (outcome, n) in &self.late {
            out.push_str(&format!(
                "  {outcome:<16} {n} (answers after their request ended)\n"
            ));
        }
        out.push_str(&format!("  not sent (broker down) {}\n", self.not_sent));
        out.push_str("devices did:\n");
        for (what, n) in &self.device {
            out.push_str(&format!("  {what:<18} {n}\n"));
        }
        out.push_str(&format!(
            "  reported state     {} times ({} garbage; {} more dropped while offline)\n",
            self.reports_published, self.reports_garbage, self.reports_offline
        ));
        if !self.kinds.is_empty() {
            out.push_str("per kind of device:\n");
        }
        for (kind, k) in &self.kinds {
            let answers = match kind.evidence() {
                Evidence::Correlated => "answers tied to the request",
                Evidence::Reported => "only reports",
            };
            let ends: Vec<String> = k
                .outcomes
                .iter()
                .map(|(o, n)| format!("{o} {n}"))
                .chain(k.late.iter().map(|(o, n)| format!("{o} {n}")))
                .collect();
            out.push_str(&format!(
                "  {kind} ({} relays, {answers}): {}\n",
                k.relays,
                ends.join(", ")
            ));
            out.push_str(&format!(
                "    false confirmations {}; once quiet {} checked, {} differ, {} skipped (reported again after the last acknowledgement)\n",
                k.false_confirmations, k.final_checked, k.final_mismatches, k.final_skipped
            ));
        }
        if self.outages > 0 {
            let worst = self.reconnects.iter().max().copied().unwrap_or_default();
            out.push_str(&format!(
                "broker outages: {} injected, {} recovered, slowest reconnect {:.0} ms after the broker returned\n",
                self.outages,
                self.reconnects.len(),
                worst.as_secs_f64() * 1000.0
            ));
        }
        out.push_str(&format!(
            "false confirmations: {}\n",
            self.false_confirmations
        ));
        for example in &self.false_examples {
            out.push_str(&format!("  {example}\n"));
        }
        out.push_str(&format!(
            "shown state not the newest-requested answer: {} of {} answers checked\n",
            self.order_violations, self.order_checked
        ));
        for example in &self.order_examples {
            out.push_str(&format!("  {example}\n"));
        }
        out.push_str(&format!(
            "last acknowledged state differs from the device's, once quiet: {} of {} relays checked ({} skipped: reported again after the last acknowledgement)\n",
            self.final_mismatches, self.final_checked, self.final_skipped
        ));
        for example in &self.final_examples {
            out.push_str(&format!("  {example}\n"));
        }
        out.push_str(&format!(
            "requests pending past their timeout: {}\n",
            self.overdue
        ));
        out.push_str(if self.passed() {
            "PASSED\n"
        } else {
            "FAILED\n"
        });
        out
    }
}
