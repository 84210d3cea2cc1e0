//! The chaos soak: many requests through the real engine, a real Mosquitto
//! and simulated devices that misbehave (drops, duplicates, garbage, wrong
//! correlation, answers later than the timeout), optionally with the broker
//! killed and restarted. Every confirmation the engine reports is checked
//! against what the simulated device really did.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::{Config, RelayConfig};
use crate::engine::{self, ConnectionState, EngineOptions, Event, sleep_until};
use crate::mosquitto::LocalMosquitto;
use crate::protocol::{Action, RelayState};
use crate::relay::RelayStatus;
use crate::sim::{self, Faults, SimOptions, SimRecord, SimReply};
use crate::store::AuditEntry;

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Simulated relays (one request in flight on each).
    pub relays: usize,
    /// Requests to publish in all.
    pub requests: usize,
    /// Request timeout.
    pub timeout: Duration,
    /// Faults the devices inject.
    pub faults: Faults,
    /// Broker kills and restarts, spread over the run.
    pub outages: usize,
    /// How long the broker stays down each time.
    pub outage_length: Duration,
}

impl SoakOptions {
    /// The documented soak: fault rates that exercise every path, answers
    /// up to 1.5x the timeout late.
    pub fn new(relays: usize, requests: usize, outages: usize, seed: Option<u64>) -> Self {
        let timeout = Duration::from_millis(100);
        SoakOptions {
            relays,
            requests,
            timeout,
            faults: Faults {
                latency: Duration::ZERO,
                jitter: timeout.mul_f64(1.5),
                drop: 0.05,
                duplicate: 0.05,
                garbage: 0.02,
                wrong_correlation: 0.02,
                fail: ["soak-0".to_owned()].into_iter().collect(),
                seed,
            },
            outages,
            outage_length: Duration::from_millis(300),
        }
    }
}

/// What happened.
#[derive(Debug, Default, Clone)]
pub struct SoakReport {
    /// Requests published.
    pub requests: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// How requests ended: confirmed, no response, device error, connection lost.
    pub outcomes: BTreeMap<String, usize>,
    /// Answers after their request had ended: late confirmed, late device error.
    pub late: BTreeMap<String, usize>,
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

fn relays(n: usize) -> Vec<RelayConfig> {
    let run: u32 = rand::random();
    (0..n)
        .map(|i| {
            let mut relay =
                RelayConfig::new(&format!("soak-{i}"), &format!("soak/{run:08x}/relay/{i}"));
            relay.payload_query = Some("?".into());
            relay
        })
        .collect()
}

/// Runs a soak on the current tokio runtime (multi-threaded) with its own
/// Mosquitto. `progress` hears the number of requests ended so far.
pub async fn run(
    options: SoakOptions,
    mut progress: impl FnMut(usize),
) -> std::io::Result<SoakReport> {
    let broker = Arc::new(Mutex::new(LocalMosquitto::start_with("")?));
    let url = broker
        .lock()
        .map_err(|_| std::io::Error::other("broker lock"))?
        .url();
    let mut config = Config::new(&url);
    config.broker.request_timeout_ms = options.timeout.as_millis() as u64;
    config.relays = relays(options.relays);

    let (mut devices, mut records) = sim::spawn(SimOptions {
        config: config.clone(),
        faults: options.faults.clone(),
        client_id: None,
    })
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    tokio::time::timeout(Duration::from_secs(10), devices.ready())
        .await
        .map_err(|_| std::io::Error::other("simulated devices did not subscribe"))?;
    let (handle, mut events) = engine::spawn(EngineOptions::new(config.clone()))
        .map_err(|e| std::io::Error::other(e.to_string()))?;

    // Outages: kill and restart the broker as the run passes milestones.
    let (done_tx, done_rx) = watch::channel(0usize);
    let (restarted_tx, mut restarted_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let outage_task = {
        let broker = broker.clone();
        let (outages, length, total) = (options.outages, options.outage_length, options.requests);
        let mut done_rx = done_rx.clone();
        tokio::spawn(async move {
            for k in 1..=outages {
                let milestone = total * k / (outages + 1);
                if done_rx.wait_for(|done| *done >= milestone).await.is_err() {
                    return;
                }
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut b) = b.lock() {
                        b.stop();
                    }
                })
                .await;
                tokio::time::sleep(length).await;
                let b = broker.clone();
                let resumed = tokio::task::spawn_blocking(move || match b.lock() {
                    Ok(mut b) => b.resume().is_ok(),
                    Err(_) => false,
                })
                .await;
                if !matches!(resumed, Ok(true)) {
                    tracing::error!("soak: the broker did not restart");
                    return;
                }
                let _ = restarted_tx.send(Instant::now());
            }
        })
    };

    let started = Instant::now();
    let mut report = SoakReport {
        outages: options.outages,
        ..SoakReport::default()
    };
    let mut confirmations: Vec<(usize, AuditEntry)> = Vec::new();
    let mut sent_at: Vec<Option<Instant>> = vec![None; options.relays];
    let mut idle: Vec<usize> = (0..options.relays).collect();
    let mut published = 0usize;
    let mut ended = 0usize;
    let mut connected = false;
    let mut waiting_reconnect: Option<Instant> = None;
    let slack = options.timeout + Duration::from_secs(1);
    let mut next_action = 0usize;
    // Per relay: the correlation of its last request, whether that request
    // got an answer with a state, and the engine's latest status.
    let mut last_request: Vec<Option<(String, bool)>> = vec![None; options.relays];
    let mut final_status: Vec<Option<RelayStatus>> = vec![None; options.relays];

    while ended < options.requests {
        if connected {
            while published < options.requests {
                let Some(relay) = idle.pop() else { break };
                let action = match next_action % 5 {
                    0 | 2 => Action::On,
                    1 | 3 => Action::Off,
                    _ => Action::Query,
                };
                next_action += 1;
                handle.request(relay, action);
                sent_at[relay] = Some(Instant::now());
                published += 1;
            }
        }
        let deadline = sent_at.iter().flatten().min().map(|t| *t + slack);
        let event = tokio::select! {
            event = events.recv() => event,
            restarted = restarted_rx.recv() => {
                if let Some(at) = restarted { waiting_reconnect = Some(at); }
                continue;
            }
            _ = sleep_until(deadline) => {
                // Something is pending past its timeout: count it and move on.
                let now = Instant::now();
                for (relay, at) in sent_at.iter_mut().enumerate() {
                    if at.is_some_and(|t| now >= t + slack) {
                        *at = None;
                        report.overdue += 1;
                        ended += 1;
                        tracing::error!("soak: relay soak-{relay} still pending past its timeout");
                    }
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        match event {
            Event::Connection(state) => {
                connected = state.is_ready();
                if connected && let Some(at) = waiting_reconnect.take() {
                    report.reconnects.push(at.elapsed());
                }
                if let ConnectionState::Failed { reason } = state {
                    return Err(std::io::Error::other(format!("engine failed: {reason}")));
                }
            }
            Event::Finished { relay, entry } => {
                if entry.outcome == "not sent" {
                    // Refused before publishing (broker down): try again later.
                    report.not_sent += 1;
                    published -= 1;
                    sent_at[relay] = None;
                    idle.push(relay);
                    continue;
                }
                if let Some(at) = sent_at[relay].take() {
                    if at.elapsed() > slack {
                        report.overdue += 1;
                    }
                    ended += 1;
                    let _ = done_tx.send(ended);
                    if ended.is_multiple_of(1000) {
                        progress(ended);
                    }
                }
                *report.outcomes.entry(entry.outcome.clone()).or_default() += 1;
                if let Some(correlation) = &entry.correlation {
                    last_request[relay] = Some((correlation.clone(), entry.state.is_some()));
                }
                if entry.state.is_some() {
                    confirmations.push((relay, entry));
                }
                idle.push(relay);
            }
            Event::Late { relay, entry } => {
                note_late(
                    &mut report,
                    &mut last_request,
                    &mut confirmations,
                    relay,
                    entry,
                );
            }
            Event::Relay { relay, status } => final_status[relay] = Some(status),
            _ => {}
        }
    }
    report.requests = published;
    report.elapsed = started.elapsed();
    outage_task.abort();
    // Late answers still in flight arrive within the jitter.
    let linger = Instant::now() + options.timeout * 2;
    while let Ok(Some(event)) = tokio::time::timeout_at(linger.into(), events.recv()).await {
        match event {
            Event::Late { relay, entry } => {
                note_late(
                    &mut report,
                    &mut last_request,
                    &mut confirmations,
                    relay,
                    entry,
                );
            }
            Event::Relay { relay, status } => final_status[relay] = Some(status),
            _ => {}
        }
    }
    handle.shutdown();
    while events.recv().await.is_some() {}
    devices.stop();

    // Once quiet, the truth: a relay whose last request was answered must
    // show what the device really ended in (answers overtake each other;
    // the newest request's answer must win).
    for (relay, last) in last_request.iter().enumerate() {
        if !matches!(last, Some((_, true))) {
            continue;
        }
        report.final_checked += 1;
        let id = &config.relays[relay].id;
        let shown = final_status[relay]
            .as_ref()
            .and_then(|s| s.last_acknowledged)
            .map(|a| a.state);
        let device = devices.state(id);
        if shown != device {
            report.final_mismatches += 1;
            if report.final_examples.len() < 5 {
                report
                    .final_examples
                    .push(format!("{id}: shown {shown:?}, device is {device:?}"));
            }
        }
    }

    // What the devices really did, by correlation data.
    let mut did: HashMap<Vec<u8>, SimRecord> = HashMap::new();
    while let Ok(record) = records.try_recv() {
        let what = match &record.reply {
            SimReply::Answer { copies: 2, .. } => "answered twice",
            SimReply::Answer { .. } => "answered",
            SimReply::Dropped => "dropped",
            SimReply::Garbage => "answered garbage",
            SimReply::WrongCorrelation => "wrong correlation",
            SimReply::NoResponseTopic => "no response topic",
            SimReply::Expired { .. } => "expired, not actuated",
        };
        *report.device.entry(what).or_default() += 1;
        if let Some(c) = &record.correlation {
            did.insert(c.to_vec(), record);
        }
    }
    for (relay, entry) in confirmations {
        let relay_config = &config.relays[relay];
        let state = entry.state.unwrap_or(RelayState::Off);
        let expected = match state {
            RelayState::On => &relay_config.payload_on,
            RelayState::Off => &relay_config.payload_off,
        };
        let bytes = entry.correlation.as_deref().and_then(from_hex);
        let genuine = bytes.and_then(|b| did.get(&b)).is_some_and(|record| {
            record.relay_id == relay_config.id
                && record.state_after == state
                && matches!(&record.reply, SimReply::Answer { payload, .. } if payload == expected)
        });
        if !genuine {
            report.false_confirmations += 1;
            if report.false_examples.len() < 5 {
                report.false_examples.push(format!("{entry:?}"));
            }
        }
    }
    Ok(report)
}

/// A late answer: counted, checked like any confirmation, and, when it
/// answers the relay's last request, that request counts as answered.
fn note_late(
    report: &mut SoakReport,
    last_request: &mut [Option<(String, bool)>],
    confirmations: &mut Vec<(usize, AuditEntry)>,
    relay: usize,
    entry: AuditEntry,
) {
    *report.late.entry(entry.outcome.clone()).or_default() += 1;
    if entry.state.is_some() {
        if let Some((correlation, answered)) = &mut last_request[relay]
            && entry.correlation.as_ref() == Some(correlation)
        {
            *answered = true;
        }
        confirmations.push((relay, entry));
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}
