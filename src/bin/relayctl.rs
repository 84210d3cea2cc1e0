//! `relayctl`: switch, query and inspect relays from scripts.
//!
//! `set` / `get` are one-shot: connect, send one request, print its
//! outcome, exit with a code that says whether the device confirmed.
//! `watch` keeps one connection open, reads commands on stdin and prints
//! one line per event, for scripts that switch many times.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use relay_panel::config::{Config, ConfigError};
use relay_panel::engine::{
    self, ANSWER_SLACK, ConnectionState, EngineHandle, EngineOptions, Event, Events,
};
use relay_panel::outcome::Outcome;
use relay_panel::paths;
use relay_panel::protocol::{Action, RelayState};
use relay_panel::relay::{Phase, RelayStatus, format_age, format_rtt, format_time};
use relay_panel::store::{AuditEntry, Store};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Exit code: the device confirmed.
const CONFIRMED: u8 = 0;
/// Exit code: usage, configuration or connection problem.
const ERROR: u8 = 1;
/// Exit code: no response within the timeout.
const NO_RESPONSE: u8 = 2;
/// Exit code: the device answered with an error, or reports the other
/// state than the one asked for.
const DEVICE_ERROR: u8 = 3;
/// Longest wait for the broker (connected and subscribed) before giving
/// up: one whole connection attempt (its CONNACK timeout) and the engine's
/// diagnosis of it, so the reason printed says what was seen.
const CONNECT_WAIT: Duration =
    Duration::from_millis(relay_panel::mqtt::CONNECT_TIMEOUT.as_millis() as u64 + 2500);
/// Longest wait for the engine to disconnect and flush the store at exit.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// The same after the connection failed for certain: nothing is in flight
/// and nothing is left to send, so a slow stop only delays the exit.
const SHUTDOWN_WAIT_FAILED: Duration = Duration::from_secs(1);

/// Switch and query relays over MQTT 5; every state printed was confirmed by
/// the device through a correlated response.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Exit codes: 0 confirmed, 2 no response in time, 3 device error or the device reports the other state, \
1 anything else (usage, configuration, connection).\n\
With --json, set and get print exactly one JSON object on stdout, whatever the outcome.\n\n\
Examples:\n  relayctl set pump-1 on\n  relayctl --json get pump-1\n  relayctl status\n  relayctl log -n 50\n  \
relayctl watch --json    # then type: set pump-1 on | get pump-1 | status"
)]
struct Args {
    /// Configuration file (default: $RELAY_PANEL_CONFIG, else config.toml in the platform config dir).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the store (default: $RELAY_PANEL_DATA_DIR, else the platform data dir).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Time the device has to answer (overrides the configuration).
    #[arg(long, global = true, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Switch a relay on or off and wait for the device to confirm.
    Set {
        /// Relay id from the configuration.
        id: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Ask a relay its state (needs payload_query in its configuration).
    Get {
        /// Relay id from the configuration.
        id: String,
    },
    /// Show every relay's last acknowledged state and its age.
    Status,
    /// Show recent requests and their outcomes from the audit log.
    Log {
        /// How many entries.
        #[arg(short = 'n', long, default_value_t = 20)]
        count: usize,
    },
    /// Stay connected, read commands on stdin (`set ID on|off`, `get ID`,
    /// `status`, one per line) and print one line per event (one JSON
    /// object per line with --json). Ends at end of input or Ctrl+C.
    Watch,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Usage errors exit 1 like every other error: clap's own code, 2,
    // would read as "no response" to a script.
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { ERROR } else { CONFIRMED });
        }
    };
    let code = match &args.command {
        Cmd::Set { id, state } => {
            let action = Action::parse(state).unwrap_or(Action::Off);
            one_shot(&args, id, action)
        }
        Cmd::Get { id } => one_shot(&args, id, Action::Query),
        Cmd::Watch => watch::run(&args),
        _ => match run(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("relayctl: {e:#}");
                ERROR
            }
        },
    };
    ExitCode::from(code)
}

/// `status` and `log`.
fn run(args: &Args) -> anyhow::Result<u8> {
    let config = load_config(args)?;
    let data_dir = paths::data_dir(args.data_dir.clone());
    match &args.command {
        Cmd::Status => status(args, &config, &data_dir),
        Cmd::Log { count } => log(args, &data_dir, *count),
        _ => unreachable!("set, get and watch are handled elsewhere"),
    }
}

/// Loads the configuration named by `--config` or the environment, with a
/// hint when there is none, and applies `--timeout-ms` to every relay.
fn load_config(args: &Args) -> anyhow::Result<Config> {
    let path = paths::config_path(args.config.clone());
    let mut config = match Config::load(&path) {
        Ok(config) => config,
        Err(ConfigError::Read { path, source })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            anyhow::bail!(
                "no configuration at {} — create it (see the README's configuration section) or pass --config FILE",
                path.display()
            )
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(warning) = config.permission_warning(&path) {
        eprintln!("relayctl: warning: {warning}");
    }
    if let Some(ms) = args.timeout_ms {
        anyhow::ensure!(ms > 0, "--timeout-ms must be at least 1");
        for relay in &mut config.relays {
            relay.timeout_ms = Some(ms);
        }
    }
    Ok(config)
}

fn find_relay(config: &Config, id: &str) -> Result<usize, String> {
    config
        .relays
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| {
            let known: Vec<&str> = config.relays.iter().map(|r| r.id.as_str()).collect();
            format!(
                "no relay {id:?} in the configuration; known ids: {}",
                known.join(", ")
            )
        })
}

/// Starts the engine the way every relayctl command does: the store in
/// `data_dir`, its own random client id, no history.
fn spawn_engine(config: &Config, args: &Args) -> anyhow::Result<(EngineHandle, Events)> {
    Ok(engine::spawn(EngineOptions {
        config: std::sync::Arc::new(config.clone()),
        data_dir: Some(paths::data_dir(args.data_dir.clone())),
        client_id_prefix: "relayctl".to_owned(),
        client_id_suffix: true,
        wake: std::sync::Arc::new(|| {}),
        history: 0,
    })?)
}

/// The exit code `set` / `get` gives for a request that ended this way.
fn exit_code(entry: &AuditEntry) -> u8 {
    match entry.outcome {
        Outcome::Confirmed if other_state(entry).is_some() => DEVICE_ERROR,
        Outcome::Confirmed => CONFIRMED,
        Outcome::NoResponse => NO_RESPONSE,
        Outcome::DeviceError => DEVICE_ERROR,
        _ => ERROR,
    }
}

/// The state the device reports when it is not the one a switch asked
/// for ("asked on, device reports off"); `None` for queries and matches.
fn other_state(entry: &AuditEntry) -> Option<RelayState> {
    match (entry.action, entry.state) {
        (Action::On | Action::Off, Some(state)) if Action::switch_to(state) != entry.action => {
            Some(state)
        }
        _ => None,
    }
}

/// The fields every printed request outcome has (`set --json`, and
/// `watch --json`'s `outcome` and `late` events).
fn entry_json(entry: &AuditEntry) -> serde_json::Map<String, Value> {
    let mut object = serde_json::Map::new();
    object.insert("relay".into(), json!(entry.relay_id));
    object.insert("action".into(), json!(entry.action));
    object.insert("outcome".into(), json!(entry.outcome));
    object.insert("state".into(), json!(entry.state));
    object.insert("rtt_ms".into(), json!(entry.rtt.map(millis)));
    object.insert("detail".into(), json!(entry.detail));
    object
}

/// Milliseconds to the microsecond, as JSON prints them (`1.234`, not
/// `1.2340000000000002`).
fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

/// Prints one line on stdout and flushes it; a closed stdout is not worth
/// a panic (the reader has gone).
fn print_line(line: impl std::fmt::Display) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// `set` and `get`: one request, its outcome printed (exactly one JSON
/// object with `--json`, whatever happens), its exit code returned.
fn one_shot(args: &Args, id: &str, action: Action) -> u8 {
    match request(args, id, action) {
        Ok((config, entry)) => {
            let code = exit_code(&entry);
            if args.json {
                let mut object = entry_json(&entry);
                object.insert("exit_code".into(), json!(code));
                let _ = print_line(Value::Object(object));
            } else {
                print_outcome(&config, &entry);
            }
            code
        }
        Err(e) => {
            if args.json {
                let _ = print_line(json!({
                    "relay": id,
                    "action": action,
                    "outcome": "error",
                    "state": null,
                    "rtt_ms": null,
                    "detail": format!("{e:#}"),
                    "exit_code": ERROR,
                }));
            } else {
                eprintln!("relayctl: {e:#}");
            }
            ERROR
        }
    }
}

/// Connects (waiting up to [`CONNECT_WAIT`] through reconnects), sends
/// one request and returns how it ended. Every wait is bounded.
fn request(args: &Args, id: &str, action: Action) -> anyhow::Result<(Config, AuditEntry)> {
    let config = load_config(args)?;
    let index = find_relay(&config, id).map_err(anyhow::Error::msg)?;
    if action == Action::Query && config.relays[index].payload_query.is_none() {
        anyhow::bail!(
            "relay {id} has no payload_query in its configuration, so it cannot be asked; \
             `relayctl status` shows its last acknowledged state"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ended = runtime.block_on(async {
        let (handle, mut events) = spawn_engine(&config, args)?;
        let warn = |message: String| eprintln!("relayctl: warning: {message}");
        let ended = engine::request_once(
            &handle,
            &mut events,
            &config,
            index,
            action,
            CONNECT_WAIT,
            warn,
        )
        .await;
        handle.shutdown();
        let within = match &ended {
            Err(engine::OnceError::Failed(_)) => SHUTDOWN_WAIT_FAILED,
            _ => SHUTDOWN_WAIT,
        };
        // Warnings may still come (a store write that failed at close).
        events
            .drain_for(within, |event| {
                if let Event::Warning(message) = event {
                    eprintln!("relayctl: warning: {message}");
                }
            })
            .await;
        Ok(ended?)
    });
    ended.map(|entry| (config, entry))
}

fn print_outcome(config: &Config, entry: &AuditEntry) {
    let id = &entry.relay_id;
    match (entry.outcome, entry.state, entry.rtt) {
        (Outcome::Confirmed, Some(state), rtt) if other_state(entry).is_some() => {
            let after = rtt
                .map(|r| format!(" (answered in {})", format_rtt(r)))
                .unwrap_or_default();
            eprintln!(
                "{id}: asked {}, device reports {state}{after} — the relay is {state}",
                entry.action
            );
        }
        (Outcome::Confirmed, Some(state), Some(rtt)) => {
            let note = entry
                .detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            println!("{id} {state} (confirmed in {}){note}", format_rtt(rtt));
        }
        (Outcome::NoResponse, _, _) => {
            let timeout = config
                .relay(id)
                .map(|r| config.timeout(r))
                .unwrap_or_default();
            eprintln!(
                "{id}: no response after {:.1} s — the state is unconfirmed (is the device online and subscribed to {}?)",
                timeout.as_secs_f64(),
                config
                    .relay(id)
                    .map(|r| r.request_topic.as_str())
                    .unwrap_or("?")
            );
        }
        (Outcome::DeviceError, _, rtt) => {
            let after = rtt
                .map(|r| format!(" (after {})", format_rtt(r)))
                .unwrap_or_default();
            eprintln!(
                "{id}: device error: {}{after}",
                entry.detail.as_deref().unwrap_or("")
            );
        }
        (outcome, _, _) => {
            eprintln!("{id}: {outcome}: {}", entry.detail.as_deref().unwrap_or(""));
        }
    }
}

fn open_store(data_dir: &std::path::Path) -> anyhow::Result<Store> {
    let (store, warning) = Store::open_in(data_dir)?;
    if let Some(warning) = warning {
        eprintln!("relayctl: warning: {warning}");
    }
    Ok(store)
}

fn status(args: &Args, config: &Config, data_dir: &std::path::Path) -> anyhow::Result<u8> {
    let store = open_store(data_dir)?;
    let acks = store.last_acknowledged()?;
    let now = SystemTime::now();
    let rows: Vec<_> = config
        .relays
        .iter()
        .map(|relay| (relay, acks.iter().find(|a| a.relay_id == relay.id)))
        .collect();
    if args.json {
        let json: Vec<_> = rows
            .iter()
            .map(|(relay, ack)| {
                serde_json::json!({
                    "relay": relay.id,
                    "name": relay.display_name(),
                    "group": relay.group,
                    "state": ack.map(|a| a.state),
                    "acknowledged_at_ms": ack.map(|a| a.at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)),
                    "rtt_ms": ack.map(|a| a.rtt.as_secs_f64() * 1000.0),
                    "late": ack.map(|a| a.late),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(json));
        return Ok(CONFIRMED);
    }
    let id_width = rows
        .iter()
        .map(|(r, _)| r.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let name_width = rows
        .iter()
        .map(|(r, _)| r.display_name().chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<id_width$}  {:<name_width$}  {:<7}  LAST ACKNOWLEDGED",
        "ID", "NAME", "STATE"
    );
    for (relay, ack) in rows {
        let (state, when) = match ack {
            Some(a) => {
                let age = now.duration_since(a.at).unwrap_or_default();
                let late = if a.late { ", late answer" } else { "" };
                (
                    a.state.as_str().to_uppercase(),
                    format!(
                        "{} ({}, rtt {}{late})",
                        format_age(age),
                        format_time(a.at),
                        format_rtt(a.rtt)
                    ),
                )
            }
            None => ("UNKNOWN".to_owned(), "never".to_owned()),
        };
        println!(
            "{:<id_width$}  {:<name_width$}  {state:<7}  {when}",
            relay.id,
            relay.display_name()
        );
    }
    Ok(CONFIRMED)
}

fn log(args: &Args, data_dir: &std::path::Path, count: usize) -> anyhow::Result<u8> {
    let store = open_store(data_dir)?;
    let entries = store.recent_audit(count)?;
    if args.json {
        println!("{}", serde_json::to_string(&entries)?);
        return Ok(CONFIRMED);
    }
    if entries.is_empty() {
        println!("(the audit log is empty)");
    }
    for e in entries {
        let rtt = e.rtt.map(format_rtt).unwrap_or_else(|| "-".into());
        let state = e.state.map(|s| format!(" → {s}")).unwrap_or_default();
        let detail = e.detail.map(|d| format!("  ({d})")).unwrap_or_default();
        println!(
            "{}  {:<16} {:<5} {}{state}  rtt {rtt}  by {}{detail}",
            format_time(e.at),
            e.relay_id,
            e.action.as_str(),
            e.outcome,
            e.operator
        );
    }
    Ok(CONFIRMED)
}

/// `relayctl watch`: one engine, one connection kept through outages,
/// commands from stdin, one line per event on stdout.
mod watch {
    use std::io::BufRead;

    use tokio::sync::mpsc;

    use super::*;

    /// Stdin lines waiting to be handled (the reading thread blocks when
    /// full, so a large piped script is not held in memory at once).
    const INPUT_QUEUE: usize = 64;

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
            let (handle, events) = match spawn_engine(&config, args) {
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
                    _ = &mut signal => break End::Asked,
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
                    event = events.recv() => match event.map(|event| self.on_event(event)) {
                        None => break End::EngineStopped,
                        Some(Err(e)) => break End::Output(e),
                        Some(Ok(Some(reason))) => break End::Failed(reason),
                        Some(Ok(None)) if !input_open && self.in_flight == 0 => break End::Asked,
                        Some(Ok(None)) => {}
                    },
                    _ = sleep_until(finish_by), if finish_by.is_some() => break End::Asked,
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
            match end {
                End::Asked => CONFIRMED,
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
                        print_line(
                            json!({"event": "error", "message": message, "line": line.trim()}),
                        )
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
                    .map(|(relay, status)| {
                        let ack = status.last_acknowledged.as_ref();
                        json!({
                            "relay": relay.id,
                            "state": ack.map(|a| a.state),
                            "acknowledged_at_ms": ack.map(|a| unix_ms(a.at)),
                            "rtt_ms": ack.map(|a| millis(a.rtt)),
                            "late": ack.map(|a| a.late),
                            "restored": ack.map(|a| a.restored),
                            "pending": status.is_pending(),
                        })
                    })
                    .collect();
                return print_line(json!({"event": "status", "relays": relays}));
            }
            let now = SystemTime::now();
            for (relay, status) in rows {
                let known = match &status.last_acknowledged {
                    Some(ack) => {
                        let age = now.duration_since(ack.at).unwrap_or_default();
                        let mut marks = Vec::new();
                        if ack.late {
                            marks.push("late answer");
                        }
                        if ack.restored {
                            marks.push("from an earlier session");
                        }
                        let marks = if marks.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", marks.join(", "))
                        };
                        format!("{}, acknowledged {}{marks}", ack.state, format_age(age))
                    }
                    None => "unknown, never acknowledged".to_owned(),
                };
                let pending = match &status.phase {
                    Phase::Pending { requested, .. } => format!("; pending: asked {requested}"),
                    _ => String::new(),
                };
                print_line(format_args!("status {}: {known}{pending}", relay.id))?;
            }
            Ok(())
        }
    }

    fn unix_ms(at: SystemTime) -> u64 {
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
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
}
