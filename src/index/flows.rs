//! Index functions of the NHS-side flows: attendance events and access
//! notifications, NHS number status and inactive notices, alert extracts.

use crate::model::{Change, DownloadState, Job};
use rusqlite::{params, OptionalExtension, Row};

use super::IndexError;
use super::{Db, Tx};

type Result<T> = std::result::Result<T, IndexError>;

/// How many accesses are kept per record (SPEC §5.2, CP-IS: the 25 most recent).
pub(crate) const ACCESSES_KEPT: i64 = 25;

// ---------------------------------------------------------------------------
// Attendance events
// ---------------------------------------------------------------------------

/// Was (site, event_id) processed before, in any file?
pub(crate) fn event_seen(db: Db<'_>, site: &str, event_id: &str) -> Result<bool> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM events_seen WHERE site = ?1 AND event_id = ?2)",
        )?
        .query_row(params![site, event_id], |r| r.get(0))?)
}

/// Records (site, event_id) as processed; false when it already was.
pub(crate) fn mark_event_seen(
    tx: &Tx<'_>,
    site: &str,
    event_id: &str,
    today: &str,
) -> Result<bool> {
    let conn = tx.conn();
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO events_seen (site, event_id, seen_on) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![site, event_id, today])?;
    Ok(n == 1)
}

/// A held record as an access notification needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldRecord {
    pub id: i64,
    pub authority: String,
    pub local_id: String,
    pub plan_type: String,
    pub end_date: Option<String>,
}

/// Every held record (any authority) with this NHS number.
pub(crate) fn held_by_nhs(db: Db<'_>, nhs: &str) -> Result<Vec<HeldRecord>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT id, authority, local_id, plan_type, end_date FROM records WHERE nhs_number = ?1 ORDER BY authority, local_id, plan_type",
    )?;
    let rows = stmt
        .query_map([nhs], |r| {
            Ok(HeldRecord {
                id: r.get(0)?,
                authority: r.get(1)?,
                local_id: r.get(2)?,
                plan_type: r.get(3)?,
                end_date: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One access notification row, as it will be sent (§4.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Notification {
    pub id: i64,
    pub message_id: i64,
    pub authority: String,
    pub local_id: String,
    pub nhs_number: String,
    pub plan_type: String,
    pub plan_status: String,
    pub plan_end_date: Option<String>,
    pub accessed_at: String,
    pub site_ods_code: String,
    pub site_name: String,
    pub setting: String,
    pub user_name: String,
    pub user_role: String,
    pub created_on: String,
}

pub(crate) fn insert_notification(tx: &Tx<'_>, n: &Notification) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO notifications (message_id, authority, local_id, nhs_number, plan_type, plan_status, plan_end_date, accessed_at,
         site_ods_code, site_name, setting, user_name, user_role, created_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        n.message_id, n.authority, n.local_id, n.nhs_number, n.plan_type, n.plan_status, n.plan_end_date, n.accessed_at,
        n.site_ods_code, n.site_name, n.setting, n.user_name, n.user_role, n.created_on
    ])?;
    Ok(())
}

/// Adds an access to a record's history and keeps only the newest [`ACCESSES_KEPT`].
pub(crate) fn add_access(
    tx: &Tx<'_>,
    record_id: i64,
    accessed_at: &str,
    site_ods_code: &str,
    setting: &str,
) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("INSERT INTO accesses (record_id, accessed_at, site_ods_code, setting) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![record_id, accessed_at, site_ods_code, setting])?;
    conn.prepare_cached(
        "DELETE FROM accesses WHERE record_id = ?1 AND rowid NOT IN
         (SELECT rowid FROM accesses WHERE record_id = ?1 ORDER BY accessed_at DESC, rowid DESC LIMIT ?2)",
    )?
    .execute(params![record_id, ACCESSES_KEPT])?;
    Ok(())
}

/// The newest accesses of a record, newest first: (accessed_at, site_ods_code, setting).
pub(crate) fn recent_accesses(
    db: Db<'_>,
    authority: &str,
    local_id: &str,
    plan_type: &str,
) -> Result<Vec<(String, String, String)>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT a.accessed_at, a.site_ods_code, a.setting FROM accesses a JOIN records r ON r.id = a.record_id
         WHERE r.authority = ?1 AND r.local_id = ?2 AND r.plan_type = ?3 ORDER BY a.accessed_at DESC, a.rowid DESC",
    )?;
    let rows = stmt
        .query_map(params![authority, local_id, plan_type], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The authorities a message produced rows for in `table`, in order.
fn authorities_of(db: Db<'_>, table: &str, message_id: i64) -> Result<Vec<String>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT DISTINCT authority FROM {table} WHERE message_id = ?1 ORDER BY authority"
    ))?;
    let rows = stmt
        .query_map([message_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Links a message's rows for one authority to the outbound file that carries them.
fn attach(
    tx: &Tx<'_>,
    table: &str,
    message_id: i64,
    authority: &str,
    outbound_id: i64,
) -> Result<u64> {
    let conn = tx.conn();
    let n = conn
        .prepare_cached(&format!(
            "UPDATE {table} SET outbound_id = ?3 WHERE message_id = ?1 AND authority = ?2"
        ))?
        .execute(params![message_id, authority, outbound_id])?;
    Ok(n as u64)
}

pub(crate) fn notification_authorities(db: Db<'_>, message_id: i64) -> Result<Vec<String>> {
    let _conn = db.conn();
    authorities_of(db, "notifications", message_id)
}

pub(crate) fn attach_notifications(
    tx: &Tx<'_>,
    message_id: i64,
    authority: &str,
    outbound_id: i64,
) -> Result<u64> {
    let _conn = tx.conn();
    attach(tx, "notifications", message_id, authority, outbound_id)
}

pub(crate) fn inactive_authorities(db: Db<'_>, message_id: i64) -> Result<Vec<String>> {
    let _conn = db.conn();
    authorities_of(db, "inactive_notices", message_id)
}

pub(crate) fn attach_inactive(
    tx: &Tx<'_>,
    message_id: i64,
    authority: &str,
    outbound_id: i64,
) -> Result<u64> {
    let _conn = tx.conn();
    attach(tx, "inactive_notices", message_id, authority, outbound_id)
}

/// Rows carried by an outbound file.
pub(crate) fn count_rows(db: Db<'_>, table: &str, outbound_id: i64) -> Result<u64> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM {table} WHERE outbound_id = ?1"
        ))?
        .query_row([outbound_id], |r| r.get(0))?)
}

fn notification_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        message_id: r.get(1)?,
        authority: r.get(2)?,
        local_id: r.get(3)?,
        nhs_number: r.get(4)?,
        plan_type: r.get(5)?,
        plan_status: r.get(6)?,
        plan_end_date: r.get(7)?,
        accessed_at: r.get(8)?,
        site_ods_code: r.get(9)?,
        site_name: r.get(10)?,
        setting: r.get(11)?,
        user_name: r.get(12)?,
        user_role: r.get(13)?,
        created_on: r.get(14)?,
    })
}

/// The notifications an ACCESS file carries, in order.
pub(crate) fn for_each_notification<E: From<IndexError>>(
    db: Db<'_>,
    outbound_id: i64,
    f: impl FnMut(Notification) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    super::each_row(
        db.conn(),
        "SELECT id, message_id, authority, local_id, nhs_number, plan_type, plan_status, plan_end_date, accessed_at, site_ods_code,
                site_name, setting, user_name, user_role, created_on
         FROM notifications WHERE outbound_id = ?1 ORDER BY id",
        [outbound_id],
        notification_row,
        f,
    )
}

// ---------------------------------------------------------------------------
// NHS number status
// ---------------------------------------------------------------------------

pub(crate) fn set_nhs_status(
    tx: &Tx<'_>,
    nhs: &str,
    status: &str,
    replacement: Option<&str>,
    effective_date: &str,
) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO nhs_status (nhs_number, status, replacement, effective_date) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (nhs_number) DO UPDATE SET status = excluded.status, replacement = excluded.replacement, effective_date = excluded.effective_date",
    )?
    .execute(params![nhs, status, replacement, effective_date])?;
    Ok(())
}

/// One row of an INACTIVE file (§4.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct InactiveNotice {
    pub message_id: i64,
    pub authority: String,
    pub local_id: String,
    pub nhs_number: String,
    pub plan_type: String,
    pub status: String,
    pub replacement: Option<String>,
    pub effective_date: String,
    pub created_on: String,
}

pub(crate) fn insert_inactive(tx: &Tx<'_>, n: &InactiveNotice) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO inactive_notices (message_id, authority, local_id, nhs_number, plan_type, status, replacement, effective_date, created_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![n.message_id, n.authority, n.local_id, n.nhs_number, n.plan_type, n.status, n.replacement, n.effective_date, n.created_on])?;
    Ok(())
}

pub(crate) fn for_each_inactive<E: From<IndexError>>(
    db: Db<'_>,
    outbound_id: i64,
    f: impl FnMut(InactiveNotice) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    super::each_row(
        db.conn(),
        "SELECT message_id, authority, local_id, nhs_number, plan_type, status, replacement, effective_date, created_on
         FROM inactive_notices WHERE outbound_id = ?1 ORDER BY id",
        [outbound_id],
        |r| {
            Ok(InactiveNotice {
                message_id: r.get(0)?,
                authority: r.get(1)?,
                local_id: r.get(2)?,
                nhs_number: r.get(3)?,
                plan_type: r.get(4)?,
                status: r.get(5)?,
                replacement: r.get(6)?,
                effective_date: r.get(7)?,
                created_on: r.get(8)?,
            })
        },
        f,
    )
}

// ---------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------

/// What a site was last sent: (created_at of that file, change_seq it covered).
pub(crate) fn site_state(db: Db<'_>, site: &str) -> Result<Option<(String, i64)>> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT last_created_at, last_seq FROM site_state WHERE site = ?1")?
        .query_row([site], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub(crate) fn set_site_state(tx: &Tx<'_>, site: &str, created_at: &str, seq: i64) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO site_state (site, last_created_at, last_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (site) DO UPDATE SET last_created_at = excluded.last_created_at, last_seq = excluded.last_seq",
    )?
    .execute(params![site, created_at, seq])?;
    Ok(())
}

/// The last change sequence number handed out.
pub(crate) fn last_change_seq(db: Db<'_>) -> Result<i64> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT value FROM counters WHERE name = 'change_seq'")?
        .query_row([], |r| r.get(0))?)
}

/// Whether anything changed in (from, to].
pub(crate) fn changed_between(db: Db<'_>, from: i64, to: i64) -> Result<bool> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM records WHERE change_seq > ?1 AND change_seq <= ?2)
                 OR EXISTS (SELECT 1 FROM removed WHERE change_seq > ?1 AND change_seq <= ?2 AND created_seq <= ?1)",
        )?
        .query_row([from, to], |r| r.get(0))?)
}

/// One alert row (§4.3). A REMOVE carries only `alert_id` and `nhs_number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlertRow {
    pub change: Change,
    pub alert_id: String,
    pub nhs_number: String,
    pub plan_type: String,
    pub date_of_birth: Option<String>,
    pub start_date: String,
    pub end_date: Option<String>,
    pub authority: String,
    pub team: Option<String>,
    pub office_hours_phone: Option<String>,
    pub out_of_hours_phone: Option<String>,
    pub email: Option<String>,
}

const ALERT_SELECT: &str =
    "SELECT id, nhs_number, plan_type, date_of_birth, start_date, end_date, authority, team,
        office_hours_phone, out_of_hours_phone, email, created_seq FROM records";

fn alert_row(r: &Row<'_>, from: Option<i64>, secret: i64) -> rusqlite::Result<AlertRow> {
    let created: i64 = r.get(11)?;
    Ok(AlertRow {
        change: match from {
            Some(f) if created <= f => Change::Update,
            _ => Change::Add,
        },
        alert_id: super::records::alert_id(secret, r.get(0)?),
        nhs_number: r.get(1)?,
        plan_type: r.get(2)?,
        date_of_birth: r.get(3)?,
        start_date: r.get(4)?,
        end_date: r.get(5)?,
        authority: r.get(6)?,
        team: r.get(7)?,
        office_hours_phone: r.get(8)?,
        out_of_hours_phone: r.get(9)?,
        email: r.get(10)?,
    })
}

/// Rows of a FULL alert extract: every record held, in a stable order.
pub(crate) fn count_alerts_full(db: Db<'_>) -> Result<u64> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM records")?
        .query_row([], |r| r.get(0))?)
}

pub(crate) fn for_each_alert_full<E: From<IndexError>>(
    db: Db<'_>,
    f: impl FnMut(AlertRow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let secret = super::records::alert_secret(db)?;
    super::each_row(
        db.conn(),
        &format!("{ALERT_SELECT} ORDER BY nhs_number, plan_type, authority, id"),
        [],
        |r| alert_row(r, None, secret),
        f,
    )
}

/// Rows of a DELTA covering changes in (from, to]: ADD/UPDATE of current records,
/// REMOVE of records the site was sent and that were purged or deleted since.
pub(crate) fn count_alerts_delta(db: Db<'_>, from: i64, to: i64) -> Result<u64> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM records WHERE change_seq > ?1 AND change_seq <= ?2)
                  + (SELECT COUNT(*) FROM removed WHERE change_seq > ?1 AND change_seq <= ?2 AND created_seq <= ?1)",
        )?
        .query_row([from, to], |r| r.get(0))?)
}

pub(crate) fn for_each_alert_delta<E: From<IndexError>>(
    db: Db<'_>,
    from: i64,
    to: i64,
    mut f: impl FnMut(AlertRow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    super::each_row(
        db.conn(),
        "SELECT alert_id, nhs_number, change_seq FROM removed WHERE change_seq > ?1 AND change_seq <= ?2 AND created_seq <= ?1 ORDER BY change_seq",
        [from, to],
        |r| {
            Ok(AlertRow {
                change: Change::Remove,
                alert_id: r.get(0)?,
                nhs_number: r.get(1)?,
                plan_type: String::new(),
                date_of_birth: None,
                start_date: String::new(),
                end_date: None,
                authority: String::new(),
                team: None,
                office_hours_phone: None,
                out_of_hours_phone: None,
                email: None,
            })
        },
        &mut f,
    )?;
    let secret = super::records::alert_secret(db)?;
    super::each_row(
        db.conn(),
        &format!("{ALERT_SELECT} WHERE change_seq > ?1 AND change_seq <= ?2 ORDER BY change_seq"),
        [from, to],
        |r| alert_row(r, Some(from), secret),
        f,
    )
}

pub(crate) fn queue_alert_request(tx: &Tx<'_>, site: &str, at: &str, by: &str) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO alert_requests (site, requested_at, requested_by) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![site, at, by])?;
    Ok(())
}

/// Sites with a FULL requested and not yet sent.
pub(crate) fn pending_alert_requests(db: Db<'_>) -> Result<Vec<String>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT site FROM alert_requests WHERE done_at IS NULL ORDER BY site",
    )?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn finish_alert_requests(tx: &Tx<'_>, site: &str, at: &str) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "UPDATE alert_requests SET done_at = ?2 WHERE site = ?1 AND done_at IS NULL",
    )?
    .execute(params![site, at])?;
    Ok(())
}

/// Forgets what retention allows: event ids, sent notification rows and alert
/// tombstones older than `cutoff` (YYYY-MM-DD), and tombstones every site has seen.
pub(crate) fn purge_flows(tx: &Tx<'_>, cutoff: &str) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("DELETE FROM events_seen WHERE seen_on < ?1")?
        .execute([cutoff])?;
    conn.prepare_cached(
        "DELETE FROM notifications WHERE created_on < ?1 AND outbound_id IS NOT NULL",
    )?
    .execute([cutoff])?;
    conn.prepare_cached(
        "DELETE FROM inactive_notices WHERE created_on < ?1 AND outbound_id IS NOT NULL",
    )?
    .execute([cutoff])?;
    conn.prepare_cached("DELETE FROM removed WHERE change_seq <= (SELECT coalesce(MIN(last_seq), -1) FROM site_state)")?.execute([])?;
    Ok(())
}

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

/// How many days rejected-line details are kept (`report rejections`).
pub(crate) const REJECTION_DAYS: i64 = 90;

/// Forgets rejected-line details of messages received more than
/// [`REJECTION_DAYS`] before `now`. Receipts already sent are not affected.
pub(crate) fn purge_problems(tx: &Tx<'_>, now: chrono::DateTime<chrono::Utc>) -> Result<u64> {
    let before = crate::clock::rfc3339(now - chrono::Duration::days(REJECTION_DAYS));
    let conn = tx.conn();
    let n = conn
        .prepare_cached(
            "DELETE FROM problems WHERE receipt_id IN (SELECT r.id FROM receipts r JOIN messages m ON m.id = r.message_id
             WHERE m.received_at < ?1 AND NOT EXISTS (SELECT 1 FROM outbound o WHERE o.receipt_id = r.id AND o.state <> 'written'))",
        )?
        .execute([&before])?;
    Ok(n as u64)
}
