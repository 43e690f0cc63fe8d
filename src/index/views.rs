//! Read-only queries for the operator views (`status`, `report`, `quarantine list`,
//! `validate`): aggregates and listings over the ledger and the records. They take a
//! [`Db`]: nothing here writes.

use rusqlite::{params, params_from_iter, OptionalExtension};

use super::{Db, IndexError};
use crate::formats::Kind;
use crate::model::Code;

type Result<T> = std::result::Result<T, IndexError>;

/// Open and ended records of an authority on `today` (`YYYY-MM-DD`), by plan type:
/// (plan type, open, ended).
pub(crate) fn records_by_plan(
    db: Db<'_>,
    authority: &str,
    today: &str,
) -> Result<Vec<(String, u64, u64)>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT plan_type, SUM(end_date IS NULL OR end_date > ?2), SUM(end_date IS NOT NULL AND end_date <= ?2)
         FROM records WHERE authority = ?1 GROUP BY plan_type",
    )?;
    let rows = stmt
        .query_map(params![authority, today], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Files of a mailbox received since `since` (RFC 3339) that ended REJECTED, and
/// QUARANTINED.
pub(crate) fn files_rejected_quarantined(
    db: Db<'_>,
    mailbox: &str,
    since: &str,
) -> Result<(u64, u64)> {
    Ok(db.conn().prepare_cached(
        "SELECT COUNT(DISTINCT CASE WHEN r.status = 'REJECTED' THEN m.id END), COUNT(DISTINCT CASE WHEN r.status = 'QUARANTINED' THEN m.id END)
         FROM messages m JOIN receipts r ON r.message_id = m.id WHERE m.mailbox = ?1 AND m.received_at >= ?2",
    )?
    .query_row(params![mailbox, since], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// Lines rejected (ERROR) in a mailbox's files received since `since`, by code, as
/// their final receipts say.
pub(crate) fn lines_rejected_by_code(
    db: Db<'_>,
    mailbox: &str,
    since: &str,
) -> Result<Vec<(String, u64)>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT p.code, COUNT(*) FROM messages m JOIN receipts r ON r.message_id = m.id JOIN problems p ON p.receipt_id = r.id
         WHERE m.mailbox = ?1 AND m.received_at >= ?2 AND p.line IS NOT NULL AND p.severity = 'ERROR'
           AND r.id = (SELECT MAX(id) FROM receipts WHERE message_id = m.id)
         GROUP BY p.code ORDER BY p.code",
    )?;
    let rows = stmt
        .query_map(params![mailbox, since], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Access notifications created for an authority since `since_day` (`YYYY-MM-DD`).
pub(crate) fn notifications_since(db: Db<'_>, authority: &str, since_day: &str) -> Result<u64> {
    Ok(db
        .conn()
        .prepare_cached(
            "SELECT COUNT(*) FROM notifications WHERE authority = ?1 AND created_on >= ?2",
        )?
        .query_row(params![authority, since_day], |r| r.get(0))?)
}

/// Extracts received in `[from, to)` (RFC 3339), by authority: (authority, files,
/// records).
pub(crate) fn extracts_between(
    db: Db<'_>,
    from: &str,
    to: &str,
) -> Result<Vec<(String, u64, u64)>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT authority, COUNT(*), SUM(records) FROM messages WHERE kind = 'extract' AND authority IS NOT NULL
         AND received_at >= ?1 AND received_at < ?2 GROUP BY authority ORDER BY authority",
    )?;
    let rows = stmt
        .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One rejected line of an extract (`report rejections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub received_at: String,
    pub authority: String,
    pub file: String,
    pub line: u64,
    pub local_id: String,
    pub code: String,
    pub field: String,
    pub message: String,
}

/// Rejected lines of extracts, newest file first; `codes` empty means every code.
pub(crate) fn rejections(
    db: Db<'_>,
    authority: Option<&str>,
    since: Option<&str>,
    codes: &[Code],
) -> Result<Vec<Rejection>> {
    let mut sql = String::from(
        "SELECT m.received_at, m.authority, m.name, p.line, p.ref, p.code, p.field, p.message
         FROM problems p JOIN receipts r ON r.id = p.receipt_id JOIN messages m ON m.id = r.message_id
         WHERE m.kind = 'extract' AND p.line IS NOT NULL AND p.severity = 'ERROR'
           AND r.id = (SELECT MAX(id) FROM receipts WHERE message_id = m.id)",
    );
    let mut args: Vec<String> = Vec::new();
    if let Some(a) = authority {
        args.push(a.to_string());
        sql.push_str(&format!(" AND m.authority = ?{}", args.len()));
    }
    if let Some(s) = since {
        args.push(s.to_string());
        sql.push_str(&format!(" AND m.received_at >= ?{}", args.len()));
    }
    if !codes.is_empty() {
        let marks: Vec<String> = codes
            .iter()
            .map(|c| {
                args.push(c.as_str().to_string());
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND p.code IN ({})", marks.join(", ")));
    }
    sql.push_str(" ORDER BY m.received_at DESC, m.id DESC, p.line, p.seq");
    let mut stmt = db.conn().prepare(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            Ok(Rejection {
                received_at: r.get(0)?,
                authority: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                file: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(2)?).into_owned(),
                line: r.get(3)?,
                local_id: r.get(4)?,
                code: r.get(5)?,
                field: r.get(6)?,
                message: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The newest message of a mailbox: (received at, name, status).
pub(crate) fn last_message(db: Db<'_>, mailbox: &str) -> Result<Option<(String, String, String)>> {
    Ok(db
        .conn()
        .prepare_cached(
            "SELECT received_at, name, status FROM messages WHERE mailbox = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([mailbox], |r| {
            Ok((
                r.get(0)?,
                String::from_utf8_lossy(&r.get::<_, Vec<u8>>(1)?).into_owned(),
                r.get(2)?,
            ))
        })
        .optional()?)
}

/// Why a message is quarantined (its MASS_END row).
pub(crate) fn quarantine_reason(db: Db<'_>, message_id: i64) -> Result<Option<String>> {
    Ok(db
        .conn()
        .prepare_cached(
            "SELECT p.message FROM problems p JOIN receipts r ON r.id = p.receipt_id
             WHERE r.message_id = ?1 AND p.code = ?2 ORDER BY r.id DESC LIMIT 1",
        )?
        .query_row(params![message_id, Code::MassEnd], |r| r.get(0))
        .optional()?)
}

/// The sequence the next file of a kind to a mailbox would get (for `validate`,
/// which reserves nothing).
pub(crate) fn next_sequence_preview(db: Db<'_>, mailbox: &str, kind: Kind) -> Result<u64> {
    Ok(db
        .conn()
        .prepare_cached("SELECT last + 1 FROM sequences WHERE mailbox = ?1 AND kind = ?2")?
        .query_row(params![mailbox, kind], |r| r.get(0))
        .optional()?
        .unwrap_or(1))
}
