//! The index: the SQLite database holding the records, the ledger of every inbound
//! message, receipts and their problems, outbound files reserved for writing,
//! sequence numbers, operator decisions and the audit log.
//!
//! This is the only module that writes to SQLite (read-only reports may query it). Every inbound file is applied in one
//! transaction (`BEGIN IMMEDIATE` ... `COMMIT`), the schema is versioned with
//! `PRAGMA user_version`. Must never write files, and never log an NHS number.

pub(crate) mod alerts;
pub(crate) mod audit;
#[allow(unsafe_code)] // SQLite's C API for the hot statements; see the module doc.
mod bound;
pub(crate) mod flows;
pub(crate) mod holdings;
pub(crate) mod ledger;
pub(crate) mod mesh;
pub(crate) mod outbound;
pub(crate) mod records;
pub(crate) mod retention;
pub(crate) mod runs;
mod schema;
mod sql_types;
pub(crate) mod views;

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use schema::VERSION as SCHEMA_VERSION;

/// A database problem, with what an operator should do about it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexError {
    #[error("cannot create the database folder {path}: {source} (check hub.database and the folder's permissions)")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source} (check hub.database and its permissions)")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the database {path} has schema version {found}, newer than this build's {supported}: run the newer cpis-hub, or restore a backup")]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{}", sql_advice(.0))]
    Sql(#[from] rusqlite::Error),
    #[error("internal error: a write was asked of a read-only evaluation")]
    ReadOnly,
    #[error("the database copy {path} failed its integrity check: {detail}")]
    Damaged { path: PathBuf, detail: String },
}

impl IndexError {
    /// Whether the database's own state failed (busy, full, read-only, unreadable,
    /// damaged): the environment, which no file can change. Otherwise a statement
    /// failed on what it was given (a constraint, a value too big).
    pub(crate) fn is_environment(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            IndexError::Sql(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::DiskFull
                    | C::SystemIoFailure
                    | C::CannotOpen
                    | C::ReadOnly
                    | C::OutOfMemory
                    | C::DatabaseCorrupt
                    | C::NotADatabase
                    | C::FileLockingProtocolFailed
                    | C::PermissionDenied
                    | C::OperationInterrupted
            ),
            IndexError::Folder { .. } | IndexError::Open { .. } | IndexError::TooNew { .. } => true,
            IndexError::Sql(_) | IndexError::ReadOnly => false,
            IndexError::Damaged { .. } => true,
        }
    }

    /// A failure injected for tests (`CPIS_HUB_FAULT=poison:NAME`): a constraint.
    pub(crate) fn injected_constraint() -> IndexError {
        IndexError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            Some("fault injected: poison".into()),
        ))
    }
}

/// SQLite's message with what an operator should do about it (once).
fn sql_advice(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as C;
    let advice = match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DiskFull => "free space on the database's disk; nothing is lost, the work is tried again",
            C::DatabaseBusy | C::DatabaseLocked => "another process holds the database; the work is tried again",
            C::ReadOnly | C::CannotOpen | C::PermissionDenied => {
                "check the permissions of the database file and its folder"
            }
            C::SystemIoFailure => "the disk failed a read or write: check the system log",
            C::DatabaseCorrupt | C::NotADatabase => {
                "the database is damaged: stop the hub and restore the last backup (docs/operator-guide.md)"
            }
            _ => return format!("database error: {e}"),
        },
        _ => return format!("database error: {e}"),
    };
    format!("database error: {e} ({advice})")
}

/// A date as the database stores it (`YYYY-MM-DD`).
fn date_text(d: Option<chrono::NaiveDate>) -> Option<String> {
    use chrono::Datelike;
    d.map(|d| format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()))
}

/// Calls `f` for each row of `sql` as `map` reads it; `f`'s own errors pass through
/// unchanged (a writer's I/O error stays the writer's, never a database error).
fn each_row<T, E: From<IndexError>>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    mut f: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let mut stmt = conn.prepare_cached(sql).map_err(IndexError::from)?;
    let mut rows = stmt.query(params).map_err(IndexError::from)?;
    while let Some(r) = rows.next().map_err(IndexError::from)? {
        f(map(r).map_err(IndexError::from)?)?;
    }
    Ok(())
}

/// Read access to the index: every query takes one (from [`Index::db`],
/// [`ReadOnly::db`] or [`Tx::db`]). Outside this module it only passes through.
#[derive(Clone, Copy)]
pub(crate) struct Db<'a> {
    conn: &'a Connection,
}

impl<'a> Db<'a> {
    pub(in crate::index) fn conn(&self) -> &'a Connection {
        self.conn
    }

    /// A read snapshot: what several queries read is one consistent state (the count
    /// in a file's metadata and its rows), whatever a writer does meanwhile.
    pub(crate) fn snapshot(self) -> Result<Snapshot<'a>, IndexError> {
        Ok(Snapshot {
            tx: self.conn.unchecked_transaction()?,
        })
    }
}

/// See [`Db::snapshot`]; it ends (rolls back: it wrote nothing) when dropped.
pub(crate) struct Snapshot<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Snapshot<'_> {
    pub(crate) fn db(&self) -> Db<'_> {
        Db { conn: &self.tx }
    }
}

/// A write transaction (`BEGIN IMMEDIATE`): every write takes one, so nothing
/// outside `index` can write, and nothing writes outside a transaction. Dropped
/// without [`Tx::commit`], it rolls back.
pub(crate) struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Tx<'_> {
    /// Reads inside this transaction.
    pub(crate) fn db(&self) -> Db<'_> {
        Db { conn: &self.tx }
    }

    pub(in crate::index) fn conn(&self) -> &Connection {
        &self.tx
    }

    pub(crate) fn commit(self) -> Result<(), IndexError> {
        Ok(self.tx.commit()?)
    }

    /// A savepoint inside the transaction: a pass that must be read again is rolled
    /// back to it ([`Tx::rollback_to`]), a finished one kept ([`Tx::release`]).
    pub(crate) fn savepoint(&self, name: &str) -> Result<(), IndexError> {
        Ok(self.tx.execute_batch(&format!("SAVEPOINT {name}"))?)
    }

    pub(crate) fn rollback_to(&self, name: &str) -> Result<(), IndexError> {
        Ok(self.tx.execute_batch(&format!("ROLLBACK TO {name}"))?)
    }

    pub(crate) fn release(&self, name: &str) -> Result<(), IndexError> {
        Ok(self.tx.execute_batch(&format!("RELEASE {name}"))?)
    }
}

/// Either a transaction to write in, or only reads (a dry run such as `validate`):
/// for code that evaluates a file whether or not it applies it.
#[derive(Clone, Copy)]
pub(crate) enum Store<'a> {
    Read(Db<'a>),
    Write(&'a Tx<'a>),
}

impl<'a> Store<'a> {
    pub(crate) fn db(&self) -> Db<'_> {
        match self {
            Store::Read(db) => *db,
            Store::Write(tx) => tx.db(),
        }
    }

    /// The transaction, for a write; a dry run asked to write is a bug, said as such.
    pub(crate) fn tx(&self) -> Result<&'a Tx<'a>, IndexError> {
        match self {
            Store::Write(tx) => Ok(tx),
            Store::Read(_) => Err(IndexError::ReadOnly),
        }
    }
}

/// An index opened for reading only (operator views: `status`, `report`, `audit`,
/// `validate`): it has no way to write.
pub(crate) struct ReadOnly(Index);

impl ReadOnly {
    pub(crate) fn db(&self) -> Db<'_> {
        self.0.db()
    }

    /// Writes a consistent copy of the database to a new file (`VACUUM INTO`, from a
    /// read snapshot: the daemon carries on writing).
    pub(crate) fn backup_to(&self, target: &str) -> Result<(), IndexError> {
        self.0.conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// Checks a copy made by [`ReadOnly::backup_to`] (SQLite's integrity check) and
    /// returns how many records it holds.
    pub(crate) fn check_copy(path: &Path) -> Result<u64, IndexError> {
        let copy = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
            |source| IndexError::Open {
                path: path.to_path_buf(),
                source,
            },
        )?;
        let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(IndexError::Damaged {
                path: path.to_path_buf(),
                detail: check,
            });
        }
        Ok(copy.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?)
    }

    /// An empty index of this build's schema, in memory (`validate` before any
    /// database exists).
    pub(crate) fn empty() -> Result<ReadOnly, IndexError> {
        Index::in_memory().map(ReadOnly)
    }
}

/// An open index.
pub(crate) struct Index {
    conn: Connection,
    path: PathBuf,
}

impl Index {
    /// Opens (creating, mode 0600 in a 0700 folder, and migrating) the database.
    pub(crate) fn open(path: &Path) -> Result<Index, IndexError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| IndexError::Folder {
                        path: dir.to_path_buf(),
                        source,
                    })?;
            }
        }
        if !path.exists() {
            // Create the file ourselves so that it is 0600 from the first byte.
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| IndexError::Folder {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        let conn = Connection::open(path).map_err(|source| IndexError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let index = Index {
            conn,
            path: path.to_path_buf(),
        };
        index.configure()?;
        index.migrate()?;
        Ok(index)
    }

    /// Opens an existing database for reading only (operator commands that must not
    /// write). `None` when there is no database yet.
    pub(crate) fn open_read_only(path: &Path) -> Result<Option<ReadOnly>, IndexError> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| IndexError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let index = Index {
            conn,
            path: path.to_path_buf(),
        };
        let version = index.version()?;
        if version > schema::VERSION {
            return Err(IndexError::TooNew {
                path: index.path,
                found: version,
                supported: schema::VERSION,
            });
        }
        if version < schema::VERSION {
            // Not migrated yet (no process pass has run with this build): nothing to read.
            return Ok(None);
        }
        Ok(Some(ReadOnly(index)))
    }

    /// An empty in-memory index.
    fn in_memory() -> Result<Index, IndexError> {
        let conn = Connection::open_in_memory()?;
        let index = Index {
            conn,
            path: PathBuf::from(":memory:"),
        };
        index.migrate()?;
        Ok(index)
    }

    fn configure(&self) -> Result<(), IndexError> {
        self.conn.busy_timeout(Duration::from_secs(30))?;
        // 8 KiB pages for a new database (ignored for an existing one): fewer page
        // splits and a shallower tree for the 15-column records (issue 7).
        self.conn.pragma_update(None, "page_size", 8192)?;
        // WAL + synchronous=FULL: a committed file survives power loss.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        // 16 MiB page cache: within the memory budget, large enough for the national index.
        self.conn.pragma_update(None, "cache_size", -16_000)?;
        self.conn.pragma_update(None, "temp_store", "FILE")?;
        self.conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    fn version(&self) -> Result<u32, IndexError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn migrate(&self) -> Result<(), IndexError> {
        let version = self.version()?;
        if version > schema::VERSION {
            return Err(IndexError::TooNew {
                path: self.path.clone(),
                found: version,
                supported: schema::VERSION,
            });
        }
        for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The schema version of the open database.
    #[cfg(test)]
    pub(crate) fn schema_version(&self) -> Result<u32, IndexError> {
        self.version()
    }

    /// Starts a write transaction (taking the write lock at once).
    pub(crate) fn begin(&mut self) -> Result<Tx<'_>, IndexError> {
        Ok(Tx {
            tx: self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
        })
    }

    /// Runs `f` in a transaction of its own and commits it (a one-off write).
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, IndexError>,
    ) -> Result<T, IndexError> {
        let tx = self.begin()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Reads outside a transaction.
    pub(crate) fn db(&self) -> Db<'_> {
        Db { conn: &self.conn }
    }
}

#[cfg(test)]
mod tests;
