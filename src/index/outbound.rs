//! Outbound files reserved for writing, and the sequence numbers of each partner
//! and kind.

use rusqlite::{params, Row};

use super::IndexError;
use super::{Db, Tx};
use crate::config::{Format, Framing};
use crate::formats::Kind;
use crate::model::{Folder, OutboundState};

type Result<T> = std::result::Result<T, IndexError>;

// ---------------------------------------------------------------------------
// Outbound files and sequences
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboundRow {
    pub id: i64,
    pub mailbox: String,
    pub kind: Kind,
    pub sequence: u64,
    pub created_at: String,
    pub stem: String,
    pub format: Format,
    pub framing: Framing,
    pub receipt_id: Option<i64>,
    /// A second folder for a copy (`failed/`, beside a refused file).
    pub copy_to: Option<Folder>,
    pub params: Option<String>,
    pub state: OutboundState,
}

/// The next sequence number for a partner and kind (+1 per file, from 1).
pub(crate) fn next_sequence(tx: &Tx<'_>, mailbox: &str, kind: Kind) -> Result<u64> {
    let conn = tx.conn();
    Ok(conn
        .prepare_cached(
            "INSERT INTO sequences (mailbox, kind, last) VALUES (?1, ?2, 1)
             ON CONFLICT (mailbox, kind) DO UPDATE SET last = last + 1 RETURNING last",
        )?
        .query_row(params![mailbox, kind], |r| r.get(0))?)
}

pub(crate) fn insert_outbound(tx: &Tx<'_>, o: &OutboundRow) -> Result<i64> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO outbound (mailbox, kind, sequence, created_at, stem, format, framing, receipt_id, copy_to, state, params)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        o.mailbox, o.kind, o.sequence, o.created_at, o.stem, o.format, o.framing, o.receipt_id, o.copy_to, o.state,
        o.params
    ])?;
    Ok(conn.last_insert_rowid())
}

fn outbound_row(r: &Row<'_>) -> rusqlite::Result<OutboundRow> {
    Ok(OutboundRow {
        id: r.get(0)?,
        mailbox: r.get(1)?,
        kind: r.get(2)?,
        sequence: r.get(3)?,
        created_at: r.get(4)?,
        stem: r.get(5)?,
        format: r.get(6)?,
        framing: r.get(7)?,
        receipt_id: r.get(8)?,
        copy_to: r.get(9)?,
        state: r.get(10)?,
        params: r.get(11)?,
    })
}

const OUTBOUND_COLUMNS: &str =
    "id, mailbox, kind, sequence, created_at, stem, format, framing, receipt_id, copy_to, state, params";

/// Outbound files reserved but not yet written, oldest first.
pub(crate) fn pending_outbound(db: Db<'_>) -> Result<Vec<OutboundRow>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOUND_COLUMNS} FROM outbound WHERE state <> 'written' ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], outbound_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn mark_outbound_written(tx: &Tx<'_>, id: i64) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("UPDATE outbound SET state = 'written' WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// The newest outbound file of each kind for a mailbox: (kind, stem, created_at).
pub(crate) fn last_outbound(db: Db<'_>, mailbox: &str) -> Result<Vec<(String, String, String)>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT kind, stem, created_at FROM outbound o WHERE mailbox = ?1 AND id = (SELECT MAX(id) FROM outbound WHERE mailbox = ?1 AND kind = o.kind) ORDER BY kind",
    )?;
    let rows = stmt
        .query_map([mailbox], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Kind-specific parameters of a reserved outbound file (alerts: type, range, since).
pub(crate) fn set_outbound_params(tx: &Tx<'_>, id: i64, params: &str) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("UPDATE outbound SET params = ?2 WHERE id = ?1")?
        .execute(params![id, params])?;
    Ok(())
}
