//! What an authority holds, for holdings files and lookups, and what it last sent.

use rusqlite::{params, OptionalExtension, Row};

use super::IndexError;
use super::{Db, Tx};

type Result<T> = std::result::Result<T, IndexError>;

/// A row of the holdings file (§4.5), dates as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holding {
    pub local_id: String,
    pub nhs_number: String,
    pub plan_type: String,
    pub date_of_birth: Option<String>,
    pub start_date: String,
    pub end_date: Option<String>,
    pub ended_reason: Option<String>,
    pub nhs_status: Option<String>,
    pub accesses: u64,
    pub last_accessed_at: Option<String>,
}

pub(crate) fn count_held(db: Db<'_>, authority: &str) -> Result<u64> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM records WHERE authority = ?1")?
        .query_row([authority], |r| r.get(0))?)
}

/// The columns of a [`Holding`], read by [`holding_row`]; the authority comes first.
const HOLDING_SELECT: &str = "SELECT r.authority, r.local_id, r.nhs_number, r.plan_type, r.date_of_birth, r.start_date, r.end_date,
        r.ended_reason, s.status, (SELECT COUNT(*) FROM accesses a WHERE a.record_id = r.id),
        (SELECT MAX(accessed_at) FROM accesses a WHERE a.record_id = r.id)
 FROM records r LEFT JOIN nhs_status s ON s.nhs_number = r.nhs_number";

fn holding_row(r: &Row<'_>) -> rusqlite::Result<(String, Holding)> {
    Ok((
        r.get(0)?,
        Holding {
            local_id: r.get(1)?,
            nhs_number: r.get(2)?,
            plan_type: r.get(3)?,
            date_of_birth: r.get(4)?,
            start_date: r.get(5)?,
            end_date: r.get(6)?,
            ended_reason: r.get(7)?,
            nhs_status: r.get(8)?,
            accesses: r.get(9)?,
            last_accessed_at: r.get(10)?,
        },
    ))
}

/// Streams an authority's holdings, ordered by local_id and plan type.
pub(crate) fn for_each_holding<E: From<IndexError>>(
    db: Db<'_>,
    authority: &str,
    mut f: impl FnMut(Holding) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    super::each_row(
        db.conn(),
        &format!("{HOLDING_SELECT} WHERE r.authority = ?1 ORDER BY r.local_id, r.plan_type"),
        [authority],
        holding_row,
        |(_, h)| f(h),
    )
}

/// Held records (any authority) with an NHS number, for `lookup`.
pub(crate) fn records_by_nhs(db: Db<'_>, nhs: &str) -> Result<Vec<(String, Holding)>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(&format!(
        "{HOLDING_SELECT} WHERE r.nhs_number = ?1 ORDER BY r.authority, r.local_id"
    ))?;
    let rows = stmt
        .query_map([nhs], holding_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---------------------------------------------------------------------------
// Authorities, decisions, audit
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AuthorityState {
    pub last_extracted_at: Option<String>,
    pub last_sequence: Option<u64>,
    pub last_full_at: Option<String>,
    pub last_delta_at: Option<String>,
}

pub(crate) fn authority_state(db: Db<'_>, authority: &str) -> Result<AuthorityState> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT last_extracted_at, last_sequence, last_full_at, last_delta_at FROM authority_state WHERE authority = ?1")?
        .query_row([authority], |r| {
            Ok(AuthorityState {
                last_extracted_at: r.get(0)?,
                last_sequence: r.get(1)?,
                last_full_at: r.get(2)?,
                last_delta_at: r.get(3)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

/// Records an applied extract: its time (never older than the last: a STALE file is
/// not applied), sequence and type.
pub(crate) fn record_applied_extract(
    tx: &Tx<'_>,
    authority: &str,
    extracted_at: &str,
    sequence: Option<u64>,
    full: bool,
    now: &str,
) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO authority_state (authority, last_extracted_at, last_sequence, last_full_at, last_delta_at)
         VALUES (?1, ?2, ?3, CASE WHEN ?4 THEN ?5 END, CASE WHEN ?4 THEN NULL ELSE ?5 END)
         ON CONFLICT (authority) DO UPDATE SET
           last_extracted_at = excluded.last_extracted_at,
           last_sequence = coalesce(excluded.last_sequence, last_sequence),
           last_full_at = CASE WHEN ?4 THEN ?5 ELSE last_full_at END,
           last_delta_at = CASE WHEN ?4 THEN last_delta_at ELSE ?5 END",
    )?
    .execute(params![authority, extracted_at, sequence, full, now])?;
    Ok(())
}

/// Notes the authorities configured now (the first time each is seen is kept).
pub(crate) fn note_configured<'a>(
    tx: &Tx<'_>,
    authorities: impl IntoIterator<Item = &'a str>,
    at: &str,
) -> Result<()> {
    let conn = tx.conn();
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO authority_seen (authority, first_seen_at) VALUES (?1, ?2)",
    )?;
    for code in authorities {
        stmt.execute(params![code, at])?;
    }
    Ok(())
}

/// When the hub first ran with this authority configured (`None`: never yet).
pub(crate) fn first_seen(db: Db<'_>, authority: &str) -> Result<Option<String>> {
    Ok(db
        .conn()
        .prepare_cached("SELECT first_seen_at FROM authority_seen WHERE authority = ?1")?
        .query_row([authority], |r| r.get(0))
        .optional()?)
}
