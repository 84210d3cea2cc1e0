//! What the panel shows, fed by engine events. No drawing, no I/O.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::engine::{ConnectionState, Event};
use crate::outcome::Outcome;
use crate::protocol::Action;
use crate::relay::RelayStatus;
use crate::store::AuditEntry;

/// Audit entries kept in memory for the activity panel.
pub const AUDIT_KEPT: usize = 5000;
/// Round trips kept per relay for its plot.
pub const RTT_KEPT: usize = 120;

/// A heading and the relays under it, in configuration order.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The `group` key ("" shows as "Ungrouped").
    pub name: String,
    /// Indices into `config.relays`.
    pub relays: Vec<usize>,
}

impl Group {
    /// The heading text.
    pub fn title(&self) -> &str {
        if self.name.is_empty() {
            "Ungrouped"
        } else {
            &self.name
        }
    }
}

/// "All on" / "All off" for a group, while it runs and after.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRun {
    /// The group's name.
    pub group: String,
    /// What was asked of every relay.
    pub action: Action,
    /// Relays asked.
    pub total: usize,
    /// Relays whose request has not ended yet.
    pub waiting: HashSet<usize>,
    /// Confirmed in the requested state.
    pub confirmed: usize,
    /// Ended with no response.
    pub no_response: usize,
    /// Device errors, lost connections, not sent, or confirmed in another state.
    pub failed: usize,
}

impl GroupRun {
    /// Whether every request has ended.
    pub fn done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// "7 / 12 confirmed, 1 no response".
    pub fn progress(&self) -> String {
        let mut text = format!("{} / {} confirmed", self.confirmed, self.total);
        if self.no_response > 0 {
            text.push_str(&format!(", {} no response", self.no_response));
        }
        if self.failed > 0 {
            text.push_str(&format!(", {} failed", self.failed));
        }
        text
    }
}

/// Everything the views read.
pub struct Model {
    /// Broker and relays (shared with the engine, not copied).
    pub config: Arc<Config>,
    /// Groups in order of first appearance.
    pub groups: Vec<Group>,
    /// Index of each relay id in `config.relays` (the activity filter
    /// looks up a name for each of up to 5,000 entries).
    ids: HashMap<String, usize>,
    /// Each relay's status, same order as `config.relays`.
    pub statuses: Vec<RelayStatus>,
    /// The broker connection.
    pub connection: ConnectionState,
    /// This panel's response topic ("" before the engine runs).
    pub response_topic: String,
    /// Audit entries, newest first.
    pub audit: VecDeque<AuditEntry>,
    /// Recent round trips per relay in milliseconds, oldest first.
    pub rtts: Vec<VecDeque<f32>>,
    /// The current or last group action.
    pub group_run: Option<GroupRun>,
    /// Messages for the technician that are not request outcomes.
    pub warnings: Vec<String>,
    /// Bumped whenever `config` changes (invalidates cached rows).
    pub generation: u64,
    /// Between [`Model::reconfigure`] and the engine's `Reconfigured`:
    /// events still name relays by their old index.
    reconfiguring: bool,
}

impl Model {
    /// A model for `config` with nothing known yet.
    pub fn new(config: Config) -> Self {
        let mut model = Model {
            config: Arc::new(Config::new("")),
            groups: Vec::new(),
            ids: HashMap::new(),
            statuses: Vec::new(),
            connection: ConnectionState::Connecting,
            response_topic: String::new(),
            audit: VecDeque::new(),
            rtts: Vec::new(),
            group_run: None,
            warnings: Vec::new(),
            generation: 0,
            reconfiguring: false,
        };
        model.set_config(config);
        model
    }

    /// Replaces the configuration for a new engine (statuses start over;
    /// the engine sends the restored ones).
    pub fn set_config(&mut self, config: impl Into<Arc<Config>>) {
        let config: Arc<Config> = config.into();
        self.reconfiguring = false;
        let n = config.relays.len();
        let mut groups: Vec<Group> = Vec::new();
        for (index, relay) in config.relays.iter().enumerate() {
            match groups.iter_mut().find(|g| g.name == relay.group) {
                Some(group) => group.relays.push(index),
                None => groups.push(Group {
                    name: relay.group.clone(),
                    relays: vec![index],
                }),
            }
        }
        self.groups = groups;
        self.ids = config
            .relays
            .iter()
            .enumerate()
            .map(|(index, relay)| (relay.id.clone(), index))
            .collect();
        self.statuses = vec![RelayStatus::default(); n];
        self.rtts = vec![VecDeque::new(); n];
        self.group_run = None;
        self.config = config;
        self.connection = ConnectionState::Connecting;
        self.generation += 1;
    }

    /// Shows `config`, which the running engine was just given in place
    /// (`EngineHandle::reconfigure`): the connection, the log and each
    /// relay's status (by id) stay; events with old indices still queued
    /// are set aside until the engine's `Reconfigured`.
    pub fn reconfigure(&mut self, config: Arc<Config>) {
        let mut old: HashMap<String, (RelayStatus, VecDeque<f32>)> = self
            .config
            .relays
            .iter()
            .zip(self.statuses.drain(..).zip(self.rtts.drain(..)))
            .map(|(relay, kept)| (relay.id.clone(), kept))
            .collect();
        let connection = self.connection.clone();
        self.set_config(config);
        self.connection = connection;
        for (index, relay) in self.config.relays.iter().enumerate() {
            if let Some((status, rtts)) = old.remove(&relay.id) {
                self.statuses[index] = status;
                self.rtts[index] = rtts;
            }
        }
        self.reconfiguring = true;
    }

    /// Applies one engine event.
    pub fn apply(&mut self, event: Event) {
        if self.reconfiguring {
            match event {
                // Old indices: the statuses come again after `Reconfigured`.
                Event::Relay { .. } => return,
                // The entry names its relay by id: the log keeps it.
                Event::Finished { entry, .. }
                | Event::Late { entry, .. }
                | Event::Changed { entry, .. } => {
                    self.push_audit(entry);
                    return;
                }
                _ => {}
            }
        }
        match event {
            Event::Connection(state) => self.connection = state,
            Event::Relay { relay, status } => {
                if let Some(slot) = self.statuses.get_mut(relay) {
                    *slot = status;
                }
            }
            Event::Finished { relay, entry } => {
                if let (Some(rtt), Some(history)) = (entry.rtt, self.rtts.get_mut(relay)) {
                    history.push_back(rtt.as_secs_f32() * 1000.0);
                    if history.len() > RTT_KEPT {
                        history.pop_front();
                    }
                }
                if let Some(run) = &mut self.group_run
                    && run.waiting.remove(&relay)
                {
                    match (entry.outcome, entry.state) {
                        (Outcome::Confirmed, Some(state))
                            if Action::switch_to(state) == run.action =>
                        {
                            run.confirmed += 1
                        }
                        (Outcome::NoResponse, _) => run.no_response += 1,
                        _ => run.failed += 1,
                    }
                }
                self.push_audit(entry);
            }
            Event::Late { entry, .. } | Event::Changed { entry, .. } => self.push_audit(entry),
            // The status event that comes with it carries it.
            Event::Availability { .. } => {}
            // The store's log, read when this engine started: older than
            // anything reported since (see `engine_starting`).
            Event::History(entries) => {
                let room = AUDIT_KEPT.saturating_sub(self.audit.len());
                self.audit.extend(entries.into_iter().take(room));
            }
            Event::Warning(text) => self.warnings.push(text),
            // Logged by the engine; the window has nothing to add.
            Event::Ignored { .. } => {}
            // From here on events name relays by their new index.
            Event::Reconfigured(_) => self.reconfiguring = false,
        }
    }

    /// A new engine is starting. With a store it sends the store's log as
    /// `History`: the log shown starts over, so that it is the store's
    /// log once (never the old entries plus the same ones read again).
    pub fn engine_starting(&mut self, with_store: bool) {
        if with_store {
            self.audit.clear();
        }
    }

    /// The audit entries the activity panel shows for `filter` (matched,
    /// case-insensitively, against what it shows: the relay's name and id,
    /// the action, the outcome, the detail and who acted: "by alice", "at
    /// the device"), newest first.
    pub fn activity(&self, filter: &str) -> Vec<&AuditEntry> {
        let needle = filter.trim().to_lowercase();
        self.audit
            .iter()
            .filter(|e| needle.is_empty() || self.entry_matches(e, &needle))
            .collect()
    }

    /// The name the activity panel shows for an entry's relay (its id when
    /// the relay is no longer configured).
    pub fn relay_name<'a>(&'a self, entry: &'a AuditEntry) -> &'a str {
        self.relay_index(&entry.relay_id)
            .map(|i| self.config.relays[i].display_name())
            .unwrap_or(&entry.relay_id)
    }

    fn entry_matches(&self, entry: &AuditEntry, needle: &str) -> bool {
        let who = super::activity::who(entry);
        [
            self.relay_name(entry),
            entry.relay_id.as_str(),
            entry.outcome.code(),
            entry.action.as_str(),
            who.as_str(),
        ]
        .into_iter()
        .chain(entry.detail.as_deref())
        .any(|f| f.to_lowercase().contains(needle))
    }

    fn push_audit(&mut self, entry: AuditEntry) {
        self.audit.push_front(entry);
        self.audit.truncate(AUDIT_KEPT);
    }

    /// Time until an age or a countdown on screen changes its text by
    /// itself, when the next repaint is due; `None` when nothing on
    /// screen ever does.
    ///
    /// Ages are shown on the wall clock's whole seconds ([`whole_second`]),
    /// so every age on screen changes at the same instant: with thousands
    /// of answers at different sub-second phases the window still repaints
    /// at most once a second, on the second. Only the relays in `on_screen`
    /// count: a row off screen changes nothing the technician sees.
    pub fn next_tick(
        &self,
        now: SystemTime,
        on_screen: impl IntoIterator<Item = usize>,
    ) -> Option<Duration> {
        let shown = whole_second(now);
        let next_second = shown + Duration::from_secs(1);
        on_screen
            .into_iter()
            .filter_map(|relay| {
                let status = self.statuses.get(relay)?;
                // A countdown's text is read afresh on every repaint: on the
                // next whole second, like the ages.
                if status.is_pending() {
                    return Some(next_second);
                }
                let at = status.shown()?.at();
                let age = shown.duration_since(at).unwrap_or_default();
                // The age's text changes when it reaches its next whole
                // unit, at `changes`; it is shown from the first whole
                // second after that.
                let changes = at + age + crate::relay::age_changes_in(age);
                Some(round_up_to_second(changes).max(next_second))
            })
            .min()
            .map(|tick| tick.duration_since(now).unwrap_or_default())
    }

    /// Index of the relay with this id.
    pub fn relay_index(&self, id: &str) -> Option<usize> {
        self.ids.get(id).copied()
    }

    /// Whether `relay` matches the filter (name, id, group, topic;
    /// case-insensitive). `needle` must be lowercase.
    pub fn matches(&self, relay: usize, needle: &str) -> bool {
        if needle.is_empty() {
            return true;
        }
        let r = &self.config.relays[relay];
        [&r.name, &r.id, &r.group, &r.topic_label()]
            .iter()
            .any(|field| field.to_lowercase().contains(needle))
    }

    /// The rows to draw: group headings and the relays of open groups
    /// that match the filter (groups with no match are hidden).
    pub fn rows(&self, filter: &str, collapsed: &BTreeSet<String>) -> Vec<Row> {
        let needle = filter.trim().to_lowercase();
        let mut rows = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            let matching: Vec<usize> = group
                .relays
                .iter()
                .copied()
                .filter(|&r| self.matches(r, &needle))
                .collect();
            if matching.is_empty() {
                continue;
            }
            rows.push(Row::Group(g, matching.len()));
            if !collapsed.contains(&group.name) || !needle.is_empty() {
                rows.extend(matching.into_iter().map(Row::Relay));
            }
        }
        rows
    }

    /// Starts tracking a group action over `relays`.
    pub fn start_group_run(&mut self, group: &str, action: Action, relays: &[usize]) {
        self.group_run = Some(GroupRun {
            group: group.to_owned(),
            action,
            total: relays.len(),
            waiting: relays.iter().copied().collect(),
            confirmed: 0,
            no_response: 0,
            failed: 0,
        });
    }
}

/// The clock ages are shown on: `now` rounded down to the whole second,
/// so that all ages on screen change together, once a second at most
/// (see [`Model::next_tick`]).
pub fn whole_second(now: SystemTime) -> SystemTime {
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs())
}

/// `at`, or the next whole second after it.
fn round_up_to_second(at: SystemTime) -> SystemTime {
    let shown = whole_second(at);
    if shown == at {
        at
    } else {
        shown + Duration::from_secs(1)
    }
}

/// One line of the relay list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// Group heading: index into `groups`, and how many of its relays match.
    Group(usize, usize),
    /// A relay: index into `config.relays`.
    Relay(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;
    use crate::protocol::RelayState;
    use crate::relay::{Acknowledgement, Phase};

    fn model(n: usize) -> Model {
        let mut config = Config::new("mqtt://127.0.0.1:1883");
        for i in 0..n {
            config
                .relays
                .push(RelayConfig::new(&format!("r{i}"), &format!("t/{i}")));
        }
        Model::new(config)
    }

    fn acknowledged(at: SystemTime) -> RelayStatus {
        RelayStatus {
            last_acknowledged: Some(Acknowledgement {
                state: RelayState::On,
                requested: at,
                at,
                rtt: Duration::from_millis(1),
                late: false,
                restored: false,
                evidence: crate::outcome::Evidence::Correlated,
                operator: None,
            }),
            ..RelayStatus::default()
        }
    }

    /// A quarter past a whole second.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000_250)
    }

    /// 1,000 answers at random sub-second phases, all under a minute old
    /// and on screen: the next repaint is at the next whole second, not
    /// at the nearest of a thousand phases (which kept the window
    /// repainting many times a second).
    #[test]
    fn ages_at_any_phase_tick_on_the_shared_second() {
        let mut model = model(1000);
        for status in &mut model.statuses {
            let age = Duration::from_millis(rand::random_range(0..50_000));
            *status = acknowledged(now() - age);
        }
        assert_eq!(
            model.next_tick(now(), 0..1000),
            Some(Duration::from_millis(750))
        );
    }

    /// Rows off screen do not count: fresh answers below the viewport
    /// leave the next repaint to the on-screen age (two hours old: its
    /// text changes when it is three).
    #[test]
    fn only_relays_on_screen_count() {
        let mut model = model(1000);
        for status in &mut model.statuses {
            *status = acknowledged(now() - Duration::from_millis(300));
        }
        model.statuses[7] = acknowledged(now() - Duration::from_secs(7300));
        // "2 h ago" until it is 3 h old, 3,500 s from now; shown from the
        // whole second after.
        assert_eq!(
            model.next_tick(now(), [7]),
            Some(Duration::from_millis(3_500_750))
        );
        assert_eq!(model.next_tick(now(), []), None);
        // Never acknowledged, idle: nothing ever changes by itself.
        model.statuses[999] = RelayStatus::default();
        assert_eq!(model.next_tick(now(), [999]), None);
    }

    /// Table: when each kind of text on screen next changes, always on a
    /// whole second.
    #[test]
    fn next_tick_table() {
        let second = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s);
        let cases: [(&str, RelayStatus, u64); 6] = [
            // An age of 12.25 s reads "12 s ago" until the next second.
            (
                "seconds",
                acknowledged(now() - Duration::from_millis(12_250)),
                750,
            ),
            // Answered 0.1 s ago (after the whole second the ages read):
            // "just now" at 1,000,001 too; "1 s ago" from 1,000,002.
            (
                "this second",
                acknowledged(now() - Duration::from_millis(100)),
                1_750,
            ),
            // 59.5 s reads "59 s ago"; "1 min ago" from the next second.
            (
                "a minute",
                acknowledged(now() - Duration::from_millis(59_500)),
                750,
            ),
            // 61.25 s: "1 min ago" until 120 s, 59 shown seconds on.
            (
                "minutes",
                acknowledged(now() - Duration::from_millis(61_250)),
                58_750,
            ),
            (
                "countdown",
                RelayStatus {
                    phase: Phase::Pending {
                        requested: crate::protocol::Action::On,
                        since: now(),
                        deadline: now() + Duration::from_secs(3),
                    },
                    last_acknowledged: None,
                    ..RelayStatus::default()
                },
                750,
            ),
            (
                "days",
                acknowledged(second(0) - Duration::from_secs(3 * 86_400 + 10)),
                (86_400 - 10) * 1000 - 250,
            ),
        ];
        for (what, status, millis) in cases {
            let mut model = model(1);
            model.statuses[0] = status;
            assert_eq!(
                model.next_tick(now(), [0]),
                Some(Duration::from_millis(millis)),
                "{what}"
            );
        }
    }

    /// The clock ages read is the whole second.
    #[test]
    fn whole_second_rounds_down() {
        assert_eq!(
            whole_second(now()),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
        );
        assert_eq!(whole_second(whole_second(now())), whole_second(now()));
    }
}
