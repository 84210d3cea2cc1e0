//! What the panel shows, fed by engine events. No drawing, no I/O.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use std::sync::Arc;

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
    pub fn set_config(&mut self, config: Config) {
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
        self.config = Arc::new(config);
        self.connection = ConnectionState::Connecting;
        self.generation += 1;
    }

    /// Shows `config`, which the running engine was just given in place
    /// (`EngineHandle::reconfigure`): the connection, the log and each
    /// relay's status (by id) stay; events with old indices still queued
    /// are set aside until the engine's `Reconfigured`.
    pub fn reconfigure(&mut self, config: Config) {
        let old: HashMap<String, (RelayStatus, VecDeque<f32>)> = self
            .config
            .relays
            .iter()
            .zip(self.statuses.drain(..).zip(self.rtts.drain(..)))
            .map(|(relay, kept)| (relay.id.clone(), kept))
            .collect();
        let connection = self.connection.clone();
        self.set_config(config);
        self.connection = connection;
        let mut old = old;
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
                Event::Finished { entry, .. } | Event::Late { entry, .. } => {
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
            Event::Late { entry, .. } => self.push_audit(entry),
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
    /// the action, the outcome, the detail and the operator), newest first.
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
        [
            self.relay_name(entry),
            entry.relay_id.as_str(),
            entry.outcome.code(),
            entry.action.as_str(),
            entry.operator.as_str(),
        ]
        .into_iter()
        .chain(entry.detail.as_deref())
        .any(|f| f.to_lowercase().contains(needle))
    }

    fn push_audit(&mut self, entry: AuditEntry) {
        self.audit.push_front(entry);
        self.audit.truncate(AUDIT_KEPT);
    }

    /// Time until some age or countdown text changes by itself.
    pub fn next_tick(&self, now: std::time::SystemTime) -> Option<std::time::Duration> {
        self.statuses
            .iter()
            .filter_map(|s| {
                if s.is_pending() {
                    return Some(std::time::Duration::from_secs(1));
                }
                let ack = s.last_acknowledged?;
                Some(crate::relay::age_changes_in(
                    now.duration_since(ack.at).unwrap_or_default(),
                ))
            })
            .min()
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
        [&r.name, &r.id, &r.group, &r.request_topic]
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

/// One line of the relay list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// Group heading: index into `groups`, and how many of its relays match.
    Group(usize, usize),
    /// A relay: index into `config.relays`.
    Relay(usize),
}
