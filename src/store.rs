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
    /// `confirmed`, `late confirmed`, `no response`, `device error`,
    /// `connection lost` or `not sent`.
    pub outcome: String,
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

/// Columns added after the first release of the schema.
const MIGRATIONS: &[&str] = &["ALTER TABLE audit ADD COLUMN correlation TEXT"];

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
                    "INSERT INTO last_ack (relay_id, state, at_ms, rtt_us, late) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (relay_id) DO UPDATE SET state = ?2, at_ms = ?3, rtt_us = ?4, late = ?5
                     WHERE excluded.at_ms >= last_ack.at_ms",
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
                                a.late
                            ])?;
                        }
                        Record::Audit(e) => {
                            audit.execute(params![
                                to_millis(e.at),
                                e.relay_id,
                                e.action.as_str(),
                                e.outcome,
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
                "SELECT relay_id, state, at_ms, rtt_us, late FROM last_ack ORDER BY relay_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (relay_id, state, at_ms, rtt_us, late) = row?;
                // A row with an unknown state is skipped, not trusted.
                if let Some(state) = RelayState::parse(&state) {
                    out.push(StoredAck {
                        relay_id,
                        state,
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
                "SELECT state, at_ms, rtt_us, late FROM last_ack WHERE relay_id = ?1",
                [relay_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                },
            )
            .optional();
        Ok(self.sql(result)?.and_then(|(state, at_ms, rtt_us, late)| {
            Some(StoredAck {
                relay_id: relay_id.to_owned(),
                state: RelayState::parse(&state)?,
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
                let Some(action) = Action::parse(&action) else {
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
pub struct StoreWriter {
    /// Records to write; `None` once closed.
    tx: Option<mpsc::Sender<Record>>,
    /// The writer thread, joined on close so nothing queued is lost.
    thread: Option<JoinHandle<()>>,
}

impl StoreWriter {
    /// Starts the writer; `on_error` hears about failed writes (disk full…).
    pub fn spawn(mut store: Store, on_error: impl Fn(String) + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<Record>();
        let thread = std::thread::Builder::new()
            .name("relay-panel-store".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while let Ok(first) = rx.recv() {
                    batch.push(first);
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                        if batch.len() >= 10_000 {
                            break;
                        }
                    }
                    if let Err(e) = store.write(&batch) {
                        tracing::error!("{e}");
                        on_error(format!(
                            "could not save {} record(s) to the store: {e}",
                            batch.len()
                        ));
                    }
                    batch.clear();
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
                    outcome: "confirmed".into(),
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
