//! The daemon's own bookkeeping: when each scheduled job last ran, and the state
//! of each SFTP download (so a crash between copy and removal loses nothing).

use crate::model::{DownloadState, Job};
use rusqlite::{params, OptionalExtension};

use super::IndexError;
use super::{Db, Tx};

type Result<T> = std::result::Result<T, IndexError>;

// ---------------------------------------------------------------------------
// Scheduled jobs
// ---------------------------------------------------------------------------

/// When a job last ran, and (daily jobs) for which Europe/London date.
pub(crate) fn job_state(db: Db<'_>, job: Job) -> Result<(Option<String>, Option<String>)> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT last_run_at, last_day FROM jobs WHERE name = ?1")?
        .query_row([job.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((None, None)))
}

/// Records a run of a job (`day`: the date a daily job ran for, kept if `None`).
pub(crate) fn set_job_run(tx: &Tx<'_>, job: Job, at: &str, day: Option<&str>) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO jobs (name, last_run_at, last_day) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at, last_day = coalesce(excluded.last_day, last_day)",
    )?
    .execute(params![job.as_str(), at, day])?;
    Ok(())
}

// ---------------------------------------------------------------------------
// SFTP downloads
// ---------------------------------------------------------------------------

/// The state of a remote file's download: `downloading`, `local` or `done`.
pub(crate) fn sftp_download_state(
    db: Db<'_>,
    mailbox: &str,
    name: &str,
    size: u64,
    mtime: u64,
) -> Result<Option<DownloadState>> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT state FROM sftp_downloads WHERE mailbox = ?1 AND name = ?2 AND size = ?3 AND mtime = ?4")?
        .query_row(params![mailbox, name, size, mtime], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_sftp_download(
    tx: &Tx<'_>,
    mailbox: &str,
    name: &str,
    size: u64,
    mtime: u64,
    state: DownloadState,
    at: &str,
) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO sftp_downloads (mailbox, name, size, mtime, state, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (mailbox, name, size, mtime) DO UPDATE SET state = excluded.state, at = excluded.at",
    )?
    .execute(params![mailbox, name, size, mtime, state, at])?;
    Ok(())
}

/// Downloads whose local copy is durable but whose remote file was not yet removed.
pub(crate) fn sftp_local_pending(db: Db<'_>, mailbox: &str) -> Result<Vec<(String, u64, u64)>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT name, size, mtime FROM sftp_downloads WHERE mailbox = ?1 AND state = ?2",
    )?;
    let rows = stmt
        .query_map(params![mailbox, DownloadState::Local], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
