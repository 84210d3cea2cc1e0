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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

mod open;
mod writer;

pub use writer::{MAX_WAITING, RETRY_EVERY, StoreWriter};

use crate::outcome::{Evidence, Outcome};
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
    /// Confirmed by a correlated reply, or reported by the device.
    pub evidence: Evidence,
    /// When the request it answers was sent: a stored state is replaced
    /// only by one requested later (answers overtake each other).
    pub requested: SystemTime,
    /// When the answer arrived.
    pub at: SystemTime,
    /// Round trip of that request.
    pub rtt: Duration,
    /// Whether the answer came after its request had ended.
    pub late: bool,
    /// Who asked for the request (`None` in rows stored before the
    /// column).
    pub operator: Option<String>,
}

/// A relay's latest state published by its device by itself (a change at
/// the device), as stored: shown after a restart when it is newer than
/// the last acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// The relay.
    pub relay_id: String,
    /// The state the device published.
    pub state: RelayState,
    /// When it was heard.
    pub at: SystemTime,
    /// What switched it, when the device said (`button`).
    pub source: Option<String>,
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
    /// What ties the device's answer to the request, when one came:
    /// `"correlated"` or `"reported"` (a report that contradicted the
    /// request is a device error with evidence `"reported"`).
    pub evidence: Option<Evidence>,
    /// Round trip, when the device answered.
    #[serde(serialize_with = "serialize_rtt")]
    pub rtt: Option<Duration>,
    /// The device's text (device errors), the reason (not sent), or what
    /// switched the relay (changed at device: `button`, `MQTT`…, when the
    /// device says).
    pub detail: Option<String>,
    /// Who asked (empty for a change at the device: nobody this panel
    /// knows).
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
    /// Replace a relay's latest report from its device.
    Report(StoredReport),
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

/// A stored acknowledgement's evidence: rows from before the column
/// (`NULL`) were correlated answers; an unknown code is `None` (the row is
/// not trusted).
fn stored_evidence(code: Option<String>) -> Option<Evidence> {
    match code {
        None => Some(Evidence::Correlated),
        Some(code) => Evidence::parse(&code),
    }
}

impl Store {
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
                    "INSERT INTO last_ack (relay_id, state, at_ms, rtt_us, late, requested_ms, evidence, operator)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (relay_id) DO UPDATE SET state = ?2, at_ms = ?3, rtt_us = ?4, late = ?5, requested_ms = ?6, evidence = ?7, operator = ?8
                     WHERE excluded.requested_ms >= COALESCE(last_ack.requested_ms, last_ack.at_ms)",
                )?;
                let mut report = tx.prepare_cached(
                    "INSERT INTO last_report (relay_id, state, at_ms, source) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (relay_id) DO UPDATE SET state = ?2, at_ms = ?3, source = ?4
                     WHERE excluded.at_ms >= last_report.at_ms",
                )?;
                let mut audit = tx.prepare_cached(
                    "INSERT INTO audit (at_ms, relay_id, action, outcome, state, rtt_us, detail, operator, correlation, evidence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
                                to_millis(a.requested),
                                a.evidence.code(),
                                a.operator
                            ])?;
                        }
                        Record::Report(r) => {
                            report.execute(params![
                                r.relay_id,
                                r.state.as_str(),
                                to_millis(r.at),
                                r.source
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
                                e.correlation,
                                e.evidence.map(Evidence::code)
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
                "SELECT relay_id, state, at_ms, rtt_us, late, COALESCE(requested_ms, at_ms), evidence, operator
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
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (relay_id, state, at_ms, rtt_us, late, requested_ms, evidence, operator) = row?;
                // A row with an unknown state or evidence is skipped, not trusted.
                if let (Some(state), Some(evidence)) =
                    (RelayState::parse(&state), stored_evidence(evidence))
                {
                    out.push(StoredAck {
                        relay_id,
                        state,
                        evidence,
                        requested: from_millis(requested_ms),
                        at: from_millis(at_ms),
                        rtt: Duration::from_micros(rtt_us.max(0) as u64),
                        late,
                        operator,
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
                "SELECT state, at_ms, rtt_us, late, COALESCE(requested_ms, at_ms), evidence, operator
                 FROM last_ack WHERE relay_id = ?1",
                [relay_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                },
            )
            .optional();
        Ok(self.sql(result)?.and_then(
            |(state, at_ms, rtt_us, late, requested_ms, evidence, operator)| {
                Some(StoredAck {
                    relay_id: relay_id.to_owned(),
                    state: RelayState::parse(&state)?,
                    evidence: stored_evidence(evidence)?,
                    requested: from_millis(requested_ms),
                    at: from_millis(at_ms),
                    rtt: Duration::from_micros(rtt_us.max(0) as u64),
                    late,
                    operator,
                })
            },
        ))
    }

    /// Every relay's latest report from its device (changes at the
    /// device), by relay id.
    pub fn last_reports(&self) -> Result<Vec<StoredReport>, StoreError> {
        let result = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT relay_id, state, at_ms, source FROM last_report ORDER BY relay_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (relay_id, state, at_ms, source) = row?;
                // A row with an unknown state is skipped, not trusted.
                if let Some(state) = RelayState::parse(&state) {
                    out.push(StoredReport {
                        relay_id,
                        state,
                        at: from_millis(at_ms),
                        source,
                    });
                }
            }
            Ok(out)
        })();
        self.sql(result)
    }

    /// The newest `limit` audit entries, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let result = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT at_ms, relay_id, action, outcome, state, rtt_us, detail, operator, correlation, evidence
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
                    r.get::<_, Option<String>>(9)?,
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
                    evidence,
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
                    // Rows from before the column: what the outcome says.
                    evidence: match evidence {
                        Some(code) => Evidence::parse(&code),
                        None => outcome.evidence(),
                    },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str, state: RelayState, at_ms: u64) -> Record {
        Record::Ack(StoredAck {
            relay_id: id.into(),
            state,
            evidence: Evidence::Correlated,
            requested: UNIX_EPOCH + Duration::from_millis(at_ms),
            at: UNIX_EPOCH + Duration::from_millis(at_ms),
            rtt: Duration::from_micros(1500),
            late: false,
            operator: Some("tech".into()),
        })
    }

    /// Closing keeps a small WAL as it is (no copy, no fsync at the end of
    /// a one-shot command) and empties one grown past 32 pages into the
    /// database, so the next process to open the store reads little;
    /// nothing written is lost either way.
    #[test]
    fn closing_empties_a_grown_wal_and_keeps_a_small_one() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(format!("{STORE_FILE}-wal"));
        let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let (mut store, _) = Store::open_in(dir.path()).unwrap();
        store.write(&[ack("a", RelayState::On, 1000)]).unwrap();
        drop(store);
        let small = wal_len();
        assert!(small > 0, "a small WAL is kept at close");
        let (mut store, _) = Store::open_in(dir.path()).unwrap();
        let mut at = 2000;
        while wal_len() < 40 * 4120 {
            let batch: Vec<Record> = (0..50)
                .map(|i| {
                    at += 1;
                    ack(&format!("relay-{i}-{at}"), RelayState::Off, at)
                })
                .collect();
            store.write(&batch).unwrap();
        }
        drop(store);
        assert_eq!(wal_len(), 0, "a WAL past 32 pages is emptied at close");
        let (store, _) = Store::open_in(dir.path()).unwrap();
        let acks = store.last_acknowledged().unwrap();
        assert!(acks.len() > 50, "{} acks", acks.len());
        assert!(acks.iter().any(|a| a.relay_id == "a"));
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
                    evidence: Some(Evidence::Correlated),
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
                evidence: Evidence::Correlated,
                requested: at(requested),
                at: at(arrived),
                rtt: Duration::from_millis(arrived - requested),
                late: false,
                operator: None,
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
        // Migrated once: the version says so, and the next open skips it.
        let version = |store: &Store| -> i64 {
            store
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(version(&store), open::SCHEMA_VERSION);
        assert_eq!(open::SCHEMA_VERSION, 6);
        store.write(&[ack("a", RelayState::Off, 4000)]).unwrap();
        assert_eq!(
            store.last_acknowledged_of("a").unwrap().unwrap().state,
            RelayState::On,
            "requested before the stored answer arrived: older"
        );
    }

    /// Evidence is kept on the last acknowledgement and on audit entries;
    /// rows from before the column read as correlated (the only kind there
    /// was), audit rows as their outcome says.
    #[test]
    fn evidence_is_stored_and_old_rows_read_as_correlated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STORE_FILE);
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE last_ack (relay_id TEXT PRIMARY KEY, state TEXT NOT NULL, at_ms INTEGER NOT NULL,
                                    rtt_us INTEGER NOT NULL, late INTEGER NOT NULL, requested_ms INTEGER);
             INSERT INTO last_ack VALUES ('old', 'on', 5000, 1000, 0, 5000);
             CREATE TABLE audit (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, relay_id TEXT NOT NULL,
                                 action TEXT NOT NULL, outcome TEXT NOT NULL, state TEXT, rtt_us INTEGER,
                                 detail TEXT, operator TEXT NOT NULL, correlation TEXT);
             INSERT INTO audit VALUES (1, 5000, 'old', 'on', 'confirmed', 'on', 1000, NULL, 'tech', NULL);",
        )
        .unwrap();
        drop(old);
        let (mut store, _) = Store::open(&path).unwrap();
        let old_ack = store.last_acknowledged_of("old").unwrap().unwrap();
        assert_eq!(old_ack.evidence, Evidence::Correlated);
        let reported = |at_ms: u64| StoredAck {
            relay_id: "new".into(),
            state: RelayState::Off,
            evidence: Evidence::Reported,
            requested: UNIX_EPOCH + Duration::from_millis(at_ms),
            at: UNIX_EPOCH + Duration::from_millis(at_ms),
            rtt: Duration::from_millis(4),
            late: false,
            operator: Some("tech".into()),
        };
        let contradicted = AuditEntry {
            at: UNIX_EPOCH + Duration::from_millis(7000),
            relay_id: "new".into(),
            action: Action::On,
            outcome: Outcome::DeviceError,
            state: None,
            evidence: Some(Evidence::Reported),
            rtt: Some(Duration::from_millis(4)),
            detail: Some("asked on, device reports off".into()),
            operator: "tech".into(),
            correlation: None,
        };
        store
            .write(&[
                Record::Ack(reported(6000)),
                Record::Audit(contradicted.clone()),
            ])
            .unwrap();
        drop(store);
        let (store, _) = Store::open(&path).unwrap();
        assert_eq!(
            store.last_acknowledged_of("new").unwrap(),
            Some(reported(6000))
        );
        let acks = store.last_acknowledged().unwrap();
        assert_eq!(
            acks.iter().map(|a| a.evidence).collect::<Vec<_>>(),
            [Evidence::Reported, Evidence::Correlated]
        );
        let log = store.recent_audit(10).unwrap();
        assert_eq!(log[0], contradicted);
        assert_eq!(
            log[1].evidence,
            Some(Evidence::Correlated),
            "from the outcome"
        );
    }

    /// A change at the device is stored as the relay's latest report
    /// (newest wins, by time), beside its last acknowledgement, and the
    /// operator travels with the acknowledgement.
    #[test]
    fn device_reports_are_stored_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open_in(dir.path()).unwrap();
        let report = |state, at_ms: u64, source: Option<&str>| StoredReport {
            relay_id: "porch".into(),
            state,
            at: UNIX_EPOCH + Duration::from_millis(at_ms),
            source: source.map(str::to_owned),
        };
        store
            .write(&[
                Record::Report(report(RelayState::On, 5000, Some("button"))),
                Record::Report(report(RelayState::Off, 4000, None)), // older: ignored
                ack("porch", RelayState::Off, 3000),
            ])
            .unwrap();
        drop(store);
        let (store, _) = Store::open_in(dir.path()).unwrap();
        assert_eq!(
            store.last_reports().unwrap(),
            [report(RelayState::On, 5000, Some("button"))]
        );
        let ack = store.last_acknowledged_of("porch").unwrap().unwrap();
        assert_eq!(ack.operator.as_deref(), Some("tech"));
        assert_eq!(store.last_acknowledged().unwrap()[0].operator, ack.operator);
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
