//! Index functions of the NHS-side flows: attendance events and access
//! notifications, NHS number status and inactive notices.

use rusqlite::{params, Row};

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
