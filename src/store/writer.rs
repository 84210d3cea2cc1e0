//! Writing to the store off the engine's thread: batched transactions,
//! and nothing lost when a write fails (kept in memory and retried).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{AuditEntry, Record, Store, StoredAck, StoredReport};

/// Writes records on a thread of its own, batching whatever has queued up
/// into one transaction. Dropping it (or [`StoreWriter::close`]) flushes.
///
/// A write that fails (disk full, database busy) loses nothing: the records
/// stay in memory and are written again every [`RETRY_EVERY`], together
/// with the ones that arrive meanwhile. The caller hears once when writes
/// start failing and once when they succeed again, not once per batch.
/// What waits in memory is bounded: a relay's acknowledgements fold into
/// the newest-requested one, and beyond [`MAX_WAITING`] audit entries the
/// oldest are dropped (and counted in the log).
pub struct StoreWriter {
    /// Records to write; `None` once closed.
    tx: Option<mpsc::Sender<Record>>,
    /// The writer thread, joined on close so nothing queued is lost.
    thread: Option<JoinHandle<()>>,
}

/// Pause between attempts while writes fail.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Most audit entries kept in memory while writes fail.
pub const MAX_WAITING: usize = 100_000;
/// Attempts at closing time for records that still could not be written.
const ATTEMPTS_AT_CLOSE: usize = 2;

/// Records waiting to be written.
#[derive(Default)]
struct Waiting {
    /// The newest-requested acknowledgement of each relay.
    acks: std::collections::HashMap<String, StoredAck>,
    /// The newest report from each relay's device.
    reports: std::collections::HashMap<String, StoredReport>,
    /// Audit entries, oldest first.
    audit: std::collections::VecDeque<AuditEntry>,
    /// Audit entries dropped because too many waited.
    dropped: u64,
}

impl Waiting {
    fn push(&mut self, record: Record) {
        match record {
            Record::Ack(ack) => match self.acks.get(&ack.relay_id) {
                Some(known) if known.requested > ack.requested => {}
                _ => {
                    self.acks.insert(ack.relay_id.clone(), ack);
                }
            },
            Record::Report(report) => match self.reports.get(&report.relay_id) {
                Some(known) if known.at > report.at => {}
                _ => {
                    self.reports.insert(report.relay_id.clone(), report);
                }
            },
            Record::Audit(entry) => {
                self.audit.push_back(entry);
                if self.audit.len() > MAX_WAITING {
                    self.audit.pop_front();
                    self.dropped += 1;
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.acks.len() + self.reports.len() + self.audit.len()
    }

    fn records(&self) -> Vec<Record> {
        let acks = self.acks.values().cloned().map(Record::Ack);
        let reports = self.reports.values().cloned().map(Record::Report);
        let audit = self.audit.iter().cloned().map(Record::Audit);
        acks.chain(reports).chain(audit).collect()
    }
}

impl StoreWriter {
    /// Starts the writer; `on_error` hears when writes start failing (disk
    /// full…) and when they work again.
    pub fn spawn(store: Store, on_error: impl Fn(String) + Send + 'static) -> Self {
        let open = move || Ok::<_, std::convert::Infallible>((store, ()));
        StoreWriter::spawn_opening(open, on_error).0
    }

    /// Starts the writer's thread, which first runs `open` (opening and
    /// reading the store off the caller's thread: one thread for both,
    /// where there were two) and hands back what it read; then it writes.
    /// Records sent meanwhile wait in the queue. When `open` fails, the
    /// thread ends and what is sent is dropped.
    pub fn spawn_opening<T: Send + 'static, E: Send + 'static>(
        open: impl FnOnce() -> Result<(Store, T), E> + Send + 'static,
        on_error: impl Fn(String) + Send + 'static,
    ) -> (Self, tokio::sync::oneshot::Receiver<Result<T, E>>) {
        let (tx, rx) = mpsc::channel::<Record>();
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("relay-panel-store".into())
            .spawn(move || match open() {
                Ok((store, read)) => {
                    let _ = opened_tx.send(Ok(read));
                    write_until_closed(store, &rx, &on_error);
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })
            .ok();
        let writer = StoreWriter {
            tx: Some(tx),
            thread,
        };
        (writer, opened)
    }

    /// Queues a record; never blocks.
    pub fn send(&self, record: Record) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(record);
        }
    }

    /// Writes everything queued and stops the thread.
    pub fn close(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer's loop: batches whatever has queued into one transaction,
/// keeps what failed and tries again every [`RETRY_EVERY`], until the
/// queue closes (then a last attempt or two).
fn write_until_closed(mut store: Store, rx: &mpsc::Receiver<Record>, on_error: &impl Fn(String)) {
    let mut waiting = Waiting::default();
    let mut failing = false;
    let mut open = true;
    while open {
        let first = if failing {
            rx.recv_timeout(RETRY_EVERY)
        } else {
            rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        match first {
            Ok(record) => waiting.push(record),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        while let Ok(more) = rx.try_recv() {
            waiting.push(more);
            if waiting.len() >= 10_000 {
                break;
            }
        }
        let attempts = if open { 1 } else { ATTEMPTS_AT_CLOSE };
        for attempt in 0..attempts {
            if waiting.len() == 0 {
                break;
            }
            if attempt > 0 {
                std::thread::sleep(RETRY_EVERY / 4);
            }
            match store.write(&waiting.records()) {
                Ok(()) => {
                    if failing {
                        let saved = waiting.len();
                        tracing::info!("the store is writing again");
                        on_error(format!(
                            "the store is writing again: the {saved} record(s) that waited are saved"
                        ));
                        failing = false;
                    }
                    if waiting.dropped > 0 {
                        tracing::error!(
                            "{} audit entries were dropped while the store could not be written",
                            waiting.dropped
                        );
                    }
                    waiting = Waiting::default();
                }
                Err(e) => {
                    tracing::error!("{e}");
                    if !failing {
                        on_error(format!(
                            "could not save {} record(s) to the store: {e}. They are kept in memory \
                             and written again every {} s; the window still shows every confirmed state",
                            waiting.len(),
                            RETRY_EVERY.as_secs()
                        ));
                        failing = true;
                    }
                }
            }
        }
    }
    if waiting.len() > 0 {
        tracing::error!(
            "closing with {} record(s) that could not be saved to the store",
            waiting.len()
        );
    }
}
