//! The store at start-up: opened (and read) off the engine's thread while
//! the connection is made, and the records made meanwhile kept until it is
//! ready.

use std::path::Path;

use super::Event;
use super::task::Engine;
use crate::relay::Acknowledgement;
use crate::store::{AuditEntry, Record, Store, StoreError, StoreWriter, StoredAck};

/// What the store held at start-up.
pub(super) struct Loaded {
    /// The open store, to hand to a writer.
    pub store: Store,
    /// Set when a corrupted file was moved aside.
    pub warning: Option<String>,
    /// Every relay's last acknowledged state.
    pub acks: Vec<StoredAck>,
    /// The newest audit entries, newest first.
    pub history: Vec<AuditEntry>,
}

pub(super) fn load_store(dir: &Path, history: usize) -> Result<Loaded, StoreError> {
    let (store, warning) = Store::open_in(dir)?;
    let acks = store.last_acknowledged()?;
    let history = if history > 0 {
        store.recent_audit(history)?
    } else {
        Vec::new()
    };
    Ok(Loaded {
        store,
        warning,
        acks,
        history,
    })
}

/// Where records go.
pub(super) enum StoreSlot {
    /// No store (none configured, or it could not be opened).
    Off,
    /// Opening; records wait here.
    Loading(Vec<Record>),
    /// Writing.
    Ready(StoreWriter),
}

impl Engine {
    /// Applies what the store held (restored states, history) and starts
    /// writing, including records made while it loaded.
    pub(super) fn store_loaded(
        &mut self,
        loaded: Result<Result<Loaded, crate::store::StoreError>, tokio::task::JoinError>,
    ) {
        let buffered = match std::mem::replace(&mut self.store, StoreSlot::Off) {
            StoreSlot::Loading(records) => records,
            _ => Vec::new(),
        };
        match loaded {
            Ok(Ok(loaded)) => {
                if let Some(warning) = loaded.warning {
                    self.emit(Event::Warning(warning));
                }
                for ack in loaded.acks {
                    let Some(index) = self.config.relays.iter().position(|r| r.id == ack.relay_id)
                    else {
                        continue;
                    };
                    // Never over a state confirmed in this session.
                    if self.statuses[index].last_acknowledged.is_none() {
                        self.statuses[index].last_acknowledged = Some(Acknowledgement {
                            state: ack.state,
                            evidence: ack.evidence,
                            requested: ack.requested,
                            at: ack.at,
                            rtt: ack.rtt,
                            late: ack.late,
                            restored: true,
                        });
                        self.emit_status(index);
                    }
                }
                self.emit(Event::History(loaded.history));
                let events = self.events.clone();
                let wake = self.wake.clone();
                let writer = StoreWriter::spawn(loaded.store, move |message| {
                    let _ = events.send(Event::Warning(message));
                    wake();
                });
                for record in buffered {
                    writer.send(record);
                }
                self.store = StoreSlot::Ready(writer);
            }
            Ok(Err(e)) => {
                tracing::error!("{e}");
                self.emit(Event::Warning(format!(
                    "{e}. Nothing will be saved this session: states and the audit log are not kept."
                )));
            }
            Err(e) => tracing::error!("store task failed: {e}"),
        }
    }
}
