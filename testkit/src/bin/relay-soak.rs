//! `relay-soak`: the chaos soak. Runs its own Mosquitto and misbehaving
//! simulated devices of every kind (or the kinds named with `--kind`),
//! sends many requests through the real engine and checks every state it
//! ends a request with against what the devices really did. Needs
//! `mosquitto` installed. Exit 0 only if every check held.

use std::process::ExitCode;

use clap::Parser;
use relay_testkit::soak::{self, SoakKind, SoakOptions};

/// Chaos soak for Relay Panel's engine.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Requests to publish (at least; the run lasts until every outage has happened).
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
    /// Kind of device (repeat for several; default: all, relays taking
    /// them in turn): mqtt5, shelly, tasmota, tasmota-mqtt5, state.
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<SoakKind>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("relay-soak: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.relays > 0 && args.requests > 0,
        "--relays and --requests must be at least 1"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let options = SoakOptions::new(args.relays, args.requests, args.outages, args.seed)
        .with_kinds(&args.kinds);
    let kinds: Vec<&str> = options.kinds.iter().map(|k| k.name()).collect();
    eprintln!(
        "soak: {} requests over {} relays ({}), timeout {} ms, {} broker outage(s); devices drop 5%, duplicate 5%, garbage 2%, wrong correlation 2%, answer up to 1.5x the timeout late, the first relay of each kind always fails",
        args.requests,
        args.relays,
        kinds.join(", "),
        options.timeout.as_millis(),
        args.outages
    );
    let report = runtime.block_on(soak::run(options, |ended| {
        eprint!("\r{ended} requests ended");
    }))?;
    eprintln!();
    print!("{}", report.render());
    Ok(report.passed())
}
