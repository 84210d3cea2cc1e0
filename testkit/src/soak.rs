//! The chaos soak: many requests through the real engine, a real Mosquitto
//! and simulated devices of every kind that misbehave (drops, duplicates,
//! garbage, wrong correlation, answers later than the timeout), optionally
//! with the broker killed and restarted. Every state the engine ends a
//! request with is checked against what the simulated device really did,
//! by its evidence (`soak/devices.rs`): a *correlated* one against the
//! device's record of that very request, a *reported* one against the
//! device's log of published reports (`relay-soak`, and the short
//! versions in `relay-panel`'s `tests/soak.rs`).
//!
//! Layout: this file runs the soak; `soak/kinds.rs` the kinds of device
//! relays cycle through; `soak/devices.rs` the simulators and the checks
//! against what they did; `soak/truth.rs` the order check; `soak/report.rs`
//! what is counted and printed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::mosquitto::LocalMosquitto;

mod devices;
mod kinds;
mod report;
mod truth;

use devices::{DeviceLog, Fleet};
pub use kinds::SoakKind;
use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::{self, ConnectionState, EngineOptions, Event, sleep_until};
use relay_panel::outcome::{Evidence, Outcome};
use relay_panel::protocol::{Action, RelayState};
use relay_panel::sim::Faults;
use relay_panel::store::AuditEntry;
pub use report::{KindReport, SoakReport};
use truth::Truth;

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
    /// Broker kills and restarts, one every `min_uptime` (the run lasts
    /// until all have happened, even past `requests`).
    pub outages: usize,
    /// How long the broker stays down each time.
    pub outage_length: Duration,
    /// Shortest time the broker stays up between outages (a connection
    /// that lasted this long resets the engine's reconnect backoff).
    pub min_uptime: Duration,
    /// The kinds of device relays cycle through (relay `i` is of kind
    /// `kinds[i % kinds.len()]`); set with [`SoakOptions::with_kinds`].
    pub kinds: Vec<SoakKind>,
}

impl SoakOptions {
    /// The documented soak: relays of every kind, fault rates that
    /// exercise every path, answers up to 1.5x the timeout late, the first
    /// relay of each kind always failing.
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
                fail: Default::default(),
                seed,
                tasmota_mqtt5: false,
            },
            outages,
            outage_length: Duration::from_millis(300),
            min_uptime: Duration::from_millis(1500),
            kinds: Vec::new(),
        }
        .with_kinds(&SoakKind::ALL)
    }

    /// Relays of these kinds only (all of them when empty), in this order;
    /// the first relay of each always fails (`faults.fail`).
    pub fn with_kinds(mut self, kinds: &[SoakKind]) -> Self {
        self.kinds = if kinds.is_empty() {
            SoakKind::ALL.to_vec()
        } else {
            kinds.to_vec()
        };
        self.faults.fail = (0..self.kinds.len().min(self.relays))
            .map(|i| format!("soak-{i}"))
            .collect();
        self
    }

    /// The kind of relay `i`.
    pub fn kind_of(&self, i: usize) -> SoakKind {
        self.kinds[i % self.kinds.len()]
    }
}

fn relays(options: &SoakOptions) -> Vec<RelayConfig> {
    let run: u32 = rand::random();
    (0..options.relays)
        .map(|i| options.kind_of(i).relay(&format!("soak-{i}"), run, i))
        .collect()
}

/// A request that ended with a state, or with a device error over a
/// report (or an answer after it had ended), kept to be checked against
/// what the devices did.
struct End {
    /// The relay (index into the configuration).
    relay: usize,
    /// How it ended.
    entry: AuditEntry,
    /// When the soak asked for the request (before the engine sent it)
    /// and when it heard how it ended (after the engine decided); `None`
    /// for an answer after its request had ended.
    window: Option<(Instant, Instant)>,
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
    config.relays = relays(&options);
    let kinds: Vec<SoakKind> = (0..options.relays).map(|i| options.kind_of(i)).collect();

    let mut devices = Fleet::start(&config, &kinds, &options.faults).await?;
    let (handle, mut events) = engine::spawn(EngineOptions::new(config.clone()))
        .map_err(|e| std::io::Error::other(e.to_string()))?;

    // Outages: kill and restart the broker every `min_uptime`, while the
    // requests flow (the run goes on until every outage has happened).
    // The task says when it killed the broker; it notes when the restart
    // began (before the engine can possibly reconnect), for the main loop
    // to measure each reconnect from.
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let resumed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let outage_task = {
        let broker = broker.clone();
        let (outages, length) = (options.outages, options.outage_length);
        let min_uptime = options.min_uptime;
        let resumed_at = resumed_at.clone();
        tokio::spawn(async move {
            for _ in 0..outages {
                tokio::time::sleep(min_uptime).await;
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut b) = b.lock() {
                        b.stop();
                    }
                })
                .await;
                let _ = stopped_tx.send(());
                tokio::time::sleep(length).await;
                if let Ok(mut at) = resumed_at.lock() {
                    *at = Some(Instant::now());
                }
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
            }
        })
    };

    let started = Instant::now();
    let mut report = SoakReport {
        outages: options.outages,
        ..SoakReport::default()
    };
    for kind in &kinds {
        report.kinds.entry(*kind).or_default().relays += 1;
    }
    let mut ends: Vec<End> = Vec::new();
    // Per relay: when its request in flight was asked for (cleared when it
    // ends or is counted overdue), and when its last one was.
    let mut sent_at: Vec<Option<Instant>> = vec![None; options.relays];
    let mut last_sent: Vec<Instant> = vec![started; options.relays];
    let mut idle: Vec<usize> = (0..options.relays).collect();
    let mut published = 0usize;
    let mut ended = 0usize;
    let mut connected = false;
    // A broker kill was seen and the engine has not reconnected since.
    let mut waiting_reconnect = false;
    let slack = options.timeout + Duration::from_secs(1);
    let mut next_action = 0usize;
    let mut restarts = 0usize;
    // Requests published to ready devices since the engine last
    // reconnected: after the last outage a round for every relay, so the
    // final check sees answered requests rather than ones cut off.
    let mut since_reconnect = 0usize;
    // Per relay: the correlation of its last request, whether that request
    // got an answer with a state, and the engine's latest status.
    let mut truth = Truth::new(options.relays);

    loop {
        let more = wants_more(&options, published, restarts, since_reconnect);
        if !more && ended >= published && !waiting_reconnect {
            break;
        }
        if connected && more {
            while let Some(relay) = idle.pop() {
                let action = match next_action % 5 {
                    0 | 2 => Action::On,
                    1 | 3 => Action::Off,
                    _ => Action::Query,
                };
                next_action += 1;
                // Before the engine can possibly send it.
                let at = Instant::now();
                handle.request(relay, action);
                sent_at[relay] = Some(at);
                last_sent[relay] = at;
                published += 1;
                if devices.is_ready() {
                    since_reconnect += 1;
                }
                if !wants_more(&options, published, restarts, since_reconnect) {
                    break;
                }
            }
        }
        let deadline = sent_at.iter().flatten().min().map(|t| *t + slack);
        let event = tokio::select! {
            event = events.recv() => event,
            stopped = stopped_rx.recv() => {
                if stopped.is_some() {
                    waiting_reconnect = true;
                    restarts += 1;
                }
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
                if connected && std::mem::take(&mut waiting_reconnect) {
                    since_reconnect = 0;
                    let since = resumed_at.lock().ok().and_then(|at| *at);
                    report
                        .reconnects
                        .push(since.map(|at| at.elapsed()).unwrap_or_default());
                }
                if let ConnectionState::Failed { reason } = state {
                    return Err(std::io::Error::other(format!("engine failed: {reason}")));
                }
            }
            Event::Finished { relay, entry } => {
                let ended_at = Instant::now();
                if entry.outcome == Outcome::NotSent {
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
                    if ended.is_multiple_of(1000) {
                        progress(ended);
                    }
                }
                *report.outcomes.entry(entry.outcome).or_default() += 1;
                *report
                    .kinds
                    .entry(kinds[relay])
                    .or_default()
                    .outcomes
                    .entry(entry.outcome)
                    .or_default() += 1;
                truth.ended(relay, &entry, &mut report);
                if entry.state.is_some() || entry.evidence == Some(Evidence::Reported) {
                    ends.push(End {
                        relay,
                        entry,
                        window: Some((last_sent[relay], ended_at)),
                    });
                }
                idle.push(relay);
            }
            Event::Late { relay, entry } => note_late(
                &mut report,
                &mut truth,
                &mut ends,
                (relay, kinds[relay]),
                entry,
            ),
            Event::Relay { relay, status } => truth.status(relay, &status),
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
            Event::Late { relay, entry } => note_late(
                &mut report,
                &mut truth,
                &mut ends,
                (relay, kinds[relay]),
                entry,
            ),
            Event::Relay { relay, status } => truth.status(relay, &status),
            _ => {}
        }
    }
    handle.shutdown();
    while events.recv().await.is_some() {}
    // The devices' state, then what they did (nothing more happens).
    let device_states: Vec<_> = (0..options.relays)
        .map(|relay| devices.state(relay, &config.relays[relay].id))
        .collect();
    let log = devices.stop();
    report.device = log.did.clone();
    (
        report.reports_published,
        report.reports_garbage,
        report.reports_offline,
    ) = log.report_counts();

    // A message on its way can take as long as a request may end late
    // (a loaded machine stalls the engine's thread or the broker).
    let rested_on = check_ends(&mut report, &log, &config, &kinds, &ends, slack);

    // Once quiet, the truth: a relay whose last request was answered must
    // show what the device really ended in (answers overtake each other;
    // the newest request's answer must win). A report the device
    // published after the one the last acknowledgement rests on came with
    // nothing in flight, which the engine does not show (by design): such
    // a relay is left out, and counted.
    for relay in 0..options.relays {
        let Some(ack) = truth.last_request_answer(relay) else {
            continue;
        };
        let id = &config.relays[relay].id;
        let per_kind = report.kinds.entry(kinds[relay]).or_default();
        if ack.evidence == Some(Evidence::Reported) {
            // The newest report it can rest on: if the device published
            // nothing after that, its state is what that report said.
            let rests_on = ack.correlation.as_ref().and_then(|c| rested_on.get(c));
            if rests_on.is_some_and(|&index| log.reports_after(id, index) > 0) {
                report.final_skipped += 1;
                per_kind.final_skipped += 1;
                continue;
            }
        }
        report.final_checked += 1;
        per_kind.final_checked += 1;
        let shown = truth.shown[relay];
        let device = device_states[relay];
        if shown != device {
            report.final_mismatches += 1;
            per_kind.final_mismatches += 1;
            if report.final_examples.len() < 5 {
                report.final_examples.push(format!(
                    "{id} ({}): shown {shown:?} ({:?}), device is {device:?}",
                    kinds[relay], ack.evidence
                ));
            }
        }
    }
    Ok(report)
}

/// Whether to publish more requests: at least `requests`, traffic through
/// every outage, and after the last one a round for every relay (requests
/// to ready devices since the engine reconnected), so that the final check
/// sees requests answered rather than cut off.
fn wants_more(
    options: &SoakOptions,
    published: usize,
    restarts: usize,
    since_reconnect: usize,
) -> bool {
    published < options.requests
        || restarts < options.outages
        || (options.outages > 0 && since_reconnect < options.relays)
}

/// Whether each state a request ended with is one the device gave, by
/// its evidence (see `soak/devices.rs`); counts those that are not.
/// Returns, by correlation, the newest report each reported end can rest
/// on (an index into its relay's reports). `in_transit`: how long before a
/// request was sent a report that ends it may have been published.
fn check_ends(
    report: &mut SoakReport,
    log: &DeviceLog,
    config: &Config,
    kinds: &[SoakKind],
    ends: &[End],
    in_transit: Duration,
) -> HashMap<String, usize> {
    // Per relay: the first report the previous reported end can rest on
    // (the earliest choice leaves the most room for the next one).
    let mut previous: Vec<Option<usize>> = vec![None; config.relays.len()];
    let mut rested_on = HashMap::new();
    for end in ends {
        let relay = &config.relays[end.relay];
        let entry = &end.entry;
        let verdict = match (entry.evidence, entry.state) {
            (Some(Evidence::Correlated), Some(state)) => log.check_correlated(relay, state, entry),
            (Some(Evidence::Reported), state) => {
                // A device error over a report: the device reported the
                // other state than the one asked for.
                let told = state.or(match entry.action {
                    Action::On => Some(RelayState::Off),
                    Action::Off => Some(RelayState::On),
                    Action::Query => None,
                });
                match (end.window, told) {
                    (Some((sent, ended)), Some(told)) => {
                        let not_before = sent.checked_sub(in_transit).unwrap_or(sent);
                        let found = log.reports_for(
                            &relay.id,
                            told,
                            previous[end.relay],
                            not_before,
                            ended,
                        );
                        match found {
                            Some((first, last)) => {
                                previous[end.relay] = Some(first);
                                if let Some(c) = &entry.correlation {
                                    rested_on.insert(c.clone(), last);
                                }
                                Ok(())
                            }
                            None => Err(format!(
                                "the device published no report of {told} between the report the previous one rested on, {} ms before the send, and the end",
                                in_transit.as_millis()
                            )),
                        }
                    }
                    (None, _) => Err("a report after its request had ended".to_owned()),
                    (_, None) => Err("a device error over a report to a query".to_owned()),
                }
            }
            (None, Some(_)) => Err("a state without evidence".to_owned()),
            (_, None) => Ok(()), // a device error tied to its request: no state
        };
        let Err(why) = verdict else { continue };
        let kind = kinds[end.relay];
        report.false_confirmations += 1;
        report.kinds.entry(kind).or_default().false_confirmations += 1;
        if report.false_examples.len() < 5 {
            let around = match end.window {
                Some((sent, ended)) => format!(
                    "; ended at {:+.3} ms, {}",
                    ended.duration_since(sent).as_secs_f64() * 1000.0,
                    log.reports_around(&relay.id, sent)
                ),
                None => String::new(),
            };
            report
                .false_examples
                .push(format!("{kind}: {why}: {entry:?}{around}"));
        }
    }
    rested_on
}

/// A late answer to a request of `relay` (of `kind`): counted, checked for
/// order, and kept to be checked against the devices' log.
fn note_late(
    report: &mut SoakReport,
    truth: &mut Truth,
    ends: &mut Vec<End>,
    (relay, kind): (usize, SoakKind),
    entry: AuditEntry,
) {
    *report.late.entry(entry.outcome).or_default() += 1;
    *report
        .kinds
        .entry(kind)
        .or_default()
        .late
        .entry(entry.outcome)
        .or_default() += 1;
    truth.late(relay, &entry, report);
    if entry.state.is_some() {
        ends.push(End {
            relay,
            entry,
            window: None,
        });
    }
}
