//! Opening the store: the schema and its migrations, and a corrupted
//! file moved aside (never crashed on, its bytes kept for inspection).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode};

use super::{STORE_FILE, Store, StoreError};

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
CREATE TABLE IF NOT EXISTS last_report (
    relay_id TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    source   TEXT
);
";

/// Columns added after the first release of the schema. Rows written before
/// `requested_ms` existed read it as their `at_ms`; rows written before
/// `evidence` existed were all correlated answers (the only kind there was)
/// and read as such; rows written before `operator` have none.
const MIGRATIONS: &[&str] = &[
    "ALTER TABLE audit ADD COLUMN correlation TEXT",
    "ALTER TABLE last_ack ADD COLUMN requested_ms INTEGER",
    "ALTER TABLE last_ack ADD COLUMN evidence TEXT",
    "ALTER TABLE audit ADD COLUMN evidence TEXT",
    "ALTER TABLE last_ack ADD COLUMN operator TEXT",
];

/// The schema's version, kept in SQLite's `user_version`: a store at this
/// version has every table and column above, so opening it runs no
/// `CREATE` and no `ALTER` (each failing `ALTER` costs a parse of the
/// schema, on every one-shot `relayctl`). It counts the migrations, so a
/// new one (a column, or a table added as `CREATE TABLE IF NOT EXISTS`)
/// raises it and runs once on every older store.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64 + 1;

/// The WAL size from which closing the store copies it into the database
/// and empties it (32 pages of 4 KiB, with their frame headers).
///
/// A process that opens the store while no other has it open reads the
/// whole WAL to rebuild its index, and forgets in doing so which pages an
/// earlier process had already copied: a one-shot `relayctl` does exactly
/// that. Left alone, every `relayctl set` read a WAL of ~200 pages and
/// copied it all back, with an fsync, at each of its commits (1.5 ms of
/// its 3.7 ms). Emptied at close once it passes this size, the WAL stays
/// small for the next one-shot, and only one run in eight or so pays for
/// the copy; a panel running for hours copies as SQLite does by itself
/// (every 1,000 pages) and empties the WAL when it closes.
const WAL_TRUNCATE_AT: u64 = 32 * (4096 + 24);

impl Drop for Store {
    /// Empties a WAL grown past [`WAL_TRUNCATE_AT`] into the database,
    /// unless another connection is using it (then it is left for later:
    /// no waiting at close).
    fn drop(&mut self) {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let grown = std::fs::metadata(&wal).is_ok_and(|m| m.len() >= WAL_TRUNCATE_AT);
        if grown && self.conn.busy_timeout(Duration::ZERO).is_ok() {
            let emptied = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                    row.get::<_, i64>(0)
                });
            if let Ok(busy) = emptied
                && busy != 0
            {
                tracing::debug!("store: the WAL is in use elsewhere; left as it is");
            }
        }
    }
}

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
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(SCHEMA)?;
            for migration in MIGRATIONS {
                match conn.execute_batch(migration) {
                    Err(e) if e.to_string().contains("duplicate column") => {}
                    other => other?,
                }
            }
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
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
