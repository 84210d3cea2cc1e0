//! `relay-sim`: simulated devices for every relay of a configuration.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use relay_panel::config::Config;
use relay_panel::paths;
use relay_panel::sim::{self, Faults, SimHandle, SimOptions, SimReply};

/// Simulate a device for every relay in a Relay Panel configuration, each
/// the way its kind of device speaks.
///
/// Every relay starts off. kind mqtt5: switches on payload_on /
/// payload_off, answers payload_query with its state, and replies on the
/// request's Response Topic with the request's Correlation Data (none if
/// the request had none, so `mosquitto_rr` works against it); with a
/// state_topic it also publishes its state there (retained, User Property
/// source). shelly: answers JSON-RPC Switch.Set / Switch.GetStatus /
/// Switch.Toggle on <device>/rpc, on <src>/rpc, and tells every change on
/// <device>/events/rpc and <device>/status/switch:<n>. tasmota: acts on
/// cmnd/<device>/POWER<n> and answers on stat/<device>/RESULT and
/// stat/<device>/POWER<n> (and, with --tasmota-mqtt5, on the Response
/// Topic). state: acts on command_topic, publishes its state on
/// state_topic (retained).
///
/// Every device with an availability topic (shelly: <device>/online,
/// tasmota: tele/<device>/LWT, mqtt5 and state: availability_topic) has a
/// connection of its own whose last will is its offline payload there; it
/// publishes its online payload (retained) on connecting.
///
/// Commands on standard input, one a line, for what happens at a device:
///
///   press ID     someone presses the relay's button: it toggles and its
///                device tells the change (source "button")
///
///   offline ID   the relay's device (every relay sharing its availability
///                topic) drops off the network without a goodbye: the
///                broker publishes its last will; it ignores requests
///
///   online ID    the device is back: it connects, says it is online and
///                announces its state (state devices, mqtt5 with a
///                state_topic)
///
/// Each command prints what it did, or why not. The end of standard input
/// (closed, or /dev/null) leaves the simulator running; Ctrl+C stops it,
/// and its devices drop off the network (their wills fire).
#[derive(Parser, Debug)]
#[command(
    name = "relay-sim",
    version,
    after_help = "Example:\n  relay-sim --config panel.toml --latency-ms 20 --drop 0.05 -v\n  echo 'offline pump-1' | relay-sim --config panel.toml"
)]
struct Args {
    /// Configuration file (default: $RELAY_PANEL_CONFIG or the platform config dir).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Delay before each answer.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Extra random delay, 0 to this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    jitter_ms: u64,
    /// Probability (0-1) that a request is lost (not actuated, not answered).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    drop: f64,
    /// Probability (0-1) that an answer is sent twice.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    duplicate: f64,
    /// Probability (0-1) that an answer's payload is random bytes.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    garbage: f64,
    /// Probability (0-1) that an answer carries the wrong correlation data.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    wrong_correlation: f64,
    /// Relay id that never switches (repeatable): it answers an error
    /// (mqtt5: a text, shelly: error -105) or reports its unchanged state
    /// (tasmota, state).
    #[arg(long, value_name = "ID")]
    fail: Vec<String>,
    /// Tasmota devices run a build with MQTT 5: they also answer the
    /// request's Response Topic with its Correlation Data, right after
    /// stat/<device>/RESULT.
    #[arg(long)]
    tasmota_mqtt5: bool,
    /// Seed for reproducible faults.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Print one line per request.
    #[arg(short, long)]
    verbose: bool,
}

fn probability(name: &str, p: f64) -> anyhow::Result<f64> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&p),
        "--{name} must be between 0 and 1, got {p}"
    );
    Ok(p)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let path = paths::config_path(args.config.clone());
    let config = Config::load(&path)?;
    for id in &args.fail {
        anyhow::ensure!(
            config.relay(id).is_some(),
            "--fail {id}: no relay with that id in {}",
            path.display()
        );
    }
    let faults = Faults {
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        drop: probability("drop", args.drop)?,
        duplicate: probability("duplicate", args.duplicate)?,
        garbage: probability("garbage", args.garbage)?,
        wrong_correlation: probability("wrong-correlation", args.wrong_correlation)?,
        fail: args.fail.iter().cloned().collect(),
        seed: args.seed,
        tasmota_mqtt5: args.tasmota_mqtt5,
    };
    let relays = config.relays.len();
    let url = config.broker.url.clone();
    let (mut handle, mut records) = sim::spawn(SimOptions {
        config: config.clone(),
        faults,
        client_id: None,
    })
    .context("cannot start the simulator")?;
    tokio::select! {
        _ = handle.ready() => eprintln!("relay-sim: {relays} relay(s) listening via {url}"),
        _ = tokio::time::sleep(Duration::from_secs(10)) => anyhow::bail!("relay-sim: could not connect and subscribe to {url} within 10 s (see messages above)"),
    }
    let mut commands = read_commands();
    // Standard input may end at once (/dev/null, a closed pipe): the
    // devices go on until Ctrl+C.
    let mut reading = true;
    loop {
        tokio::select! {
            line = commands.recv(), if reading => match line {
                Some(line) => println!("{}", run_command(&handle, &config, &line)),
                None => reading = false,
            },
            record = records.recv() => {
                let Some(record) = record else { break };
                if args.verbose {
                    let what = match &record.reply {
                        SimReply::Dropped => "dropped (not actuated, no answer)".to_owned(),
                        SimReply::NoResponseTopic => "no response topic: not answered".to_owned(),
                        SimReply::Answer { payload, copies: 1 } => format!("answered {payload:?}"),
                        SimReply::Answer { payload, copies } => format!("answered {payload:?} x{copies}"),
                        SimReply::Garbage => "answered garbage".to_owned(),
                        SimReply::WrongCorrelation => "answered with wrong correlation".to_owned(),
                        SimReply::Expired { expires_at } => format!("expired at {expires_at}: not actuated, not answered"),
                        SimReply::Ignored { reason } => format!("ignored ({reason}): not actuated, not answered"),
                        SimReply::Offline => "device offline: not actuated, not answered".to_owned(),
                    };
                    let tie = match &record.rpc_id {
                        Some(id) => format!("rpc id={id}"),
                        None => {
                            let correlation = record.correlation.as_ref().map(|c| c.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>()).unwrap_or_else(|| "none".into());
                            format!("corr={correlation}")
                        }
                    };
                    let reported = match record.reply {
                        SimReply::Answer { .. } if !record.correlated => " (a report: tied to no request)",
                        _ => "",
                    };
                    println!("{} <- {:?} {tie} now {}: {what}{reported}", record.relay_id, record.request, record.state_after);
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    handle.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// The lines of standard input, read on a thread of their own (reading
/// blocks; the process exits without waiting for it). The channel closes
/// at the end of the input.
fn read_commands() -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Carries out one command line; returns what it did, or why not.
fn run_command(handle: &SimHandle, config: &Config, line: &str) -> String {
    const USAGE: &str = "commands: press ID, offline ID, online ID";
    let mut words = line.split_whitespace();
    let (Some(command), Some(id), None) = (words.next(), words.next(), words.next()) else {
        return if line.trim().is_empty() {
            USAGE.to_owned()
        } else {
            format!("relay-sim: cannot read {:?}; {USAGE}", line.trim())
        };
    };
    let Some(relay) = config.relay(id) else {
        return format!("relay-sim: no relay {id:?} in the configuration");
    };
    match command {
        "press" => {
            handle.press(id);
            let now = handle
                .state(id)
                .map_or_else(|| "?".to_owned(), |s| s.to_string());
            let heard = match handle.is_online(id) {
                Some(false) => " (its device is offline: nobody hears of it)",
                _ => "",
            };
            format!("relay-sim: pressed {id}'s button: now {now}{heard}")
        }
        "offline" | "online" => {
            let online = command == "online";
            let Some(topic) = relay.availability_topic() else {
                return format!(
                    "relay-sim: {id} has no availability topic: it cannot go {command} by itself"
                );
            };
            handle.set_online(id, online);
            let sharing: Vec<&str> = config
                .relays
                .iter()
                .filter(|r| r.availability_topic().as_deref() == Some(topic.as_str()))
                .map(|r| r.id.as_str())
                .collect();
            let what = if online {
                "back online: it connects and says so"
            } else {
                "offline: the broker publishes its last will"
            };
            format!(
                "relay-sim: the device of {} ({topic}) is {what}",
                sharing.join(", ")
            )
        }
        other => format!("relay-sim: unknown command {other:?}; {USAGE}"),
    }
}
