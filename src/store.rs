//! Durable memory: the last acknowledged state of each relay and the audit
//! log, in one SQLite file (WAL journal: a crash loses at most the last
//! unflushed batch and never corrupts what was stored).
//!
//! A file that is not a readable database is moved aside (renamed with a
//! `.corrupt-<time>` suffix) and a new one started, with a warning — never
//! a crash, and the old bytes stay for inspection.
//!
//! Writes go through [`StoreWriter`], a thread that batches records into
//! transactions, so the engine never waits for the disk.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::outcome::Outcome;
use crate::protocol::{Action, RelayState};

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "relay-panel.sqlite";

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory could not be created or the file opened.
    #[error("cannot open the store {path}: {message}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong and what to do.
        message: String,
    },
    /// Reading or writing failed.
    #[error("store {path}: {source}")]
    Sql {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

/// A relay's last acknowledged state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAck {
    /// The relay.
    pub relay_id: String,
    /// The confirmed state.
    pub state: RelayState,
    /// When the request it answers was sent: a stored state is replaced
    /// only by one requested later (answers overtake each other).
    pub requested: SystemTime,
    /// When the answer arrived.
    pub at: SystemTime,
    /// Round trip of that request.
    pub rtt: Duration,
    /// Whether the answer came after its request had ended.
    pub late: bool,
}

/// One line of the audit log: a request and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When the request ended (unix milliseconds in JSON).
    #[serde(serialize_with = "serialize_time")]
    pub at: SystemTime,
    /// The relay.
    pub relay_id: String,
    /// What was asked.
    pub action: Action,
    /// How it ended (stored as its stable code).
    pub outcome: Outcome,
    /// The state the device reported, when it reported one.
    pub state: Option<RelayState>,
    /// Round trip, when the device answered.
    #[serde(serialize_with = "serialize_rtt")]
    pub rtt: Option<Duration>,
    /// The device's text (device errors) or the reason (not sent).
    pub detail: Option<String>,
    /// Who asked.
    pub operator: String,
    /// Correlation data of the request (hex), to match it with the device's logs.
    pub correlation: Option<String>,
}

fn serialize_time<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(to_millis(*at))
}

fn serialize_rtt<S: serde::Serializer>(rtt: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match rtt {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => s.serialize_none(),
    }
}

/// Something to write.
#[derive(Debug, Clone)]
pub enum Record {
    /// Replace a relay's last acknowledged state.
    Ack(StoredAck),
    /// Append to the audit log.
    Audit(AuditEntry),
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn to_millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS last_ack (
    relay_id TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    rtt_us   INTEGER NOT NULL,
    late     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id       INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,
    relay_id TEXT NOT NULL,
    action   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    state    TEXT,
    rtt_us   INTEGER,
    detail   TEXT,
    operator TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_relay ON audit (relay_id, id);
";

/// Columns added after the first release of the schema. Rows written before
/// `requested_ms` existed read it as their `at_ms`.
const MIGRATIONS: &[&str] = &[
    "ALTER TABLE audit ADD COLUMN correlation TEXT",
    "ALTER TABLE last_ack ADD COLUMN requested_ms INTEGER",
];

impl Store {
    /// Opens (or creates) the store in `dir`. Returns a warning when a
    /// corrupted file had to be moved aside.
    pub fn open_in(dir: &Path) -> Result<(Store, Option<String>), StoreError> {
        Store::open(&dir.join(STORE_FILE))
    }

    /// Opens (or creates) the store at `path`; see [`Store::open_in`].
    pub fn open(path: &Path) -> Result<(Store, Option<String>), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                message: format!(
                    "cannot create directory {}: {e}; set RELAY_PANEL_DATA_DIR or --data-dir to a writable directory",
                    dir.display()
                ),
            })?;
        }
        match Store::try_open(path) {
            Ok(store) => Ok((store, None)),
            Err(e) if is_corruption(&e) => {
                let aside = set_aside(path).map_err(|io| StoreError::Open {
                    path: path.to_owned(),
                    message: format!("it is corrupted ({e}) and could not be moved aside: {io}"),
                })?;
                let warning = format!(
                    "the store {} was corrupted ({e}); it was moved to {} and a new one started",
                    path.display(),
                    aside.display()
                );
                tracing::warn!("{warning}");
                let store = Store::try_open(path).map_err(|source| StoreError::Sql {
                    path: path.to_owned(),
                    source,
                })?;
                Ok((store, Some(warning)))
            }
            Err(e) => Err(StoreError::Open {
                path: path.to_owned(),
                message: match e.sqlite_error_code() {
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
                        "it is locked by another program ({e}); close it or use another --data-dir"
                    ),
                    Some(
                        ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly,
                    ) => {
                        format!("{e}; check the permissions of the data directory")
                    }
                    _ => e.to_string(),
                },
            }),
        }
    }

    fn try_open(path: &Path) -> Result<Store, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(2))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Keep the WAL file when the last connection closes: a one-shot
        // `relayctl set` then costs no checkpoint and no fsync at exit.
        // Automatic checkpoints (every 1000 pages) still bound its size, and
        // the next open reads it back, so nothing committed is lost.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        // Reading the schema fails with NOTADB / CORRUPT on a damaged file.
        // (No full `quick_check`: it reads the whole file, and the audit log
        // only grows; damage deeper in surfaces as an error on access.)
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        conn.execute_batch(SCHEMA)?;
        for migration in MIGRATIONS {
            match conn.execute_batch(migration) {
                Err(e) if e.to_string().contains("duplicate column") => {}
                other => other?,
            }
        }
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
    }

    fn sql<T>(&self, result: Result<T, rusqlite::Error>) -> Result<T, StoreError> {
        result.map_err(|source| StoreError::Sql {
            path: self.path.clone(),
            source,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes records in one transaction: all or nothing.
    pub fn write(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let result = (|| {
            let tx = self.conn.transaction()?;
            {
                let mut ack = tx.prepare_cached(
                    "INSERT INTO last_ack (relay_id, state, at_ms, rtt_us, late, requested_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (relay_id) DO UPDATE SET state = ?2, at_ms = ?3, rtt_us = ?4, late = ?5, requested_ms = ?6
                     WHERE excluded.requested_ms >= COALESCE(last_ack.requested_ms, last_ack.at_ms)",
                )?;
                let mut audit = tx.prepare_cached(
                    "INSERT INTO audit (at_ms, relay_id, action, outcome, state, rtt_us, detail, operator, correlation)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for record in records {
                    match record {
                        Record::Ack(a) => {
                            ack.execute(params![
                                a.relay_id,
                                a.state.as_str(),
                                to_millis(a.at),
                                a.rtt.as_micros() as i64,
                                a.late,
                                to_millis(a.requested)
                            ])?;
                        }
                        Record::Audit(e) => {
                            audit.execute(params![
                                to_millis(e.at),
                                e.relay_id,
                                e.action.as_str(),
                                e.outcome.code(),
                                e.state.map(RelayState::as_str),
                                e.rtt.map(|d| d.as_micros() as i64),
                                e.detail,
                                e.operator,
                                e.correlation
                            ])?;
                        }
                    }
                }
            }
            tx.commit()
        })();
        self.sql(result)
    }

    /// Every relay's last acknowledged state.
    pub fn last_acknowledged(&self) -> Result<Vec<StoredAck>, StoreError> {
        let result = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT relay_id, state, at_ms, rtt_us, late, COALESCE(requested_ms, at_ms)
                 FROM last_ack ORDER BY relay_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (relay_id, state, at_ms, rtt_us, late, requested_ms) = row?;
                // A row with an unknown state is skipped, not trusted.
                if let Some(state) = RelayState::parse(&state) {
                    out.push(StoredAck {
                        relay_id,
                        state,
                        requested: from_millis(requested_ms),
                        at: from_millis(at_ms),
                        rtt: Duration::from_micros(rtt_us.max(0) as u64),
                        late,
                    });
                }
            }
            Ok(out)
        })();
        self.sql(result)
    }

    /// One relay's last acknowledged state.
    pub fn last_acknowledged_of(&self, relay_id: &str) -> Result<Option<StoredAck>, StoreError> {
        let result = self
            .conn
            .query_row(
                "SELECT state, at_ms, rtt_us, late, COALESCE(requested_ms, at_ms)
                 FROM last_ack WHERE relay_id = ?1",
                [relay_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                },
            )
            .optional();
        Ok(self
            .sql(result)?
            .and_then(|(state, at_ms, rtt_us, late, requested_ms)| {
                Some(StoredAck {
                    relay_id: relay_id.to_owned(),
                    state: RelayState::parse(&state)?,
                    requested: from_millis(requested_ms),
                    at: from_millis(at_ms),
                    rtt: Duration::from_micros(rtt_us.max(0) as u64),
                    late,
                })
            }))
    }

    /// The newest `limit` audit entries, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let result = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT at_ms, relay_id, action, outcome, state, rtt_us, detail, operator, correlation
                 FROM audit ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (
                    at_ms,
                    relay_id,
                    action,
                    outcome,
                    state,
                    rtt_us,
                    detail,
                    operator,
                    correlation,
                ) = row?;
                // A row this version cannot read (a newer version's
                // code) is skipped, not guessed at.
                let (Some(action), Some(outcome)) =
                    (Action::parse(&action), Outcome::parse(&outcome))
                else {
                    tracing::warn!(
                        "audit row with unknown action {action:?} or outcome {outcome:?} skipped"
                    );
                    continue;
                };
                out.push(AuditEntry {
                    at: from_millis(at_ms),
                    relay_id,
                    action,
                    outcome,
                    state: state.as_deref().and_then(RelayState::parse),
                    rtt: rtt_us.map(|us| Duration::from_micros(us.max(0) as u64)),
                    detail,
                    operator,
                    correlation,
                });
            }
            Ok(out)
        })();
        self.sql(result)
    }
}

/// Renames a corrupted database (and its WAL files) out of the way.
fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    std::fs::rename(path, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            let _ = std::fs::rename(&side, format!("{}{suffix}", aside.display()));
        }
    }
    Ok(aside)
}

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
        self.acks.len() + self.audit.len()
    }

    fn records(&self) -> Vec<Record> {
        let acks = self.acks.values().cloned().map(Record::Ack);
        let audit = self.audit.iter().cloned().map(Record::Audit);
        acks.chain(audit).collect()
    }
}

impl StoreWriter {
    /// Starts the writer; `on_error` hears when writes start failing (disk
    /// full…) and when they work again.
    pub fn spawn(mut store: Store, on_error: impl Fn(String) + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<Record>();
        let thread = std::thread::Builder::new()
            .name("relay-panel-store".into())
            .spawn(move || {
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
            })
            .ok();
        StoreWriter {
            tx: Some(tx),
            thread,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str, state: RelayState, at_ms: u64) -> Record {
        Record::Ack(StoredAck {
            relay_id: id.into(),
            state,
            requested: UNIX_EPOCH + Duration::from_millis(at_ms),
            at: UNIX_EPOCH + Duration::from_millis(at_ms),
            rtt: Duration::from_micros(1500),
            late: false,
        })
    }

    /// States and audit entries survive reopening.
    #[test]
    fn round_trip_and_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, warning) = Store::open_in(dir.path()).unwrap();
        assert!(warning.is_none());
        store
            .write(&[
                ack("a", RelayState::On, 2000),
                ack("a", RelayState::Off, 1000), // older: ignored
                ack("b", RelayState::Off, 1000),
                Record::Audit(AuditEntry {
                    at: UNIX_EPOCH + Duration::from_millis(2000),
                    relay_id: "a".into(),
                    action: Action::On,
                    outcome: Outcome::Confirmed,
                    state: Some(RelayState::On),
                    rtt: Some(Duration::from_micros(1500)),
                    detail: None,
                    operator: "tech".into(),
                    correlation: Some("00ff".into()),
                }),
            ])
            .unwrap();
        drop(store);
        let (store, _) = Store::open_in(dir.path()).unwrap();
        let acks = store.last_acknowledged().unwrap();
        assert_eq!(acks.len(), 2);
        assert_eq!(acks[0].state, RelayState::On);
        assert_eq!(acks[0].rtt, Duration::from_micros(1500));
        let log = store.recent_audit(10).unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].operator, "tech");
        assert_eq!(
            store.last_acknowledged_of("b").unwrap().unwrap().state,
            RelayState::Off
        );
    }

    /// The stored state is the answer to the latest request, whatever order
    /// the answers arrived in: a late answer to an older request, written
    /// after a newer one, changes nothing (issue: "an older answer
    /// overwrites a newer confirmation").
    #[test]
    fn requested_later_wins_not_arrived_later() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open_in(dir.path()).unwrap();
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let ack = |state, requested, arrived| {
            Record::Ack(StoredAck {
                relay_id: "a".into(),
                state,
                requested: at(requested),
                at: at(arrived),
                rtt: Duration::from_millis(arrived - requested),
                late: false,
            })
        };
        // B (off, sent at 3100) confirmed at 3105; A (on, sent at 0)
        // answers late at 3500 and is written afterwards.
        store.write(&[ack(RelayState::Off, 3100, 3105)]).unwrap();
        store.write(&[ack(RelayState::On, 0, 3500)]).unwrap();
        let stored = store.last_acknowledged_of("a").unwrap().unwrap();
        assert_eq!(stored.state, RelayState::Off);
        assert_eq!(stored.requested, at(3100));
        // A newer request's answer replaces it.
        store.write(&[ack(RelayState::On, 4000, 4001)]).unwrap();
        assert_eq!(store.last_acknowledged().unwrap()[0].state, RelayState::On);
    }

    /// A store written before `requested_ms` existed opens, and its rows
    /// read their arrival time as their request time.
    #[test]
    fn old_schema_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE last_ack (relay_id TEXT PRIMARY KEY, state TEXT NOT NULL, at_ms INTEGER NOT NULL,
                                    rtt_us INTEGER NOT NULL, late INTEGER NOT NULL);
             INSERT INTO last_ack VALUES ('a', 'on', 5000, 1000, 0);",
        )
        .unwrap();
        drop(old);
        let (mut store, warning) = Store::open(&path).unwrap();
        assert!(warning.is_none());
        let stored = store.last_acknowledged_of("a").unwrap().unwrap();
        assert_eq!(stored.requested, UNIX_EPOCH + Duration::from_millis(5000));
        store.write(&[ack("a", RelayState::Off, 4000)]).unwrap();
        assert_eq!(
            store.last_acknowledged_of("a").unwrap().unwrap().state,
            RelayState::On,
            "requested before the stored answer arrived: older"
        );
    }

    /// A garbage file is moved aside with a warning, and a new store works.
    #[test]
    fn corrupted_store_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let (mut store, warning) = Store::open(&path).unwrap();
        let warning = warning.expect("a warning about the corrupted store");
        assert!(warning.contains("corrupted"), "{warning}");
        store.write(&[ack("a", RelayState::On, 1)]).unwrap();
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(aside[0].path()).unwrap(), vec![0x5a; 8192]);
    }

    /// The writer thread flushes everything queued when closed.
    #[test]
    fn writer_flushes_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open_in(dir.path()).unwrap();
        let mut writer = StoreWriter::spawn(store, |e| panic!("{e}"));
        for n in 0..1000 {
            writer.send(ack(&format!("r{n}"), RelayState::On, n));
        }
        writer.close();
        let (store, _) = Store::open_in(dir.path()).unwrap();
        assert_eq!(store.last_acknowledged().unwrap().len(), 1000);
    }

    /// A store locked by another program is reported as such (after the
    /// busy timeout), not a hang or a crash.
    #[test]
    fn locked_store_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open_in(dir.path()).unwrap();
        drop(store);
        let holder = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        holder
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        let err = Store::open_in(dir.path()).err().expect("locked");
        assert!(
            err.to_string().contains("locked by another program"),
            "{err}"
        );
    }

    /// An unwritable data directory is a clear error, not a panic.
    #[test]
    fn unwritable_directory_is_an_error() {
        let err = Store::open_in(Path::new("/proc/relay-panel-test"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/proc/relay-panel-test"), "{err}");
    }
}
