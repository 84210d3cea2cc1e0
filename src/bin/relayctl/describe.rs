//! One relay's status as relayctl prints it (`status`, and `watch`'s
//! `status` command): both facts the panel holds — the last acknowledged
//! state of a request, and the device's own report (a change at the
//! device, a retained state) — which of them is the newest, and whether
//! the device is reachable.

use std::time::SystemTime;

use relay_panel::config::RelayConfig;
use relay_panel::outcome::Evidence;
use relay_panel::relay::{Availability, Phase, RelayStatus, Shown, format_age, format_time};
use serde_json::{Value, json};

use super::millis;

/// Unix milliseconds, as every relayctl JSON time.
pub(super) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The JSON object of one relay: `state`, `evidence`, `source` and `at`
/// of the newest evidence; `online` (true, false or null) and
/// `online_since_ms`; `last_confirmed` (the last acknowledgement of a
/// request, or null); and, unchanged from earlier versions, the last
/// acknowledgement's `acknowledged_at_ms`, `rtt_ms`, `late`, `restored`.
pub(super) fn status_json(relay: &RelayConfig, status: &RelayStatus) -> Value {
    let shown = status.shown();
    let ack = status.last_acknowledged.as_ref();
    let source = match shown {
        Some(Shown::Device(report)) if report.retained => Some("retained".to_owned()),
        Some(Shown::Device(report)) => report.source.clone(),
        _ => None,
    };
    json!({
        "relay": relay.id,
        "name": relay.display_name(),
        "group": relay.group,
        "state": shown.map(Shown::state),
        "evidence": shown.map(Shown::evidence),
        "source": source,
        "changed_at_device": matches!(shown, Some(Shown::Device(_))),
        "at": shown.map(|s| unix_ms(s.at())),
        "online": status.availability.online(),
        "online_since_ms": status.availability.since().map(|(since, _)| unix_ms(since)),
        "last_confirmed": ack.map(|a| json!({
            "state": a.state,
            "evidence": a.evidence,
            "at": unix_ms(a.at),
            "operator": a.operator,
        })),
        "acknowledged_at_ms": ack.map(|a| unix_ms(a.at)),
        "rtt_ms": ack.map(|a| millis(a.rtt)),
        "late": ack.map(|a| a.late),
        "restored": shown.map(Shown::restored),
        "pending": status.is_pending(),
    })
}

/// "offline since 10:42:07", "online", "" (unknown).
pub(super) fn availability_text(availability: Availability) -> String {
    match availability {
        Availability::Unknown => String::new(),
        Availability::Online { .. } => "online".to_owned(),
        Availability::Offline { since, retained } => {
            let before = if retained { "before " } else { "" };
            format!("offline since {before}{}", format_time(since))
        }
    }
}

/// The state and how it is known, in words: "on, acknowledged 12 s ago",
/// "on, reported by the device 2 min ago (button); last confirmed off
/// 2026-12-04 10:02:00 by alice", "unknown, never acknowledged".
/// `session`: the status is a running watch's, so what it read from the
/// store at start is marked "from an earlier session" (a one-shot
/// `status` reads everything from there).
pub(super) fn known_text(status: &RelayStatus, now: SystemTime, session: bool) -> String {
    let age = |at: SystemTime| format_age(now.duration_since(at).unwrap_or_default());
    let mut text = match status.shown() {
        None => "unknown, never acknowledged".to_owned(),
        Some(Shown::Acknowledged(ack)) => {
            let mut marks = Vec::new();
            if ack.evidence == Evidence::Reported {
                marks.push("reported by the device, not a reply");
            }
            if ack.late {
                marks.push("late answer");
            }
            if ack.restored && session {
                marks.push("from an earlier session");
            }
            let marks = if marks.is_empty() {
                String::new()
            } else {
                format!(" ({})", marks.join(", "))
            };
            format!("{}, acknowledged {}{marks}", ack.state, age(ack.at))
        }
        Some(Shown::Device(report)) => {
            let how = if report.retained {
                "reported (retained; time unknown)".to_owned()
            } else {
                let earlier = if report.restored && session {
                    ", from an earlier session"
                } else {
                    ""
                };
                format!(
                    "reported by the device {}{}{earlier}",
                    age(report.at),
                    report.from_source()
                )
            };
            let mut text = format!("{}, {how}", report.state);
            match &status.last_acknowledged {
                Some(ack) => text.push_str(&format!(
                    "; last {} {} {}{}",
                    ack.evidence.verb(),
                    ack.state,
                    format_time(ack.at),
                    ack.by_whom()
                )),
                None => text.push_str("; never acknowledged"),
            }
            text
        }
    };
    if let Phase::Pending { requested, .. } = &status.phase {
        text.push_str(&format!("; pending: asked {requested}"));
    }
    text
}
