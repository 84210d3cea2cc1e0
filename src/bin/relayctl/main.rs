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
use relay_panel::relay::{RelayStatus, format_rtt};
use relay_panel::store::AuditEntry;
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
/// Exit code: the relay's device is offline (its last will says so);
/// nothing was sent (`set --force` sends anyway).
const OFFLINE: u8 = 4;
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
    name = "relayctl",
    version,
    after_help = "Exit codes: 0 confirmed, 2 no response in time, 3 device error or the device reports the other state, \
4 the device is offline (set only; nothing sent; --force sends anyway), 1 anything else (usage, configuration, connection).\n\
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
    /// Switch a relay on or off and wait for the device to confirm. A
    /// relay whose device is offline (its last will says so) is not sent
    /// anything (exit 4) unless --force.
    Set {
        /// Relay id from the configuration.
        id: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// Send even when the device is offline.
        #[arg(long)]
        force: bool,
    },
    /// Ask a relay its state (needs payload_query in its configuration).
    Get {
        /// Relay id from the configuration.
        id: String,
    },
    /// Show every relay's state (the newest evidence: the last
    /// acknowledged answer, or a change made at the device), how it is
    /// known, and whether the device is online (its retained last will,
    /// read from the broker in a moment; unknown when the broker cannot
    /// be reached).
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
        Cmd::Set { id, state, force } => {
            let action = Action::parse(state).unwrap_or(Action::Off);
            one_shot(&args, id, action, !force)
        }
        Cmd::Get { id } => one_shot(&args, id, Action::Query, false),
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
        Cmd::Status => store_views::status(args, &config),
        Cmd::Log { count } => store_views::log(args, &data_dir, *count),
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

/// Requests a one-shot command (`set`, `get`, `status`) may have awaiting
/// the broker's PUBACK: it sends one, and rumqttc sets aside a slot for
/// each possible one when it starts.
const ONE_SHOT_IN_FLIGHT: u16 = 4;

/// The engine's options for every relayctl command: the store in
/// `data_dir`, its own random client id, no history, at most
/// `max_in_flight` requests awaiting the broker's PUBACK.
fn engine_options(config: &Config, args: &Args, max_in_flight: u16) -> EngineOptions {
    EngineOptions {
        config: std::sync::Arc::new(config.clone()),
        data_dir: Some(paths::data_dir(args.data_dir.clone())),
        client_id_prefix: "relayctl".to_owned(),
        client_id_suffix: true,
        wake: std::sync::Arc::new(|| {}),
        history: 0,
        max_in_flight,
    }
}

/// Starts the engine on a thread of its own (for `watch`, whose reading
/// of standard input must not hold it up).
fn spawn_engine(
    config: &Config,
    args: &Args,
    max_in_flight: u16,
) -> anyhow::Result<(EngineHandle, Events)> {
    Ok(engine::spawn(engine_options(config, args, max_in_flight))?)
}

/// Runs `work` with a one-shot engine on this thread's runtime (no thread
/// of its own to start: a one-shot command's start is most of its time),
/// then shuts the engine down and waits for it, at most `shutdown_wait`
/// after `work` ends, showing the warnings it still gives (a store write
/// that failed at close).
async fn with_engine<T>(
    config: &Config,
    args: &Args,
    work: impl AsyncFnOnce(&EngineHandle, &mut Events) -> (T, Duration),
) -> anyhow::Result<T> {
    let (handle, mut events, engine) =
        engine::start_here(engine_options(config, args, ONE_SHOT_IN_FLIGHT))?;
    let used = async {
        let (result, shutdown_wait) = work(&handle, &mut events).await;
        handle.shutdown();
        events
            .drain_for(shutdown_wait, |event| {
                if let Event::Warning(message) = event {
                    eprintln!("relayctl: warning: {message}");
                }
            })
            .await;
        result
    };
    // The engine ends once shut down; `drain_for` returns when it has.
    let ((), result) = tokio::join!(engine, used);
    Ok(result)
}

/// The exit code `set` / `get` gives for a request that ended this way.
fn exit_code(entry: &AuditEntry) -> u8 {
    match entry.outcome {
        Outcome::Confirmed if other_state(entry).is_some() => DEVICE_ERROR,
        // Reported is a state for the request too, only tied to it by
        // nothing but its timing: `evidence` says which it was.
        Outcome::Confirmed | Outcome::Reported => CONFIRMED,
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
    object.insert("evidence".into(), json!(entry.evidence));
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
/// `refuse_offline`: a device known to be offline gets nothing (exit
/// [`OFFLINE`]).
fn one_shot(args: &Args, id: &str, action: Action, refuse_offline: bool) -> u8 {
    match request(args, id, action, refuse_offline) {
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
            let offline = matches!(
                e.downcast_ref::<engine::OnceError>(),
                Some(engine::OnceError::Offline { .. })
            );
            let (outcome, code) = if offline {
                ("offline", OFFLINE)
            } else {
                ("error", ERROR)
            };
            if args.json {
                let _ = print_line(json!({
                    "relay": id,
                    "action": action,
                    "outcome": outcome,
                    "state": null,
                    "evidence": null,
                    "rtt_ms": null,
                    "detail": format!("{e:#}"),
                    "exit_code": code,
                }));
            } else if offline {
                eprintln!("{id}: {e:#} (--force sends anyway)");
            } else {
                eprintln!("relayctl: {e:#}");
            }
            code
        }
    }
}

/// Connects (waiting up to [`CONNECT_WAIT`] through reconnects), sends
/// one request and returns how it ended. Every wait is bounded.
fn request(
    args: &Args,
    id: &str,
    action: Action,
    refuse_offline: bool,
) -> anyhow::Result<(Config, AuditEntry)> {
    let config = load_config(args)?;
    let index = find_relay(&config, id).map_err(anyhow::Error::msg)?;
    if action == Action::Query && !config.relays[index].can_query() {
        anyhow::bail!(
            "relay {id} has no payload_query in its configuration, so it cannot be asked; \
             `relayctl status` shows its last acknowledged state"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ended = runtime.block_on(with_engine(&config, args, async |handle, events| {
        let warn = |message: String| eprintln!("relayctl: warning: {message}");
        let ended = engine::request_once(
            handle,
            events,
            &config,
            index,
            action,
            CONNECT_WAIT,
            refuse_offline,
            warn,
        )
        .await;
        let within = match &ended {
            Err(engine::OnceError::Failed(_)) => SHUTDOWN_WAIT_FAILED,
            _ => SHUTDOWN_WAIT,
        };
        (ended, within)
    }))?;
    let ended = ended.map_err(anyhow::Error::from);
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
        (Outcome::Reported, Some(state), Some(rtt)) => {
            println!(
                "{id} {state} (reported in {}: the device's state message, not a reply to this request)",
                format_rtt(rtt)
            );
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
                    .map(|r| r.publish_topic())
                    .unwrap_or_else(|| "?".to_owned())
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

mod describe;
mod store_views;
mod watch;
