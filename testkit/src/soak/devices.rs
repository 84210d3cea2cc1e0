//! The simulated devices of a soak, and what they did: the records of
//! every request they handled and the log of every state report they
//! published, which every state the engine ended a request with is checked
//! against.
//!
//! What makes an end genuine, by its evidence:
//! - *correlated* (`Confirmed`, `LateConfirmed`): the device's record of
//!   that very request (found by its Correlation Data, or by its JSON-RPC
//!   id for a Shelly) exists, is for that relay, says the device answered
//!   it tied to the request, with a proper answer saying that state, and
//!   the device was in that state after it;
//! - *reported* (`Reported`, and a device error over a report of the
//!   other state): the relay's device published a proper report of that
//!   state (not garbage, not while offline) before the panel ended the
//!   request, and after the request was sent — allowing for the time a
//!   message is on its way: one published shortly before the send can
//!   still end it (a duplicate of the report that ended the previous
//!   request, a device's backlog going out in a burst microseconds apart),
//!   and nothing on the wire tells the two apart. Reports reach the panel
//!   in the order the device published them, each once, so what holds is:
//!   a report message published after the one that ended the relay's
//!   previous request this way, at most `in_transit` (the soak's slack, the
//!   timeout + 1 s: under load a message can wait that long in a stalled
//!   process) before the send.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use relay_panel::config::{Config, Kind, RelayConfig};
use relay_panel::engine::kinds::shelly;
use relay_panel::protocol::{Action, CorrelationId, RelayState};
use relay_panel::sim::{self, Faults, SimHandle, SimOptions, SimRecord, SimReply, SimReport};
use relay_panel::store::AuditEntry;
use tokio::sync::mpsc::UnboundedReceiver;

use super::SoakKind;

/// One simulator and what it tells.
struct Simulator {
    /// Stops it; tells each device's state.
    handle: SimHandle,
    /// What its devices did with each request.
    records: UnboundedReceiver<SimRecord>,
    /// The state reports its devices published.
    reports: UnboundedReceiver<SimReport>,
}

/// The simulated devices: one simulator for the relays of every kind but
/// one, and one of their own for the Tasmotas built with MQTT 5 (a
/// firmware variant that holds for a whole simulator).
pub(super) struct Fleet {
    /// The simulators.
    sims: Vec<Simulator>,
    /// Per relay: its simulator, an index into `sims`.
    sim_of: Vec<usize>,
}

impl Fleet {
    /// Starts the simulators for `config`, whose relay `i` is of kind
    /// `kinds[i]`, and waits until they have subscribed.
    pub(super) async fn start(
        config: &Config,
        kinds: &[SoakKind],
        faults: &Faults,
    ) -> std::io::Result<Fleet> {
        let mut sims = Vec::new();
        let mut sim_of = vec![0; config.relays.len()];
        for tasmota_mqtt5 in [false, true] {
            let members: Vec<usize> = (0..config.relays.len())
                .filter(|&i| kinds[i].tasmota_mqtt5() == tasmota_mqtt5)
                .collect();
            if members.is_empty() {
                continue;
            }
            let mut own = config.clone();
            own.relays = members.iter().map(|&i| config.relays[i].clone()).collect();
            let faults = Faults {
                tasmota_mqtt5,
                // Another stream of faults for the second simulator.
                seed: faults.seed.map(|s| s.wrapping_add(sims.len() as u64)),
                ..faults.clone()
            };
            let (mut handle, records, reports) = sim::spawn_with_reports(SimOptions {
                config: own,
                faults,
                client_id: None,
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            tokio::time::timeout(Duration::from_secs(10), handle.ready())
                .await
                .map_err(|_| std::io::Error::other("simulated devices did not subscribe"))?;
            for i in members {
                sim_of[i] = sims.len();
            }
            sims.push(Simulator {
                handle,
                records,
                reports,
            });
        }
        Ok(Fleet { sims, sim_of })
    }

    /// Whether every simulator is connected and subscribed.
    pub(super) fn is_ready(&self) -> bool {
        self.sims.iter().all(|sim| sim.handle.is_ready())
    }

    /// The state relay `relay` (`id`) is in at its device.
    pub(super) fn state(&self, relay: usize, id: &str) -> Option<RelayState> {
        self.sims[self.sim_of[relay]].handle.state(id)
    }

    /// Stops the simulators and takes what they told.
    pub(super) fn stop(&mut self) -> DeviceLog {
        let mut log = DeviceLog::default();
        for sim in &mut self.sims {
            sim.handle.stop();
            while let Ok(record) = sim.records.try_recv() {
                log.add_record(record);
            }
            while let Ok(report) = sim.reports.try_recv() {
                log.reports
                    .entry(report.relay_id.clone())
                    .or_default()
                    .push(report);
            }
        }
        for reports in log.reports.values_mut() {
            reports.sort_by_key(|r| r.at);
        }
        log
    }
}

/// What identifies a request at the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RequestKey {
    /// MQTT 5 Correlation Data (`mqtt5`, `tasmota`).
    Correlation(Vec<u8>),
    /// A Shelly's JSON-RPC `id`, as JSON text.
    Rpc(String),
}

/// What the devices did.
#[derive(Debug, Default)]
pub(super) struct DeviceLog {
    /// Records of the requests handled, by what identifies the request
    /// (several, should a request reach a device twice).
    records: HashMap<RequestKey, Vec<SimRecord>>,
    /// The state reports published, per relay id, oldest first.
    reports: HashMap<String, Vec<SimReport>>,
    /// What the devices did with the requests, counted.
    pub(super) did: BTreeMap<&'static str, usize>,
}

impl DeviceLog {
    fn add_record(&mut self, record: SimRecord) {
        let what = match &record.reply {
            SimReply::Answer { copies: 2, .. } => "answered twice",
            SimReply::Answer { .. } => "answered",
            SimReply::Dropped => "dropped",
            SimReply::Garbage => "answered garbage",
            SimReply::WrongCorrelation => "wrong correlation",
            SimReply::NoResponseTopic => "no response topic",
            SimReply::Expired { .. } => "expired, not actuated",
            SimReply::Ignored { .. } => "ignored",
            SimReply::Offline => "device offline",
        };
        *self.did.entry(what).or_default() += 1;
        let key = match (&record.correlation, &record.rpc_id) {
            (Some(c), _) => RequestKey::Correlation(c.to_vec()),
            (None, Some(id)) => RequestKey::Rpc(id.clone()),
            (None, None) => return,
        };
        self.records.entry(key).or_default().push(record);
    }

    /// State reports published in all, those with garbage, and those
    /// dropped while offline.
    pub(super) fn report_counts(&self) -> (usize, usize, usize) {
        let all = || self.reports.values().flatten();
        (
            all().filter(|r| !r.offline).count(),
            all().filter(|r| !r.offline && r.state.is_none()).count(),
            all().filter(|r| r.offline).count(),
        )
    }

    /// Whether a correlated end of `relay`'s request with `state` is
    /// genuine (see the module doc); `Err` says why not.
    pub(super) fn check_correlated(
        &self,
        relay: &RelayConfig,
        state: RelayState,
        entry: &AuditEntry,
    ) -> Result<(), String> {
        let key = request_key(relay, entry.correlation.as_deref())
            .ok_or("the entry names no request id")?;
        let records = self
            .records
            .get(&key)
            .ok_or("no device has a record of that request")?;
        if records
            .iter()
            .any(|record| answered(relay, entry.action, state, record))
        {
            Ok(())
        } else {
            Err(format!("the device's record says {records:?}"))
        }
    }

    /// The reports a reported end of `relay_id`'s request with `state`
    /// can rest on (see the module doc): published after report number
    /// `after` (the one the relay's previous reported end rested on), not
    /// before `not_before`, and before `ended`. The first and the last of
    /// them, as indices into the relay's reports; `None`: there is none,
    /// the end is not genuine.
    pub(super) fn reports_for(
        &self,
        relay_id: &str,
        state: RelayState,
        after: Option<usize>,
        not_before: Instant,
        ended: Instant,
    ) -> Option<(usize, usize)> {
        let reports = self.reports.get(relay_id)?;
        let from = after.map_or(0, |i| i + 1);
        let fits = |r: &SimReport| {
            !r.offline && r.state == Some(state) && r.at >= not_before && r.at < ended
        };
        let first = (from..reports.len()).find(|&i| fits(&reports[i]))?;
        let last = (first..reports.len()).rev().find(|&i| fits(&reports[i]))?;
        Some((first, last))
    }

    /// What `relay_id`'s device reported around `sent` (within a second),
    /// in ms from it, for a failure's description.
    pub(super) fn reports_around(&self, relay_id: &str, sent: Instant) -> String {
        let window = Duration::from_secs(1);
        let ms = |at: Instant| match at.checked_duration_since(sent) {
            Some(after) => after.as_secs_f64() * 1000.0,
            None => -(sent.duration_since(at).as_secs_f64() * 1000.0),
        };
        let around: Vec<String> = self
            .reports
            .get(relay_id)
            .into_iter()
            .flatten()
            .filter(|r| r.at + window >= sent && r.at <= sent + window)
            .map(|r| {
                let state = r.state.map_or("garbage".to_owned(), |s| s.to_string());
                let offline = if r.offline { " (offline)" } else { "" };
                format!("{state} at {:+.3} ms{offline}", ms(r.at))
            })
            .collect();
        format!("reports from the send: [{}]", around.join(", "))
    }

    /// How many times `relay_id`'s device published a state report (or
    /// garbage in its place, or dropped one while offline) after its
    /// report number `index`.
    pub(super) fn reports_after(&self, relay_id: &str, index: usize) -> usize {
        self.reports
            .get(relay_id)
            .map_or(0, |r| r.len().saturating_sub(index + 1))
    }
}

/// What identifies the request of `entry` at the device: its Correlation
/// Data, or for a Shelly the JSON-RPC id the engine makes of it (the
/// number in its first six bytes).
fn request_key(relay: &RelayConfig, correlation: Option<&str>) -> Option<RequestKey> {
    let bytes = from_hex(correlation?)?;
    match relay.kind {
        Kind::Shelly => {
            let id = CorrelationId(bytes.try_into().ok()?);
            Some(RequestKey::Rpc(shelly::rpc_id(&id).to_string()))
        }
        Kind::Mqtt5 | Kind::Tasmota | Kind::State => Some(RequestKey::Correlation(bytes)),
    }
}

/// Whether `record` shows `relay`'s device answering an `action` request
/// with `state`, tied to it: a proper answer saying that state, the device
/// in that state after it.
fn answered(relay: &RelayConfig, action: Action, state: RelayState, record: &SimRecord) -> bool {
    let SimReply::Answer { payload, .. } = &record.reply else {
        return false;
    };
    record.relay_id == relay.id
        && record.correlated
        && record.state_after == state
        && answer_says(relay, action, payload) == Some(state)
}

/// The state a device's answer says, read here independently of the
/// engine: the payload for `mqtt5`, Tasmota's `{"POWER":"ON"}`, a Shelly's
/// `result` (a `Switch.Set` done as asked, a status's `output`).
fn answer_says(relay: &RelayConfig, action: Action, payload: &str) -> Option<RelayState> {
    let both = [RelayState::On, RelayState::Off];
    match relay.kind {
        Kind::Mqtt5 => both.into_iter().find(|&s| {
            payload
                == match s {
                    RelayState::On => relay.payload_on.as_str(),
                    RelayState::Off => relay.payload_off.as_str(),
                }
        }),
        Kind::Tasmota => both.into_iter().find(|&s| {
            let word = if s == RelayState::On { "ON" } else { "OFF" };
            payload == format!(r#"{{"{}":"{word}"}}"#, relay.power_key())
        }),
        Kind::Shelly => {
            let frame: serde_json::Value = serde_json::from_str(payload).ok()?;
            let result = frame
                .get("result")
                .filter(|_| frame.get("error").is_none())?;
            match action {
                Action::On => Some(RelayState::On),
                Action::Off => Some(RelayState::Off),
                Action::Query => {
                    let on = result.get("output")?.as_bool()?;
                    Some(if on { RelayState::On } else { RelayState::Off })
                }
            }
        }
        // Never tied to a request.
        Kind::State => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: Option<RelayState>, at: Instant) -> SimReport {
        SimReport {
            relay_id: "r".into(),
            topic: "stat/r".into(),
            state,
            at,
            offline: false,
        }
    }

    /// A reported end rests on a proper report of its state, after the
    /// one the previous end rested on, not too old, before the end;
    /// garbage and reports dropped offline do not count.
    #[test]
    fn reported_ends_rest_on_a_report_in_their_window() {
        use RelayState::{Off, On};
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let mut log = DeviceLog::default();
        log.reports.insert(
            "r".into(),
            vec![
                report(Some(On), ms(10)),
                report(Some(Off), ms(20)),
                report(None, ms(30)),
                report(Some(On), ms(40)),
                report(Some(Off), ms(50)),
                SimReport {
                    offline: true,
                    ..report(Some(On), ms(60))
                },
                report(Some(On), ms(70)),
            ],
        );
        // A burst before the send still counts, after the previous one.
        assert_eq!(log.reports_for("r", On, None, ms(0), ms(45)), Some((0, 3)));
        assert_eq!(
            log.reports_for("r", On, Some(0), ms(0), ms(45)),
            Some((3, 3))
        );
        assert_eq!(log.reports_for("r", Off, Some(1), ms(0), ms(45)), None);
        // Too old, or published after the end.
        assert_eq!(log.reports_for("r", On, None, ms(15), ms(39)), None);
        assert_eq!(log.reports_for("r", Off, Some(3), ms(0), ms(50)), None);
        assert_eq!(
            log.reports_for("r", Off, Some(3), ms(0), ms(51)),
            Some((4, 4))
        );
        // Dropped while offline: nobody heard it.
        assert_eq!(log.reports_for("r", On, Some(4), ms(0), ms(65)), None);
        assert_eq!(
            log.reports_for("r", On, Some(4), ms(0), ms(71)),
            Some((6, 6))
        );
        assert_eq!(log.reports_for("other", On, None, ms(0), ms(99)), None);
        assert_eq!(log.reports_after("r", 3), 3);
        assert_eq!(log.reports_after("r", 6), 0);
    }

    /// A Shelly request is found by the RPC id the engine derives from its
    /// correlation; the answer must say the state, tied to the request.
    #[test]
    fn correlated_ends_need_the_devices_tied_answer() {
        let relay = RelayConfig::shelly("s", "dev", 0);
        let mut bytes = [0u8; 16];
        bytes[5] = 42;
        let id = CorrelationId(bytes);
        assert_eq!(
            request_key(&relay, Some(&id.to_hex())),
            Some(RequestKey::Rpc("42".into()))
        );
        let record = |relay_id: &str, correlated, payload: &str| SimRecord {
            relay_id: relay_id.into(),
            request: String::new(),
            correlation: None,
            rpc_id: Some("42".into()),
            correlated,
            state_after: RelayState::On,
            reply: SimReply::Answer {
                payload: payload.into(),
                copies: 1,
            },
        };
        let ok = r#"{"id":42,"src":"dev","dst":"p","result":{"was_on":false}}"#;
        let error = r#"{"id":42,"src":"dev","dst":"p","error":{"code":-105,"message":"x"}}"#;
        assert!(answered(
            &relay,
            Action::On,
            RelayState::On,
            &record("s", true, ok)
        ));
        assert!(!answered(
            &relay,
            Action::On,
            RelayState::On,
            &record("s", false, ok)
        ));
        assert!(!answered(
            &relay,
            Action::On,
            RelayState::On,
            &record("t", true, ok)
        ));
        assert!(!answered(
            &relay,
            Action::On,
            RelayState::On,
            &record("s", true, error)
        ));
        assert!(!answered(
            &relay,
            Action::Off,
            RelayState::Off,
            &record("s", true, ok)
        ));
        let tasmota = RelayConfig::tasmota("t", "dev", None);
        assert_eq!(
            answer_says(&tasmota, Action::Query, r#"{"POWER":"OFF"}"#),
            Some(RelayState::Off)
        );
        assert_eq!(answer_says(&tasmota, Action::On, "garbage"), None);
    }
}
