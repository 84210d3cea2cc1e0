//! The store at start-up: opened (and read) by the store's writer thread
//! while the connection is made; the records made meanwhile wait in the
//! writer's queue.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::Event;
use super::task::Engine;
use crate::relay::{Acknowledgement, DeviceReport};
use crate::store::{AuditEntry, Store, StoreError, StoreWriter, StoredAck, StoredReport};

/// What the store held at start-up.
pub(super) struct Loaded {
    /// Set when a corrupted file was moved aside.
    pub warning: Option<String>,
    /// Every relay's last acknowledged state.
    pub acks: Vec<StoredAck>,
    /// Every relay's latest report from its device.
    pub reports: Vec<StoredReport>,
    /// The newest audit entries, newest first.
    pub history: Vec<AuditEntry>,
}

/// Opens the store in `dir` and reads what the engine shows at start
/// (on the store's writer thread, which keeps the store to write).
pub(super) fn load_store(dir: &Path, history: usize) -> Result<(Store, Loaded), StoreError> {
    let (store, warning) = Store::open_in(dir)?;
    let acks = store.last_acknowledged()?;
    let reports = store.last_reports()?;
    let history = if history > 0 {
        store.recent_audit(history)?
    } else {
        Vec::new()
    };
    Ok((
        store,
        Loaded {
            warning,
            acks,
            reports,
            history,
        },
    ))
}

/// Where records go.
pub(super) enum StoreSlot {
    /// No store (none configured, or it could not be opened).
    Off,
    /// The writer (which may still be opening the store: records wait in
    /// its queue).
    Ready(StoreWriter),
}

impl Engine {
    /// What the store's writer calls when writes start failing and work
    /// again: a warning for the technician.
    pub(super) fn store_trouble(&self) -> impl Fn(String) + Send + 'static {
        let events = self.events.clone();
        let wake = self.wake.clone();
        move |message| {
            let _ = events.send(Event::Warning(message));
            wake();
        }
    }

    /// Applies what the store held (restored states, history); records
    /// made meanwhile are already queued to the writer.
    pub(super) fn store_loaded(
        &mut self,
        loaded: Result<Result<Loaded, StoreError>, tokio::sync::oneshot::error::RecvError>,
    ) {
        match loaded {
            Ok(Ok(loaded)) => self.restore(loaded),
            Ok(Err(e)) => {
                tracing::error!("{e}");
                // The writer's thread has ended: nothing it was sent is kept.
                self.store = StoreSlot::Off;
                self.emit(Event::Warning(format!(
                    "{e}. Nothing will be saved this session: states and the audit log are not kept."
                )));
            }
            Err(_) => {
                tracing::error!("the store's thread ended while opening the store");
                self.store = StoreSlot::Off;
            }
        }
    }

    /// Shows the restored states and the history, never over what this
    /// session has heard.
    fn restore(&mut self, loaded: Loaded) {
        if let Some(warning) = loaded.warning {
            self.emit(Event::Warning(warning));
        }
        let index: HashMap<&str, usize> = self
            .config
            .relays
            .iter()
            .enumerate()
            .map(|(index, relay)| (relay.id.as_str(), index))
            .collect();
        let mut changed = BTreeSet::new();
        for ack in loaded.acks {
            let Some(&index) = index.get(ack.relay_id.as_str()) else {
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
                    operator: ack.operator,
                });
                // A retained message heard before the store was
                // read that says the same adds nothing but doubt
                // about its time: as if read in the other order.
                let status = &mut self.statuses[index];
                if status
                    .device_report
                    .as_ref()
                    .is_some_and(|heard| heard.retained && heard.state == ack.state)
                {
                    status.device_report = None;
                }
                changed.insert(index);
            }
        }
        for report in loaded.reports {
            let Some(&index) = index.get(report.relay_id.as_str()) else {
                continue;
            };
            // Never over what the device said in this session, but
            // over a retained message that says the same: the
            // store knows when it was said.
            let replace = match &self.statuses[index].device_report {
                None => true,
                Some(heard) => heard.retained && heard.state == report.state,
            };
            if replace {
                self.statuses[index].device_report = Some(DeviceReport {
                    state: report.state,
                    at: report.at,
                    source: report.source,
                    retained: false,
                    restored: true,
                });
                changed.insert(index);
            }
        }
        for index in changed {
            self.emit_status(index);
        }
        self.emit(Event::History(loaded.history));
    }
}
