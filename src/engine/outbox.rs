//! Requests waiting to be handed to the MQTT client, and flow control.
//!
//! Invariant: a request is handed to the client only while fewer than
//! `window` are unacknowledged, so the client writes it to the socket at
//! once (it never queues it behind a stalled broker), and only before its
//! deadline: a request that could not be delivered in time is never sent
//! at all (Message Expiry counts only from the broker's receipt).

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use crate::mqtt::PacketIds;
use crate::protocol::{Action, CorrelationId};

/// A request not yet handed to the client.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    /// Its correlation id (its key in the correlation table).
    pub id: CorrelationId,
    /// Index of the relay in the configuration.
    pub relay: usize,
    /// What is asked.
    pub action: Action,
    /// When it ends as "no response"; never handed over after it.
    pub deadline: Instant,
}

/// The queue, the broker's window and the packets on the wire.
#[derive(Default)]
pub(super) struct Outbox {
    /// Waiting, oldest first.
    queue: VecDeque<Held>,
    /// Correlation ids in `queue`, to tell at a deadline that a request
    /// was never sent.
    held: HashSet<CorrelationId>,
    /// Most unacknowledged publishes at once: the broker's Receive
    /// Maximum, capped by ours (0 while disconnected).
    pub window: usize,
    /// Requests handed to the client and not yet acknowledged.
    pub packets: PacketIds<CorrelationId>,
}

impl Outbox {
    pub fn hold(&mut self, held: Held) {
        self.held.insert(held.id);
        self.queue.push_back(held);
    }

    /// Puts back a request taken with [`Outbox::next`], first in line.
    pub fn hold_again(&mut self, held: Held) {
        self.held.insert(held.id);
        self.queue.push_front(held);
    }

    /// The next request that may be handed over now, if the window allows.
    pub fn next(&mut self) -> Option<Held> {
        if self.packets.unacknowledged() >= self.window {
            return None;
        }
        let held = self.queue.pop_front()?;
        self.held.remove(&held.id);
        Some(held)
    }

    /// Whether the request is still waiting to be handed to the client
    /// (so nothing heard now can be the device's reaction to it).
    pub fn is_waiting(&self, id: &CorrelationId) -> bool {
        self.held.contains(id)
    }

    /// Takes a request out of the queue if it is still there.
    pub fn take(&mut self, id: &CorrelationId) -> bool {
        if !self.held.remove(id) {
            return false;
        }
        self.queue.retain(|h| h.id != *id);
        true
    }

    /// The relays were renumbered: `moves[old]` is the new index of the
    /// relay at `old`. Waiting requests follow their relay, in the same
    /// order; those of a removed relay (`None`, or past the end) are
    /// dropped (the caller ends them first: [`Outbox::take`] tells it
    /// which were never sent).
    pub fn renumber(&mut self, moves: &[Option<usize>]) {
        let held = &mut self.held;
        self.queue.retain_mut(
            |waiting| match moves.get(waiting.relay).copied().flatten() {
                Some(relay) => {
                    waiting.relay = relay;
                    true
                }
                None => {
                    held.remove(&waiting.id);
                    false
                }
            },
        );
    }

    /// The connection is gone: everything on the wire is forgotten and the
    /// held requests are returned (they were never sent).
    pub fn disconnected(&mut self) -> Vec<Held> {
        self.window = 0;
        self.packets.clear();
        self.held.clear();
        self.queue.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn held(n: u8) -> Held {
        Held {
            id: CorrelationId([n; 16]),
            relay: n as usize,
            action: Action::On,
            deadline: Instant::now() + Duration::from_secs(3),
        }
    }

    /// Nothing goes out beyond the window; an acknowledgement makes room;
    /// a taken or disconnected request never goes out.
    #[test]
    fn window_bounds_what_is_handed_over() {
        let mut outbox = Outbox {
            window: 1,
            ..Outbox::default()
        };
        for n in 1..=3 {
            outbox.hold(held(n));
        }
        let first = outbox.next().unwrap();
        outbox.packets.handed_over(first.id);
        assert!(outbox.next().is_none(), "window full");
        outbox.packets.sent(1);
        assert_eq!(outbox.packets.acknowledged(1), Some(first.id));
        assert!(outbox.take(&CorrelationId([2; 16])));
        assert!(!outbox.take(&CorrelationId([2; 16])));
        let third = outbox.next().unwrap();
        assert_eq!(third.relay, 3);
        outbox.hold_again(third);
        assert_eq!(outbox.disconnected().len(), 1);
        assert!(outbox.next().is_none(), "no window while disconnected");
    }

    /// Renumbering moves waiting requests to their relay's new index, in
    /// the same order, and drops those of removed relays.
    #[test]
    fn renumber_follows_relays() {
        let mut outbox = Outbox {
            window: 10,
            ..Outbox::default()
        };
        for n in 0..3 {
            outbox.hold(held(n));
        }
        // 0 → 1, 1 removed, 2 → 0.
        outbox.renumber(&[Some(1), None, Some(0)]);
        assert!(!outbox.take(&CorrelationId([1; 16])), "dropped");
        let order: Vec<(u8, usize)> = std::iter::from_fn(|| outbox.next())
            .map(|h| (h.id.0[0], h.relay))
            .collect();
        assert_eq!(order, [(0, 1), (2, 0)]);
    }
}
