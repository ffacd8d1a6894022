//! The member's own SQLite files (`history.sqlite`, `memory.sqlite`, `reminders.sqlite`): created
//! 0600 whatever the umask, in WAL mode with `synchronous=NORMAL` (crash-safe; only a power cut
//! can drop the last write), and brought up to date by numbered, forward-only migrations —
//! `PRAGMA user_version` is the number of the last one applied. Each file's module maps
//! [`DbError`] to its own error type, which names the file.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

pub(crate) enum DbError {
    /// The file could not be created or its mode tightened.
    Create(std::io::Error),
    /// SQLite refused the file (a garbage file fails at the first pragma).
    Open(rusqlite::Error),
    /// The file was written by a newer worker.
    TooNew { found: u32, known: u32 },
    /// A migration failed.
    Sqlite(rusqlite::Error),
}

/// Opens `path`, creating it 0600 (an existing file with a wider mode is tightened). With
/// `busy`, a connection that meets another (a tool's and the agent's) waits that long.
pub(crate) fn open(path: &Path, busy: Option<Duration>) -> Result<Connection, DbError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(DbError::Create)?;
    file.set_permissions(Permissions::from_mode(0o600)).map_err(DbError::Create)?;
    drop(file);
    let conn = Connection::open(path).map_err(DbError::Open)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(DbError::Open)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, file = %path.display(), "database is not in WAL mode");
    }
    // In WAL mode NORMAL never corrupts the database and loses nothing when the worker crashes;
    // FULL cost two fsyncs on every message's path (BENCHMARKS.md: overhead p50 2.21 → 1.50 ms).
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(DbError::Open)?;
    if let Some(busy) = busy {
        conn.busy_timeout(busy).map_err(DbError::Open)?;
    }
    Ok(conn)
}

/// Applies the migrations after the file's `user_version`, each in its own transaction.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), DbError> {
    let known = migrations.len() as u32;
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(DbError::Sqlite)?;
    if found > known {
        return Err(DbError::TooNew { found, known });
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().map_err(DbError::Sqlite)?;
        tx.execute_batch(sql).map_err(DbError::Sqlite)?;
        tx.pragma_update(None, "user_version", i as u32 + 1).map_err(DbError::Sqlite)?;
        tx.commit().map_err(DbError::Sqlite)?;
    }
    Ok(())
}

/// Maps a [`DbError`] into a module's own error enum, which has the same four variants and
/// names the file in the first two.
macro_rules! db_error {
    ($error:ident, $path:expr) => {
        |e: crate::db::DbError| match e {
            crate::db::DbError::Create(source) => $error::Create { path: $path.to_owned(), source },
            crate::db::DbError::Open(source) => $error::Open { path: $path.to_owned(), source },
            crate::db::DbError::TooNew { found, known } => $error::TooNew { found, known },
            crate::db::DbError::Sqlite(e) => $error::Sqlite(e),
        }
    };
}
pub(crate) use db_error;
