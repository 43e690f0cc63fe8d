//! The ledger: every inbound message, its receipt and problems, the failures
//! counted against a file, operator decisions.

use rusqlite::{params, OptionalExtension, Row};

use super::IndexError;
use super::{Db, Tx};
use crate::model::{Decision, Folder, MessageKind, MessageState, Status};
use crate::validate::Problem;

type Result<T> = std::result::Result<T, IndexError>;

// ---------------------------------------------------------------------------
// Ledger
// ---------------------------------------------------------------------------

/// A message's row in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageRow {
    pub id: i64,
    pub mailbox: String,
    pub name: Vec<u8>,
    pub ctl_name: Option<Vec<u8>>,
    pub compressed: bool,
    pub sha256: Option<String>,
    pub received_at: String,
    pub kind: MessageKind,
    pub status: Status,
    pub records: u64,
    pub applied: u64,
    pub rejected: u64,
    pub warnings: u64,
    pub authority: Option<String>,
    pub extract_type: Option<String>,
    pub extracted_at: Option<String>,
    pub sequence: Option<u64>,
    pub src_folder: Folder,
    pub src_name: Vec<u8>,
    pub src_ctl_name: Option<Vec<u8>>,
    pub dest_folder: Folder,
    pub dest_name: Vec<u8>,
    pub dest_ctl_name: Option<Vec<u8>>,
    pub state: MessageState,
}

impl MessageRow {
    /// A message just found in a mailbox's `in/`, not decided yet.
    pub(crate) fn arriving(
        mailbox: &str,
        name: Vec<u8>,
        received_at: String,
        authority: Option<String>,
    ) -> MessageRow {
        MessageRow {
            id: 0,
            mailbox: mailbox.to_string(),
            src_name: name.clone(),
            name,
            ctl_name: None,
            compressed: false,
            sha256: None,
            received_at,
            kind: MessageKind::Refused,
            status: Status::Pending,
            records: 0,
            applied: 0,
            rejected: 0,
            warnings: 0,
            authority,
            extract_type: None,
            extracted_at: None,
            sequence: None,
            src_folder: Folder::In,
            src_ctl_name: None,
            dest_folder: Folder::Failed,
            dest_name: Vec::new(),
            dest_ctl_name: None,
            state: MessageState::Moving,
        }
    }
}

const MESSAGE_COLUMNS: &str = "id, mailbox, name, ctl_name, sha256, received_at, kind, status, records, applied, rejected, warnings, authority, extract_type, extracted_at, sequence, src_folder, dest_folder, dest_name, state, compressed, dest_ctl_name, src_name, src_ctl_name";

fn message_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        mailbox: r.get(1)?,
        name: r.get(2)?,
        ctl_name: r.get(3)?,
        sha256: r.get(4)?,
        received_at: r.get(5)?,
        kind: r.get(6)?,
        status: r.get(7)?,
        records: r.get(8)?,
        applied: r.get(9)?,
        rejected: r.get(10)?,
        warnings: r.get(11)?,
        authority: r.get(12)?,
        extract_type: r.get(13)?,
        extracted_at: r.get(14)?,
        sequence: r.get(15)?,
        src_folder: r.get(16)?,
        dest_folder: r.get(17)?,
        dest_name: r.get(18)?,
        state: r.get(19)?,
        compressed: r.get(20)?,
        dest_ctl_name: r.get(21)?,
        src_name: r.get(22)?,
        src_ctl_name: r.get(23)?,
    })
}

/// The id of an earlier message with the same content from the same mailbox.
pub(crate) fn find_duplicate(db: Db<'_>, mailbox: &str, sha256: &str) -> Result<Option<i64>> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached(
            "SELECT id FROM messages WHERE mailbox = ?1 AND sha256 = ?2 ORDER BY id LIMIT 1",
        )?
        .query_row(params![mailbox, sha256], |r| r.get(0))
        .optional()?)
}

/// Inserts a message; its outcome columns are filled by [`update_message`].
pub(crate) fn insert_message(tx: &Tx<'_>, m: &MessageRow) -> Result<i64> {
    let conn = tx.conn();
    conn.prepare_cached(
        "INSERT INTO messages (mailbox, name, ctl_name, sha256, received_at, kind, status, records, applied, rejected, warnings, authority, extract_type, extracted_at, sequence, src_folder, dest_folder, dest_name, state, compressed, dest_ctl_name, src_name, src_ctl_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
    )?
    .execute(params![
        m.mailbox, m.name, m.ctl_name, m.sha256, m.received_at, m.kind, m.status, m.records, m.applied, m.rejected,
        m.warnings, m.authority, m.extract_type, m.extracted_at, m.sequence, m.src_folder, m.dest_folder, m.dest_name, m.state,
        m.compressed, m.dest_ctl_name, m.src_name, m.src_ctl_name
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Writes a message's outcome and where its file goes.
pub(crate) fn update_message(tx: &Tx<'_>, m: &MessageRow) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "UPDATE messages SET status = ?2, records = ?3, applied = ?4, rejected = ?5, warnings = ?6, authority = ?7,
         extract_type = ?8, extracted_at = ?9, sequence = ?10, src_folder = ?11, dest_folder = ?12, dest_name = ?13, state = ?14,
         dest_ctl_name = ?15, src_name = ?16, src_ctl_name = ?17 WHERE id = ?1",
    )?
    .execute(params![
        m.id, m.status, m.records, m.applied, m.rejected, m.warnings, m.authority, m.extract_type, m.extracted_at,
        m.sequence, m.src_folder, m.dest_folder, m.dest_name, m.state, m.dest_ctl_name, m.src_name, m.src_ctl_name
    ])?;
    Ok(())
}

pub(crate) fn message(db: Db<'_>, id: i64) -> Result<Option<MessageRow>> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
        ))?
        .query_row([id], message_row)
        .optional()?)
}

/// Messages whose files have not been moved to their final folder yet.
pub(crate) fn messages_moving(db: Db<'_>) -> Result<Vec<MessageRow>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE state <> 'done' ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], message_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn mark_message_done(tx: &Tx<'_>, id: i64) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("UPDATE messages SET state = 'done' WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Messages decided whose receipt is not written yet: their files must not move.
pub(crate) fn messages_awaiting_receipt(db: Db<'_>) -> Result<std::collections::HashSet<i64>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT r.message_id FROM outbound o JOIN receipts r ON r.id = o.receipt_id WHERE o.state <> 'written'",
    )?;
    let ids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Names in a mailbox's `in/` of messages already decided and waiting to be moved:
/// never taken again as new messages.
pub(crate) fn decided_in_inbox(
    db: Db<'_>,
    mailbox: &str,
) -> Result<std::collections::HashSet<Vec<u8>>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT src_name FROM messages WHERE state <> 'done' AND src_folder = 'in' AND mailbox = ?1
         UNION SELECT src_ctl_name FROM messages WHERE state <> 'done' AND src_folder = 'in' AND mailbox = ?1 AND src_ctl_name IS NOT NULL",
    )?;
    let names = stmt
        .query_map([mailbox], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(names)
}

/// Counts a failure of the file `name` in a mailbox's `in/`: the number of passes in
/// a row it has failed with this same error.
pub(crate) fn note_failure(
    tx: &Tx<'_>,
    mailbox: &str,
    name: &[u8],
    error: &str,
    at: &str,
) -> Result<u32> {
    let conn = tx.conn();
    Ok(conn
        .prepare_cached(
            "INSERT INTO failures (mailbox, name, error, attempts, last_at) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (mailbox, name) DO UPDATE SET
                attempts = CASE WHEN error = excluded.error THEN attempts + 1 ELSE 1 END,
                error = excluded.error, last_at = excluded.last_at
             RETURNING attempts",
        )?
        .query_row(params![mailbox, name, error, at], |r| r.get(0))?)
}

/// Forgets the failures of a file (decided, or gone from `in/`).
pub(crate) fn forget_failures(tx: &Tx<'_>, mailbox: &str, name: &[u8]) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("DELETE FROM failures WHERE mailbox = ?1 AND name = ?2")?
        .execute(params![mailbox, name])?;
    Ok(())
}

/// This database's identity (marked on its mailbox root, §6.6), as 16 hex digits.
pub(crate) fn database_id(db: Db<'_>) -> Result<String> {
    let conn = db.conn();
    let id: i64 = conn
        .prepare_cached("SELECT value FROM counters WHERE name = 'database_id'")?
        .query_row([], |r| r.get(0))?;
    Ok(format!("{:016x}", id as u64))
}

/// Messages held in quarantine with no decision carried out yet.
pub(crate) fn quarantined(db: Db<'_>) -> Result<Vec<(MessageRow, Option<String>)>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS}, (SELECT decision FROM decisions d WHERE d.message_id = messages.id AND d.done_at IS NULL ORDER BY id DESC LIMIT 1)
         FROM messages WHERE status = 'QUARANTINED' ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], |r| Ok((message_row(r)?, r.get(24)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---------------------------------------------------------------------------
// Receipts and problems
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub records: u64,
    pub applied: u64,
    pub rejected: u64,
    pub warnings: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReceiptRow {
    pub id: i64,
    pub message_id: i64,
    pub status: Status,
    pub counts: Counts,
}

pub(crate) fn insert_receipt(
    tx: &Tx<'_>,
    message_id: i64,
    status: Status,
    c: Counts,
) -> Result<i64> {
    let conn = tx.conn();
    conn.prepare_cached("INSERT INTO receipts (message_id, status, records, applied, rejected, warnings) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![message_id, status, c.records, c.applied, c.rejected, c.warnings])?;
    Ok(conn.last_insert_rowid())
}

pub(crate) fn update_receipt(tx: &Tx<'_>, id: i64, status: Status, c: Counts) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("UPDATE receipts SET status = ?2, records = ?3, applied = ?4, rejected = ?5, warnings = ?6 WHERE id = ?1")?
        .execute(params![id, status, c.records, c.applied, c.rejected, c.warnings])?;
    Ok(())
}

pub(crate) fn receipt(db: Db<'_>, id: i64) -> Result<Option<ReceiptRow>> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT id, message_id, status, records, applied, rejected, warnings FROM receipts WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(ReceiptRow {
                id: r.get(0)?,
                message_id: r.get(1)?,
                status: r.get(2)?,
                counts: Counts {
                    records: r.get(3)?,
                    applied: r.get(4)?,
                    rejected: r.get(5)?,
                    warnings: r.get(6)?,
                },
            })
        })
        .optional()?)
}

pub(crate) fn insert_problem(tx: &Tx<'_>, receipt_id: i64, seq: u64, p: &Problem) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("INSERT INTO problems (receipt_id, seq, line, ref, severity, code, field, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?
        .execute(params![receipt_id, seq, p.line, p.reference, p.severity, p.code, p.field, p.message])?;
    Ok(())
}

/// A receipt's problems in receipt order: file-level first, then by line.
pub(crate) fn for_each_problem<E: From<IndexError>>(
    db: Db<'_>,
    receipt_id: i64,
    f: impl FnMut(Problem) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    super::each_row(
        db.conn(),
        "SELECT line, ref, severity, code, field, message FROM problems WHERE receipt_id = ?1 ORDER BY line IS NOT NULL, line, seq",
        [receipt_id],
        |r| {
            Ok(Problem {
                line: r.get(0)?,
                reference: r.get(1)?,
                severity: r.get(2)?,
                code: r.get(3)?,
                field: r.get(4)?,
                message: r.get(5)?,
            })
        },
        f,
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecisionRow {
    pub id: i64,
    pub message_id: i64,
    pub decision: Decision,
    pub requested_by: String,
}

pub(crate) fn queue_decision(
    tx: &Tx<'_>,
    message_id: i64,
    decision: Decision,
    at: &str,
    by: &str,
) -> Result<i64> {
    let conn = tx.conn();
    conn.prepare_cached("INSERT INTO decisions (message_id, decision, requested_at, requested_by) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![message_id, decision, at, by])?;
    Ok(conn.last_insert_rowid())
}

/// Decisions not yet carried out, oldest first (one per message: the newest wins).
pub(crate) fn pending_decisions(db: Db<'_>) -> Result<Vec<DecisionRow>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT id, message_id, decision, requested_by FROM decisions d WHERE done_at IS NULL
         AND id = (SELECT MAX(id) FROM decisions WHERE message_id = d.message_id AND done_at IS NULL) ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(DecisionRow {
                id: r.get(0)?,
                message_id: r.get(1)?,
                decision: r.get(2)?,
                requested_by: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Marks every open decision on a message as carried out.
pub(crate) fn finish_decisions(tx: &Tx<'_>, message_id: i64, at: &str) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached(
        "UPDATE decisions SET done_at = ?2 WHERE message_id = ?1 AND done_at IS NULL",
    )?
    .execute(params![message_id, at])?;
    Ok(())
}
