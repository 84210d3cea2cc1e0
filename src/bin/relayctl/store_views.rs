//! `relayctl status` and `relayctl log`: what the store holds, as a table
//! or as JSON.

use std::time::SystemTime;

use relay_panel::config::Config;
use relay_panel::relay::{format_age, format_rtt, format_time};
use relay_panel::store::Store;

use super::{Args, CONFIRMED};

fn open_store(data_dir: &std::path::Path) -> anyhow::Result<Store> {
    let (store, warning) = Store::open_in(data_dir)?;
    if let Some(warning) = warning {
        eprintln!("relayctl: warning: {warning}");
    }
    Ok(store)
}

pub(super) fn status(
    args: &Args,
    config: &Config,
    data_dir: &std::path::Path,
) -> anyhow::Result<u8> {
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
                    "evidence": ack.map(|a| a.evidence),
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
                        "{} ({} {}, rtt {}{late})",
                        format_age(age),
                        a.evidence.verb(),
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
