//! Packet-id bookkeeping for QoS 1 publishes.

/// Which request each QoS 1 publish on the wire is. rumqttc reports a
/// publish's packet id only as it goes out (in the order the publishes were
/// handed to the client), and the broker's PUBACK names only the packet id:
/// this pairs them, so a refusal (an ACL) ends the right request at once.
#[derive(Debug)]
pub struct PacketIds<K> {
    /// Handed to the client, not yet seen going out, oldest first.
    unsent: std::collections::VecDeque<K>,
    /// On the wire, awaiting PUBACK, by packet id.
    by_pkid: std::collections::HashMap<u16, K>,
}

impl<K> Default for PacketIds<K> {
    fn default() -> Self {
        PacketIds {
            unsent: std::collections::VecDeque::new(),
            by_pkid: std::collections::HashMap::new(),
        }
    }
}

impl<K> PacketIds<K> {
    /// A publish for `key` was handed to the client.
    pub fn handed_over(&mut self, key: K) {
        self.unsent.push_back(key);
    }

    /// The client sent the oldest handed-over publish under `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(key) = self.unsent.pop_front() {
            self.by_pkid.insert(pkid, key);
        }
    }

    /// The broker acknowledged (or refused) `pkid`: whose publish it was.
    pub fn acknowledged(&mut self, pkid: u16) -> Option<K> {
        self.by_pkid.remove(&pkid)
    }

    /// Publishes handed over and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.unsent.len() + self.by_pkid.len()
    }

    /// The connection is gone: packet ids of the old one mean nothing.
    pub fn clear(&mut self) {
        self.unsent.clear();
        self.by_pkid.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packet ids pair with requests in hand-over order; a PUBACK frees
    /// its slot once; unknown ids and a cleared table give nothing.
    #[test]
    fn packet_ids_pair_in_order() {
        let mut ids = PacketIds::default();
        ids.handed_over("a");
        ids.handed_over("b");
        assert_eq!(ids.unacknowledged(), 2);
        ids.sent(7);
        ids.sent(8);
        assert_eq!(ids.acknowledged(8), Some("b"));
        assert_eq!(ids.acknowledged(8), None);
        assert_eq!(ids.unacknowledged(), 1);
        ids.sent(9); // nothing handed over: ignored
        assert_eq!(ids.acknowledged(9), None);
        ids.clear();
        assert_eq!(ids.acknowledged(7), None);
        assert_eq!(ids.unacknowledged(), 0);
    }
}
