//! `relayctl watch`: one engine, one connection kept through outages,
//! commands from stdin, one line per event on stdout.
//!
//! (Over 400 lines with its tests: the command reader, the event printer
//! and the stdin grammar are one concern.)

use std::io::{BufRead, BufWriter, Stdout};
use std::sync::{LazyLock, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::*;
use relay_panel::relay::Availability;

/// Stdin lines waiting to be handled (the reading thread blocks when
/// full, so a large piped script is not held in memory at once).
const INPUT_QUEUE: usize = 64;

/// Standard output, buffered: lines go out when nothing else is waiting
/// (see [`Watcher::run`]), one write for a burst of outcomes instead of
/// one per line (20,000 outcomes were 20,000 system calls).
static OUT: LazyLock<Mutex<BufWriter<Stdout>>> =
    LazyLock::new(|| Mutex::new(BufWriter::with_capacity(64 * 1024, std::io::stdout())));

/// [`OUT`], locked (a panic while it was held loses no line).
fn out() -> MutexGuard<'static, BufWriter<Stdout>> {
    OUT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Queues one line for standard output ([`flush_out`] writes it).
fn print_line(line: impl std::fmt::Display) -> std::io::Result<()> {
    writeln!(out(), "{line}")
}

/// Whether lines are queued and not yet written.
fn out_pending() -> bool {
    !out().buffer().is_empty()
}

/// Writes the queued lines.
fn flush_out() -> std::io::Result<()> {
    out().flush()
}

/// What one stdin line asks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Switch or query the relay at this index of the configuration.
    Request {
        /// Index into `config.relays`.
        relay: usize,
        /// What to ask.
        action: Action,
    },
    /// Print every relay's status as the engine last reported it.
    Status,
}

/// Parses one stdin line: `set ID on|off`, `get ID`, `status`;
/// `Ok(None)` for a blank line, `Err` with what is wrong otherwise.
pub(crate) fn parse(line: &str, config: &Config) -> Result<Option<Command>, String> {
    const USAGE: &str = "commands: set ID on|off, get ID, status";
    let words: Vec<&str> = line.split_whitespace().collect();
    let command = match words.as_slice() {
        [] => return Ok(None),
        ["status"] => Command::Status,
        ["set", id, state] => {
            let action = match *state {
                "on" => Action::On,
                "off" => Action::Off,
                other => return Err(format!("set {id}: {other:?} is neither on nor off")),
            };
            Command::Request {
                relay: find_relay(config, id)?,
                action,
            }
        }
        ["get", id] => Command::Request {
            relay: find_relay(config, id)?,
            action: Action::Query,
        },
        ["set"] | ["set", _] => {
            return Err("set needs a relay id and on|off: set ID on|off".into());
        }
        ["get"] => return Err("get needs a relay id: get ID".into()),
        [verb @ ("set" | "get" | "status"), ..] => {
            return Err(format!("too many words for {verb}; {USAGE}"));
        }
        [verb, ..] => return Err(format!("unknown command {verb:?}; {USAGE}")),
    };
    Ok(Some(command))
}

/// Why the watch ended.
enum End {
    /// End of input, or Ctrl+C / SIGTERM: exit 0.
    Asked,
    /// The connection failed for certain (exit 1, reason on stderr).
    Failed(String),
    /// The engine's event stream ended on its own.
    EngineStopped,
    /// Stdout could not be written (the reader went away).
    Output(std::io::Error),
}

/// The watch's state between events.
struct Watcher {
    /// Broker and relays (with `--timeout-ms` applied).
    config: Config,
    /// One JSON object per line instead of text.
    json: bool,
    /// The way in to the engine.
    handle: EngineHandle,
    /// Each relay's status from the engine's latest `Relay` event, for
    /// the `status` command (same order as `config.relays`).
    statuses: Vec<RelayStatus>,
    /// Requests sent whose outcome has not arrived: at end of input the
    /// watch waits for them (bounded by their timeouts).
    in_flight: usize,
}

/// Runs `relayctl watch`; returns the exit code.
pub(crate) fn run(args: &Args) -> u8 {
    let started = load_config(args).and_then(|config| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let lines = read_stdin()?;
        Ok((config, runtime, lines))
    });
    let (config, runtime, lines) = match started {
        Ok(started) => started,
        Err(e) => return cannot_start(args, e),
    };
    runtime.block_on(async {
        let (handle, events) = match spawn_engine(&config, args, relay_panel::mqtt::MAX_IN_FLIGHT) {
            Ok(engine) => engine,
            Err(e) => return cannot_start(args, e),
        };
        let watcher = Watcher {
            statuses: vec![RelayStatus::default(); config.relays.len()],
            config,
            json: args.json,
            handle,
            in_flight: 0,
        };
        watcher.run(events, lines).await
    })
}

fn cannot_start(args: &Args, e: anyhow::Error) -> u8 {
    if args.json {
        let _ = print_line(json!({"event": "error", "message": format!("{e:#}")}));
        let _ = flush_out();
    }
    eprintln!("relayctl: {e:#}");
    ERROR
}

/// Stdin, line by line, from a thread of its own (blocking reads; the
/// process may exit while it waits). The channel closes at end of input.
fn read_stdin() -> anyhow::Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    std::thread::Builder::new()
        .name("relayctl-stdin".into())
        .spawn(move || {
            let mut input = std::io::stdin().lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                match input.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if tx.blocking_send(text).is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start the thread that reads stdin: {e}"))?;
    Ok(rx)
}

/// Resolves at Ctrl+C (SIGINT) or SIGTERM.
async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate() => {}
    }
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending().await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Watcher {
    async fn run(mut self, mut events: Events, mut lines: mpsc::Receiver<String>) -> u8 {
        let mut input_open = true;
        // Set at end of input while requests are in flight.
        let mut finish_by: Option<Instant> = None;
        let signal = stop_signal();
        tokio::pin!(signal);
        let end = loop {
            tokio::select! {
                // In this order: outcomes before new commands (a piped
                // script cannot starve what it asked for), and the lines
                // printed go out once nothing else is ready (at once when
                // idle, in one write under load).
                biased;
                _ = &mut signal => break End::Asked,
                event = events.recv() => match event.map(|event| self.on_event(event)) {
                    None => break End::EngineStopped,
                    Some(Err(e)) => break End::Output(e),
                    Some(Ok(Some(reason))) => break End::Failed(reason),
                    Some(Ok(None)) if !input_open && self.in_flight == 0 => break End::Asked,
                    Some(Ok(None)) => {}
                },
                line = lines.recv(), if input_open => match line {
                    Some(line) => {
                        if let Err(e) = self.on_line(&line) {
                            break End::Output(e);
                        }
                    }
                    None => {
                        input_open = false;
                        if self.in_flight == 0 {
                            break End::Asked;
                        }
                        finish_by = Some(Instant::now() + self.longest_timeout() + ANSWER_SLACK);
                    }
                },
                _ = sleep_until(finish_by), if finish_by.is_some() => break End::Asked,
                _ = std::future::ready(()), if out_pending() => {
                    if let Err(e) = flush_out() {
                        break End::Output(e);
                    }
                }
            }
        };
        // Requests still in flight end as "connection lost" and are printed.
        self.handle.shutdown();
        let within = match end {
            End::Failed(_) => SHUTDOWN_WAIT_FAILED,
            _ => SHUTDOWN_WAIT,
        };
        events
            .drain_for(within, |event| {
                let _ = self.on_event(event);
            })
            .await;
        let flushed = flush_out();
        match end {
            End::Asked => match flushed {
                Ok(()) => CONFIRMED,
                Err(e) => {
                    eprintln!("relayctl: cannot write to stdout ({e})");
                    ERROR
                }
            },
            End::Failed(reason) => {
                eprintln!("relayctl: {reason}");
                ERROR
            }
            End::EngineStopped => {
                eprintln!("relayctl: the engine stopped unexpectedly");
                ERROR
            }
            End::Output(e) => {
                eprintln!("relayctl: cannot write to stdout ({e})");
                ERROR
            }
        }
    }

    fn longest_timeout(&self) -> Duration {
        self.config
            .relays
            .iter()
            .map(|relay| self.config.timeout(relay))
            .max()
            .unwrap_or_default()
    }

    fn on_line(&mut self, line: &str) -> std::io::Result<()> {
        match parse(line, &self.config) {
            Ok(None) => Ok(()),
            Ok(Some(Command::Request { relay, action })) => {
                self.in_flight += 1;
                self.handle.request(relay, action);
                Ok(())
            }
            Ok(Some(Command::Status)) => self.print_status(),
            Err(message) => {
                if self.json {
                    print_line(json!({"event": "error", "message": message, "line": line.trim()}))
                } else {
                    print_line(format_args!("error: {message}"))
                }
            }
        }
    }

    /// Prints what the event says; returns the reason when the
    /// connection failed for certain.
    fn on_event(&mut self, event: Event) -> std::io::Result<Option<String>> {
        match event {
            Event::Connection(state) => {
                self.print_connection(&state)?;
                if let ConnectionState::Failed { reason } = state {
                    return Ok(Some(reason));
                }
            }
            Event::Relay { relay, status } => {
                if let Some(slot) = self.statuses.get_mut(relay) {
                    *slot = status;
                }
            }
            Event::Finished { entry, .. } => {
                self.in_flight = self.in_flight.saturating_sub(1);
                if self.json {
                    let mut object = entry_json(&entry);
                    object.insert("event".into(), json!("outcome"));
                    object.insert("exit_code".into(), json!(exit_code(&entry)));
                    print_line(Value::Object(object))?;
                } else {
                    print_line(outcome_text(&self.config, &entry))?;
                }
            }
            Event::Late { entry, .. } => {
                if self.json {
                    let mut object = entry_json(&entry);
                    object.insert("event".into(), json!("late"));
                    print_line(Value::Object(object))?;
                } else {
                    print_line(outcome_text(&self.config, &entry))?;
                }
            }
            Event::Availability {
                relay,
                availability,
            } => self.print_availability(relay, availability)?,
            Event::Changed { entry, .. } => self.print_change(&entry)?,
            Event::Warning(message) => {
                if self.json {
                    print_line(json!({"event": "warning", "message": message}))?;
                } else {
                    print_line(format_args!("warning: {message}"))?;
                }
            }
            Event::Ignored { count, reason } => {
                if self.json {
                    print_line(json!({"event": "ignored", "count": count, "reason": reason}))?;
                } else {
                    print_line(format_args!(
                        "ignored: {count} response(s) that answered nothing — {reason}"
                    ))?;
                }
            }
            // History (none asked for) and anything newer.
            _ => {}
        }
        Ok(None)
    }

    fn print_connection(&self, state: &ConnectionState) -> std::io::Result<()> {
        if self.json {
            // Subscribing is a step of connecting, and the end of the
            // output says stopped: neither gets a line.
            let line = match state {
                ConnectionState::Connecting => {
                    json!({"event": "connection", "state": "connecting", "reason": null})
                }
                ConnectionState::Connected => {
                    json!({"event": "connection", "state": "connected", "reason": null})
                }
                ConnectionState::Reconnecting { reason, retry_in } => json!({
                    "event": "connection",
                    "state": "reconnecting",
                    "reason": reason,
                    "retry_in_ms": retry_in.as_millis() as u64,
                }),
                ConnectionState::Failed { reason } => {
                    json!({"event": "connection", "state": "failed", "reason": reason})
                }
                _ => return Ok(()),
            };
            return print_line(line);
        }
        match state {
            ConnectionState::Connecting => print_line("connection: connecting"),
            ConnectionState::Subscribing => print_line("connection: subscribing"),
            ConnectionState::Connected => print_line("connection: connected"),
            ConnectionState::Reconnecting { reason, retry_in } => print_line(format_args!(
                "connection: reconnecting in {:.1} s — {reason}",
                retry_in.as_secs_f64()
            )),
            ConnectionState::Failed { reason } => {
                print_line(format_args!("connection: failed — {reason}"))
            }
            ConnectionState::Stopped => print_line("connection: stopped"),
        }
    }

    fn print_status(&self) -> std::io::Result<()> {
        let rows = self.config.relays.iter().zip(&self.statuses);
        if self.json {
            let relays: Vec<Value> = rows
                .map(|(relay, status)| describe::status_json(relay, status))
                .collect();
            return print_line(json!({"event": "status", "relays": relays}));
        }
        let now = SystemTime::now();
        for (relay, status) in rows {
            let availability = match describe::availability_text(status.availability) {
                text if text.is_empty() => text,
                text => format!("; {text}"),
            };
            print_line(format_args!(
                "status {}: {}{availability}",
                relay.id,
                describe::known_text(status, now, true)
            ))?;
        }
        Ok(())
    }

    /// A device went online or offline: `{"event":"availability",
    /// "relay":…,"online":true|false,"since_ms":…,"retained":…}`, or
    /// `pump-1: device offline since …`.
    fn print_availability(&self, relay: usize, availability: Availability) -> std::io::Result<()> {
        let Some(config) = self.config.relays.get(relay) else {
            return Ok(());
        };
        let Some((since, retained)) = availability.since() else {
            return Ok(());
        };
        if self.json {
            return print_line(json!({
                "event": "availability",
                "relay": config.id,
                "online": availability.online(),
                "since_ms": describe::unix_ms(since),
                "retained": retained,
            }));
        }
        print_line(format_args!(
            "{}: device {}",
            config.id,
            describe::availability_text(availability)
        ))
    }

    /// A change at the device: `{"event":"changed","relay":…,"state":…,
    /// "source":…}`, or `pump-1: changed at the device: on (button)`.
    fn print_change(&self, entry: &AuditEntry) -> std::io::Result<()> {
        if self.json {
            return print_line(json!({
                "event": "changed",
                "relay": entry.relay_id,
                "state": entry.state,
                "source": entry.detail,
                "at_ms": describe::unix_ms(entry.at),
            }));
        }
        let state = entry.state.map(|s| s.as_str()).unwrap_or("?");
        let source = entry
            .detail
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        print_line(format_args!(
            "{}: changed at the device: {state}{source}",
            entry.relay_id
        ))
    }
}

/// One readable line for a request's outcome or a late answer:
/// `pump-1 on: confirmed on in 1.2 ms`.
fn outcome_text(config: &Config, entry: &AuditEntry) -> String {
    let id = &entry.relay_id;
    let action = entry.action;
    let note = match other_state(entry) {
        Some(state) => Some(format!("asked {action}, device reports {state}")),
        None => entry.detail.clone(),
    };
    let note = note.map(|n| format!(" — {n}")).unwrap_or_default();
    match (entry.outcome, entry.state, entry.rtt) {
        (Outcome::NoResponse, _, _) => {
            let timeout = config
                .relay(id)
                .map(|r| config.timeout(r))
                .unwrap_or_default();
            format!(
                "{id} {action}: no response after {:.1} s{note}",
                timeout.as_secs_f64()
            )
        }
        (Outcome::Confirmed, Some(state), Some(rtt)) => {
            format!(
                "{id} {action}: confirmed {state} in {}{note}",
                format_rtt(rtt)
            )
        }
        (outcome, state, rtt) => {
            let state = state.map(|s| format!(" {s}")).unwrap_or_default();
            let after = rtt
                .map(|r| format!(" after {}", format_rtt(r)))
                .unwrap_or_default();
            format!("{id} {action}: {outcome}{state}{after}{note}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stdin line is understood or rejected with a reason; bad
    /// lines never become requests.
    #[test]
    fn parses_commands_and_rejects_bad_lines() {
        let mut config = Config::new("mqtt://127.0.0.1:1883");
        for (id, topic) in [("pump-1", "d/1"), ("fan", "d/2")] {
            config
                .relays
                .push(relay_panel::config::RelayConfig::new(id, topic));
        }
        let request = |relay, action| Some(Command::Request { relay, action });
        let cases: Vec<(&str, Result<Option<Command>, &str>)> = vec![
            ("", Ok(None)),
            ("   \n", Ok(None)),
            ("status", Ok(Some(Command::Status))),
            ("set pump-1 on\n", Ok(request(0, Action::On))),
            ("  set   fan off  ", Ok(request(1, Action::Off))),
            ("get fan", Ok(request(1, Action::Query))),
            ("set pump-1 maybe", Err("neither on nor off")),
            ("set pump-1 query", Err("neither on nor off")),
            ("set nope on", Err("no relay \"nope\"")),
            ("get nope", Err("known ids: pump-1, fan")),
            ("set pump-1", Err("set needs a relay id")),
            ("set", Err("set needs a relay id")),
            ("get", Err("get needs a relay id")),
            ("status now", Err("too many words for status")),
            ("get fan on", Err("too many words for get")),
            ("toggle fan", Err("unknown command \"toggle\"")),
            ("SET fan on", Err("unknown command \"SET\"")),
        ];
        for (line, want) in cases {
            match (parse(line, &config), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{line:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{line:?}: {got}"),
                (got, want) => panic!("{line:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
