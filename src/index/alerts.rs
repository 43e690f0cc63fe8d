//! Index functions of the alert extracts (SPEC §6.2): each site's last sequence,
//! the rows of a FULL or a DELTA, and operators' requests for a FULL.

use crate::model::Change;
use rusqlite::{params, OptionalExtension, Row};

use super::IndexError;
use super::{Db, Tx};

type Result<T> = std::result::Result<T, IndexError>;

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
