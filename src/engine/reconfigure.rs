//! A new configuration applied to the running engine, on the same
//! connection: everything indexed by relay position follows its relay, by
//! id, to the new positions; the requests of removed relays end at once.
//!
//! Only the relays may change here ([`super::EngineHandle::reconfigure`]
//! refuses a changed `[broker]` or `[panel]`), so the client, its id, the
//! response topic and its subscription all stay. The kinds' topics (the
//! relays' report topics, Shelly's reply topic) follow the relays: the
//! ones the new list needs are subscribed, the ones it no longer needs
//! unsubscribed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::kinds::{PanelTopics, Routes};
use super::task::Engine;
use super::{Event, decide};
use crate::config::{Config, RelayConfig};
use crate::relay::{Availability, RelayStatus};

/// Where each relay of `old` is in `new`, by id: `moves[i]` is the new
/// index of `old[i]`, `None` when `new` has no relay with its id. Ids are
/// unique in a valid configuration.
pub(super) fn relay_moves(old: &[RelayConfig], new: &[RelayConfig]) -> Vec<Option<usize>> {
    let positions: HashMap<&str, usize> = new
        .iter()
        .enumerate()
        .map(|(index, relay)| (relay.id.as_str(), index))
        .collect();
    old.iter()
        .map(|relay| positions.get(relay.id.as_str()).copied())
        .collect()
}

impl Engine {
    /// Replaces the configuration (already validated, same broker and
    /// panel sections). Events come in this order: the ends of removed
    /// relays' requests (old indices), then [`Event::Reconfigured`], then
    /// one [`Event::Relay`] per relay of the new configuration.
    pub(super) fn reconfigure(&mut self, config: Arc<Config>) {
        let moves = relay_moves(&self.config.relays, &config.relays);
        let now = SystemTime::now();
        for (id, request) in self.pending.renumber(&moves) {
            // Still waiting in the outbox: never sent, so nothing can come
            // of it. Otherwise the device may have it.
            let sent = !self.outbox.take(&id);
            let context = Self::request(
                &self.config,
                &self.operator,
                request.relay,
                request.action,
                Some(id),
            );
            tracing::info!("{}: removed with a request in flight", context.relay_id);
            let ended = decide::removed(&context, sent, now);
            self.apply(request.relay, ended, false);
        }
        self.outbox.renumber(&moves);
        let mut statuses = vec![RelayStatus::default(); config.relays.len()];
        // What each last-will topic said, from the relays that keep theirs:
        // a new relay of a device already heard shares it (the broker
        // sends a retained will only to a new subscription).
        let mut heard: HashMap<String, Availability> = HashMap::new();
        for ((status, new), old) in std::mem::take(&mut self.statuses)
            .into_iter()
            .zip(&moves)
            .zip(&self.config.relays)
        {
            let Some(new) = *new else { continue };
            let topic = config.relays[new].availability_topic();
            let same_will = topic == old.availability_topic();
            if same_will
                && let Some(topic) = topic
                && status.availability != Availability::Unknown
            {
                heard.insert(topic, status.availability);
            }
            statuses[new] = status;
            if !same_will {
                // Another device's last will: nothing heard from it yet.
                statuses[new].availability = Availability::Unknown;
            }
        }
        for (status, relay) in statuses.iter_mut().zip(&config.relays) {
            if status.availability == Availability::Unknown
                && let Some(known) = relay.availability_topic().and_then(|t| heard.get(&t))
            {
                status.availability = *known;
            }
        }
        self.statuses = statuses;
        tracing::info!(
            "reconfigured: {} relay(s), {} kept",
            config.relays.len(),
            moves.iter().flatten().count()
        );
        self.config = config;
        let routes = Routes::of(
            &self.config,
            &PanelTopics {
                response_topic: &self.response_topic,
                rpc_src: &self.rpc_src,
            },
        );
        self.reroute(routes);
        self.emit(Event::Reconfigured(self.config.clone()));
        for relay in 0..self.statuses.len() {
            self.emit_status(relay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relays(ids: &[&str]) -> Vec<RelayConfig> {
        ids.iter()
            .map(|id| RelayConfig::new(id, &format!("t/{id}")))
            .collect()
    }

    /// Relays are followed by id, whatever else changed; removed ones have
    /// no new index.
    #[test]
    fn relays_are_followed_by_id() {
        struct Case {
            old: &'static [&'static str],
            new: &'static [&'static str],
            moves: &'static [Option<usize>],
        }
        let table = [
            Case {
                old: &["a", "b"],
                new: &["a", "b"],
                moves: &[Some(0), Some(1)],
            },
            Case {
                old: &["a", "b"],
                new: &["new", "a", "b"],
                moves: &[Some(1), Some(2)],
            },
            Case {
                old: &["a", "b", "c"],
                new: &["c", "a"],
                moves: &[Some(1), None, Some(0)],
            },
            Case {
                old: &["a"],
                new: &[],
                moves: &[None],
            },
            Case {
                old: &[],
                new: &["a"],
                moves: &[],
            },
        ];
        for Case {
            old,
            new,
            moves: expected,
        } in table
        {
            assert_eq!(
                relay_moves(&relays(old), &relays(new)),
                expected,
                "{old:?} -> {new:?}"
            );
        }
        // A renamed relay (same id) is the same relay.
        let mut renamed = relays(&["a"]);
        renamed[0].name = "Pump".into();
        renamed[0].request_topic = "elsewhere".into();
        assert_eq!(relay_moves(&relays(&["a"]), &renamed), [Some(0)]);
    }
}
