//! What a soak saw, and whether every check held.

use std::collections::BTreeMap;
use std::time::Duration;

use relay_panel::outcome::Outcome;

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
    /// Confirmations that no device gave (must be 0).
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
    /// Descriptions of the first few mismatches.
    pub final_examples: Vec<String>,
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
            "last acknowledged state differs from the device's, once quiet: {} of {} relays checked\n",
            self.final_mismatches, self.final_checked
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
