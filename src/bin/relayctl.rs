//! `relayctl`: switch, query and inspect relays from scripts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, Subcommand};
use relay_panel::config::Config;
use relay_panel::engine::{self, ConnectionState, EngineOptions, Event};
use relay_panel::paths;
use relay_panel::protocol::Action;
use relay_panel::relay::{format_age, format_rtt, format_time};
use relay_panel::store::{AuditEntry, Store};

/// Exit code: the device confirmed.
const CONFIRMED: u8 = 0;
/// Exit code: usage, configuration or connection problem.
const ERROR: u8 = 1;
/// Exit code: no response within the timeout.
const NO_RESPONSE: u8 = 2;
/// Exit code: the device answered with an error.
const DEVICE_ERROR: u8 = 3;
/// Longest wait for the broker before giving up.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Switch and query relays over MQTT 5; every state printed was confirmed by
/// the device through a correlated response.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Exit codes: 0 confirmed, 2 no response in time, 3 device error, 1 anything else (usage, configuration, connection).\n\n\
Examples:\n  relayctl set pump-1 on\n  relayctl --json get pump-1\n  relayctl status\n  relayctl log -n 50"
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
    /// Chaos soak: runs its own Mosquitto and misbehaving simulated devices,
    /// sends many requests and checks every confirmation against what the
    /// devices really did. Needs `mosquitto` installed; ignores --config.
    Soak {
        /// Requests to publish.
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        /// Simulated relays (one request in flight each).
        #[arg(long, default_value_t = 100)]
        relays: usize,
        /// Times the broker is killed and restarted during the run.
        #[arg(long, default_value_t = 0)]
        outages: usize,
        /// Seed for the devices' faults.
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("relayctl: {e:#}");
            ExitCode::from(ERROR)
        }
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    if let Cmd::Soak {
        requests,
        relays,
        outages,
        seed,
    } = args.command
    {
        return soak(requests, relays, outages, seed);
    }
    let path = paths::config_path(args.config.clone());
    let mut config = match Config::load(&path) {
        Ok(config) => {
            if let Some(warning) = config.permission_warning(&path) {
                eprintln!("relayctl: warning: {warning}");
            }
            config
        }
        Err(relay_panel::config::ConfigError::Read { path, source })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            anyhow::bail!(
                "no configuration at {} — create it (see the README's configuration section) or pass --config FILE",
                path.display()
            )
        }
        Err(e) => return Err(e.into()),
    };
    let data_dir = paths::data_dir(args.data_dir.clone());
    match &args.command {
        Cmd::Set { id, state } => {
            let action = Action::parse(state).unwrap_or(Action::Off);
            request(&args, &mut config, data_dir, id, action)
        }
        Cmd::Get { id } => request(&args, &mut config, data_dir, id, Action::Query),
        Cmd::Status => status(&args, &config, &data_dir),
        Cmd::Log { count } => log(&args, &data_dir, *count),
        Cmd::Soak { .. } => unreachable!("handled above"),
    }
}

fn find_relay(config: &Config, id: &str) -> anyhow::Result<usize> {
    config
        .relays
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| {
            let known: Vec<&str> = config.relays.iter().map(|r| r.id.as_str()).collect();
            anyhow::anyhow!(
                "no relay {id:?} in the configuration; known ids: {}",
                known.join(", ")
            )
        })
}

fn request(
    args: &Args,
    config: &mut Config,
    data_dir: PathBuf,
    id: &str,
    action: Action,
) -> anyhow::Result<u8> {
    let index = find_relay(config, id)?;
    if let Some(ms) = args.timeout_ms {
        anyhow::ensure!(ms > 0, "--timeout-ms must be at least 1");
        config.relays[index].timeout_ms = Some(ms);
    }
    if action == Action::Query && config.relays[index].payload_query.is_none() {
        anyhow::bail!(
            "relay {id} has no payload_query in its configuration, so it cannot be asked; \
             `relayctl status` shows its last acknowledged state"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (handle, mut events) = engine::spawn(EngineOptions {
            config: std::sync::Arc::new(config.clone()),
            data_dir: Some(data_dir),
            client_id_prefix: "relayctl".to_owned(),
            client_id_suffix: true,
            wake: std::sync::Arc::new(|| {}),
            history: 0,
        })?;
        let started = Instant::now();
        let mut attempts = 0;
        let mut result: Option<(u8, AuditEntry)> = None;
        let mut failure: Option<String> = None;
        loop {
            let remaining = CONNECT_WAIT.saturating_sub(started.elapsed());
            let event = if result.is_some() || failure.is_some() {
                events.recv().await
            } else {
                // The request's own timeout bounds the wait once sent.
                let limit =
                    remaining + config.timeout(&config.relays[index]) + Duration::from_secs(1);
                match tokio::time::timeout(limit, events.recv()).await {
                    Ok(event) => event,
                    Err(_) => {
                        failure = Some(format!(
                            "no connection to {} within {} s",
                            config.broker.url,
                            CONNECT_WAIT.as_secs()
                        ));
                        handle.shutdown();
                        continue;
                    }
                }
            };
            let Some(event) = event else { break };
            match event {
                Event::Connection(ConnectionState::Connected) if result.is_none() => {
                    handle.request(index, action)
                }
                Event::Connection(ConnectionState::Failed { reason }) => {
                    failure.get_or_insert(reason);
                    handle.shutdown();
                }
                Event::Connection(ConnectionState::Reconnecting { reason, .. })
                    if result.is_none() =>
                {
                    attempts += 1;
                    if attempts >= 3 || started.elapsed() > CONNECT_WAIT {
                        failure.get_or_insert(reason);
                        handle.shutdown();
                    }
                }
                Event::Finished { relay, entry } if relay == index && result.is_none() => {
                    let code = match entry.outcome.as_str() {
                        "confirmed" => CONFIRMED,
                        "no response" => NO_RESPONSE,
                        "device error" => DEVICE_ERROR,
                        _ => ERROR,
                    };
                    result = Some((code, entry));
                    handle.shutdown();
                }
                Event::Warning(message) => eprintln!("relayctl: warning: {message}"),
                _ => {}
            }
        }
        match (result, failure) {
            (Some((code, entry)), _) => {
                print_outcome(args, config, &entry, code);
                Ok(code)
            }
            (None, Some(reason)) => anyhow::bail!("{reason}"),
            (None, None) => anyhow::bail!("the engine stopped before the request ended"),
        }
    })
}

fn print_outcome(args: &Args, config: &Config, entry: &AuditEntry, code: u8) {
    if args.json {
        let json = serde_json::json!({
            "relay": entry.relay_id,
            "action": entry.action,
            "outcome": entry.outcome,
            "state": entry.state,
            "rtt_ms": entry.rtt.map(|d| d.as_secs_f64() * 1000.0),
            "detail": entry.detail,
            "exit_code": code,
        });
        println!("{json}");
        return;
    }
    let id = &entry.relay_id;
    match (entry.outcome.as_str(), entry.state, entry.rtt) {
        ("confirmed", Some(state), Some(rtt)) => {
            let note = entry
                .detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            println!("{id} {state} (confirmed in {}){note}", format_rtt(rtt));
        }
        ("no response", _, _) => {
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
        ("device error", _, rtt) => {
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

fn soak(requests: usize, relays: usize, outages: usize, seed: Option<u64>) -> anyhow::Result<u8> {
    anyhow::ensure!(
        relays > 0 && requests > 0,
        "--relays and --requests must be at least 1"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let options = relay_panel::soak::SoakOptions::new(relays, requests, outages, seed);
    eprintln!(
        "soak: {requests} requests over {relays} relays, timeout {} ms, {outages} broker outage(s); devices drop 5%, duplicate 5%, garbage 2%, wrong correlation 2%, answer up to 1.5x the timeout late, one always fails",
        options.timeout.as_millis()
    );
    let report = runtime.block_on(relay_panel::soak::run(options, |ended| {
        eprint!("\r{ended} requests ended");
    }))?;
    eprintln!();
    print!("{}", report.render());
    Ok(if report.passed() { CONFIRMED } else { ERROR })
}
