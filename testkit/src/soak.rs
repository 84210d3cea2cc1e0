//! The chaos soak: many requests through the real engine, a real Mosquitto
//! and simulated devices that misbehave (drops, duplicates, garbage, wrong
//! correlation, answers later than the timeout), optionally with the broker
//! killed and restarted. Every confirmation the engine reports is checked
//! against what the simulated device really did (`relay-soak`, and
//! the short versions in `relay-panel`'s `tests/soak.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::mosquitto::LocalMosquitto;

mod report;
mod truth;

use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::{self, ConnectionState, EngineOptions, Event, sleep_until};
use relay_panel::outcome::Outcome;
use relay_panel::protocol::{Action, RelayState};
use relay_panel::sim::{self, Faults, SimOptions, SimRecord, SimReply};
use relay_panel::store::AuditEntry;
pub use report::SoakReport;
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
                tasmota_mqtt5: false,
            },
            outages,
            outage_length: Duration::from_millis(300),
            min_uptime: Duration::from_millis(1500),
        }
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
    let mut confirmations: Vec<(usize, AuditEntry)> = Vec::new();
    let mut sent_at: Vec<Option<Instant>> = vec![None; options.relays];
    let mut idle: Vec<usize> = (0..options.relays).collect();
    let mut published = 0usize;
    let mut ended = 0usize;
    let mut connected = false;
    // A broker kill was seen and the engine has not reconnected since.
    let mut waiting_reconnect = false;
    let slack = options.timeout + Duration::from_secs(1);
    let mut next_action = 0usize;
    let mut restarts = 0usize;
    // Per relay: the correlation of its last request, whether that request
    // got an answer with a state, and the engine's latest status.
    let mut truth = Truth::new(options.relays);

    loop {
        // At least `requests`, and traffic through every outage.
        let more = published < options.requests || restarts < options.outages;
        if !more && ended >= published && !waiting_reconnect {
            break;
        }
        if connected && more {
            while published < options.requests || restarts < options.outages {
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
                truth.ended(relay, &entry, &mut report);
                if entry.state.is_some() {
                    confirmations.push((relay, entry));
                }
                idle.push(relay);
            }
            Event::Late { relay, entry } => {
                note_late(&mut report, &mut truth, &mut confirmations, relay, entry)
            }
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
            Event::Late { relay, entry } => {
                note_late(&mut report, &mut truth, &mut confirmations, relay, entry)
            }
            Event::Relay { relay, status } => truth.status(relay, &status),
            _ => {}
        }
    }
    handle.shutdown();
    while events.recv().await.is_some() {}
    devices.stop();

    // Once quiet, the truth: a relay whose last request was answered must
    // show what the device really ended in (answers overtake each other;
    // the newest request's answer must win).
    for relay in 0..options.relays {
        if !truth.last_request_answered(relay) {
            continue;
        }
        report.final_checked += 1;
        let id = &config.relays[relay].id;
        let shown = truth.shown[relay];
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
            SimReply::Ignored { .. } => "ignored",
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

/// A late answer: counted, checked for order, and kept to be checked
/// against the devices' log.
fn note_late(
    report: &mut SoakReport,
    truth: &mut Truth,
    confirmations: &mut Vec<(usize, AuditEntry)>,
    relay: usize,
    entry: AuditEntry,
) {
    *report.late.entry(entry.outcome).or_default() += 1;
    truth.late(relay, &entry, report);
    if entry.state.is_some() {
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
