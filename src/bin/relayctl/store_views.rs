//! `relayctl status` and `relayctl log`: what the store holds (and, for
//! `status`, what the broker's retained messages say now), as a table or
//! as JSON.

use std::io::Write;
use std::time::{Duration, SystemTime};

use relay_panel::config::{Config, RelayConfig};
use relay_panel::engine::{ConnectionState, Event, Events};
use relay_panel::relay::{RelayStatus, format_rtt, format_time};
use relay_panel::store::Store;
use tokio::time::Instant;

use super::{Args, CONFIRMED, SHUTDOWN_WAIT_FAILED, describe};

fn open_store(data_dir: &std::path::Path) -> anyhow::Result<Store> {
    let (store, warning) = Store::open_in(data_dir)?;
    if let Some(warning) = warning {
        eprintln!("relayctl: warning: {warning}");
    }
    Ok(store)
}

/// How long `status` waits for the broker before printing what the store
/// holds alone (availability then unknown).
const STATUS_CONNECT_WAIT: Duration = Duration::from_secs(2);
/// Once subscribed, the retained last wills and states come at once:
/// `status` prints when none came for this long…
const STATUS_QUIET: Duration = Duration::from_millis(50);
/// …or at the latest this long after the subscription.
const STATUS_SETTLE: Duration = Duration::from_millis(300);

/// `relayctl status`: every relay's newest evidence and last
/// acknowledgement from the store, with what the broker holds now: the
/// devices' retained last wills (online / offline) and retained states,
/// read over a short connection.
pub(super) fn status(args: &Args, config: &Config) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (statuses, broker_note) = runtime.block_on(gather(args, config))?;
    if let Some(note) = &broker_note {
        eprintln!("relayctl: warning: {note}; availability is unknown");
    }
    // One write at the end, not one per line (10,000 lines were 10,000
    // system calls); a reader that stops early (`| head`) is no error.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match print_status(&mut out, args, config, &statuses).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(CONFIRMED),
    }
}

/// Writes the status table (or its JSON) to `out`.
fn print_status(
    out: &mut impl Write,
    args: &Args,
    config: &Config,
    statuses: &[RelayStatus],
) -> std::io::Result<()> {
    let now = SystemTime::now();
    let rows: Vec<_> = config.relays.iter().zip(statuses).collect();
    if args.json {
        let json: Vec<_> = rows
            .iter()
            .map(|(relay, status)| describe::status_json(relay, status))
            .collect();
        return writeln!(out, "{}", serde_json::Value::Array(json));
    }
    let width = |of: &dyn Fn(&RelayConfig) -> usize, least: usize| {
        rows.iter()
            .map(|(r, _)| of(r))
            .max()
            .unwrap_or(0)
            .max(least)
    };
    let id_width = width(&|r| r.id.chars().count(), 2);
    let name_width = width(&|r| r.display_name().chars().count(), 4);
    let online: Vec<String> = rows
        .iter()
        .map(|(_, s)| match describe::availability_text(s.availability) {
            text if text.is_empty() => "?".to_owned(),
            text => text,
        })
        .collect();
    let online_width = online
        .iter()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(
        out,
        "{:<id_width$}  {:<name_width$}  {:<7}  {:<online_width$}  HOW IT IS KNOWN",
        "ID", "NAME", "STATE", "ONLINE"
    )?;
    for ((relay, status), online) in rows.iter().zip(online) {
        let state = status
            .shown_state()
            .map(|s| s.as_str().to_uppercase())
            .unwrap_or_else(|| "UNKNOWN".to_owned());
        writeln!(
            out,
            "{:<id_width$}  {:<name_width$}  {state:<7}  {online:<online_width$}  {}",
            relay.id,
            relay.display_name(),
            describe::known_text(status, now, false)
        )?;
    }
    Ok(())
}

/// Every relay's status: the store's (through an engine, which reads it
/// at start), then what the broker's retained messages add. Returns why
/// the broker could not be asked, if it could not.
async fn gather(
    args: &Args,
    config: &Config,
) -> anyhow::Result<(Vec<RelayStatus>, Option<String>)> {
    super::with_engine(config, args, async |_, events| {
        (gather_from(config, events).await, SHUTDOWN_WAIT_FAILED)
    })
    .await
}

/// Reads the engine's events until the store is read and the retained
/// messages have come (or the broker could not be reached).
async fn gather_from(config: &Config, events: &mut Events) -> (Vec<RelayStatus>, Option<String>) {
    let mut statuses = vec![RelayStatus::default(); config.relays.len()];
    let mut store_read = false;
    let mut broker_note = None;
    let mut settled: Option<Instant> = None;
    let give_up = Instant::now() + STATUS_CONNECT_WAIT;
    loop {
        let wait_until = match settled {
            // Subscribed: a moment for the retained messages.
            Some(by) => (Instant::now() + STATUS_QUIET).min(by),
            None => give_up,
        };
        match tokio::time::timeout_at(wait_until, events.recv()).await {
            Ok(Some(event)) => match event {
                Event::Relay { relay, status } => {
                    if let Some(slot) = statuses.get_mut(relay) {
                        *slot = status;
                    }
                }
                Event::History(_) => store_read = true,
                Event::Warning(message) => {
                    // A store that cannot be read is said once, here.
                    eprintln!("relayctl: warning: {message}");
                    store_read = true;
                }
                Event::Connection(ConnectionState::Connected) => {
                    settled = Some(Instant::now() + STATUS_SETTLE);
                }
                Event::Connection(ConnectionState::Failed { reason }) => {
                    broker_note = Some(reason);
                    if store_read {
                        break;
                    }
                }
                Event::Connection(ConnectionState::Reconnecting { reason, .. }) => {
                    broker_note = Some(reason);
                }
                _ => {}
            },
            Ok(None) => break,
            Err(_) if settled.is_some() || broker_note.is_some() => {
                if store_read {
                    if settled.is_some() {
                        broker_note = None;
                    }
                    break;
                }
                // The store is still being read: give it until the limit.
                if Instant::now() >= give_up {
                    break;
                }
            }
            Err(_) => {
                broker_note = Some(format!(
                    "no connection to {} within {:.1} s",
                    config.broker.url,
                    STATUS_CONNECT_WAIT.as_secs_f64()
                ));
                if store_read || Instant::now() >= give_up {
                    break;
                }
            }
        }
    }
    (statuses, broker_note)
}

pub(super) fn log(args: &Args, data_dir: &std::path::Path, count: usize) -> anyhow::Result<u8> {
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
