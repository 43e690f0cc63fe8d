//! The MESH API transport's ledger (SPEC §9): each message taken from the hub's MESH
//! inbox by its MESH message id, each outbound file sent by its name, the REPORTs
//! received, and when the hub last polled and shook hands.
//!
//! Owns the `mesh_*` tables. Every step of a transfer is its own transaction, written
//! before the next step starts, so that a crash at any point is finished (or repeated
//! only where its outcome is unknown) by the next poll.

use rusqlite::{params, OptionalExtension};

use super::{Db, IndexError, Tx};
use crate::model::{MeshInKind, MeshInState, MeshOutState};

type Result<T> = std::result::Result<T, IndexError>;

/// A message from the hub's MESH inbox, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inbound {
    pub message_id: String,
    pub sender: Option<String>,
    pub mailbox: Option<String>,
    pub kind: MeshInKind,
    pub state: MeshInState,
}

fn inbound_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Inbound> {
    Ok(Inbound {
        message_id: r.get(0)?,
        sender: r.get(1)?,
        mailbox: r.get(2)?,
        kind: r.get(3)?,
        state: r.get(4)?,
    })
}

/// What the ledger knows of one inbox message.
pub(crate) fn inbound(db: Db<'_>, message_id: &str) -> Result<Option<Inbound>> {
    Ok(db
        .conn()
        .prepare_cached(
            "SELECT message_id, sender, mailbox, kind, state FROM mesh_inbound WHERE message_id = ?1",
        )?
        .query_row([message_id], inbound_row)
        .optional()?)
}

/// Inbox messages recorded but not yet acknowledged (a crash came between).
pub(crate) fn unacknowledged(db: Db<'_>) -> Result<Vec<Inbound>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT message_id, sender, mailbox, kind, state FROM mesh_inbound WHERE state <> ?1 ORDER BY message_id",
    )?;
    let rows = stmt
        .query_map([MeshInState::Acked], inbound_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Records (or moves on) one inbox message.
pub(crate) fn set_inbound(tx: &Tx<'_>, m: &Inbound, bytes: u64, at: &str) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO mesh_inbound (message_id, sender, mailbox, kind, state, bytes, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (message_id) DO UPDATE SET state = excluded.state, at = excluded.at",
        )?
        .execute(params![
            m.message_id,
            m.sender,
            m.mailbox,
            m.kind,
            m.state,
            bytes,
            at
        ])?;
    Ok(())
}

/// An outbound file for a `mesh_api` partner, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outbound {
    pub mailbox: String,
    pub file: String,
    pub local_id: String,
    pub message_id: Option<String>,
    pub chunks: u32,
    pub state: MeshOutState,
    pub attempts: u32,
    pub error: Option<String>,
}

fn outbound_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Outbound> {
    Ok(Outbound {
        mailbox: r.get(0)?,
        file: r.get(1)?,
        local_id: r.get(2)?,
        message_id: r.get(3)?,
        chunks: r.get(4)?,
        state: r.get(5)?,
        attempts: r.get(6)?,
        error: r.get(7)?,
    })
}

const OUTBOUND_COLUMNS: &str =
    "mailbox, file, local_id, message_id, chunks, state, attempts, error";

/// What the ledger knows of one outbound file.
pub(crate) fn outbound(db: Db<'_>, mailbox: &str, file: &str) -> Result<Option<Outbound>> {
    Ok(db
        .conn()
        .prepare_cached(&format!(
            "SELECT {OUTBOUND_COLUMNS} FROM mesh_outbound WHERE mailbox = ?1 AND file = ?2"
        ))?
        .query_row([mailbox, file], outbound_row)
        .optional()?)
}

/// The outbound file a MESH message id was given to.
pub(crate) fn outbound_by_message(db: Db<'_>, message_id: &str) -> Result<Option<Outbound>> {
    Ok(db
        .conn()
        .prepare_cached(&format!(
            "SELECT {OUTBOUND_COLUMNS} FROM mesh_outbound WHERE message_id = ?1 COLLATE NOCASE"
        ))?
        .query_row([message_id], outbound_row)
        .optional()?)
}

/// Records (or moves on) one outbound file.
pub(crate) fn set_outbound(tx: &Tx<'_>, o: &Outbound, at: &str) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO mesh_outbound (mailbox, file, local_id, message_id, chunks, state, attempts, error, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (mailbox, file) DO UPDATE SET local_id = excluded.local_id,
                 message_id = excluded.message_id, chunks = excluded.chunks, state = excluded.state,
                 attempts = excluded.attempts, error = excluded.error, at = excluded.at",
        )?
        .execute(params![
            o.mailbox,
            o.file,
            o.local_id,
            o.message_id,
            o.chunks,
            o.state,
            o.attempts,
            o.error,
            at
        ])?;
    Ok(())
}

/// A REPORT received about a message the hub sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub report_id: String,
    pub linked_id: Option<String>,
    pub mailbox: Option<String>,
    pub file: Option<String>,
    pub code: String,
    pub description: String,
    pub event: String,
    pub at: String,
}

/// Records a REPORT (once: the same report listed again changes nothing).
pub(crate) fn add_report(tx: &Tx<'_>, r: &Report) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT OR IGNORE INTO mesh_reports (report_id, linked_id, mailbox, file, code, description, event, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            r.report_id,
            r.linked_id,
            r.mailbox,
            r.file,
            r.code,
            r.description,
            r.event,
            r.at
        ])?;
    Ok(())
}

/// Every REPORT received, oldest first.
pub(crate) fn reports(db: Db<'_>) -> Result<Vec<Report>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT report_id, linked_id, mailbox, file, code, description, event, at FROM mesh_reports ORDER BY at, report_id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Report {
                report_id: r.get(0)?,
                linked_id: r.get(1)?,
                mailbox: r.get(2)?,
                file: r.get(3)?,
                code: r.get(4)?,
                description: r.get(5)?,
                event: r.get(6)?,
                at: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Outbound files the server refused (never sent), oldest first.
pub(crate) fn refused(db: Db<'_>) -> Result<Vec<Outbound>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOUND_COLUMNS} FROM mesh_outbound WHERE state = ?1 ORDER BY at, file"
    ))?;
    let rows = stmt
        .query_map([MeshOutState::Refused], outbound_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// How many messages from unknown or non-`mesh_api` senders were kept.
pub(crate) fn kept_count(db: Db<'_>) -> Result<u64> {
    Ok(db
        .conn()
        .prepare_cached("SELECT count(*) FROM mesh_inbound WHERE kind = ?1")?
        .query_row([MeshInKind::Kept], |r| r.get(0))?)
}

/// A partner's mailbox, when its last MESH message came in and its last file went out.
pub(crate) type LastSeen = (String, Option<String>, Option<String>);

/// Per partner mailbox: the time of the last message in and of the last file sent.
pub(crate) fn last_per_partner(db: Db<'_>) -> Result<Vec<LastSeen>> {
    let conn = db.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT mailbox, max(inn), max(outt) FROM (
             SELECT mailbox, at AS inn, NULL AS outt FROM mesh_inbound WHERE kind = ?1 AND mailbox IS NOT NULL
             UNION ALL
             SELECT mailbox, NULL, at FROM mesh_outbound WHERE state = ?2)
         GROUP BY mailbox ORDER BY mailbox",
    )?;
    let rows = stmt
        .query_map(params![MeshInKind::Data, MeshOutState::Sent], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// A value of the transport's own state (`last_poll`, `last_handshake`).
pub(crate) fn state(db: Db<'_>, key: &str) -> Result<Option<String>> {
    Ok(db
        .conn()
        .prepare_cached("SELECT value FROM mesh_state WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_state(tx: &Tx<'_>, key: &str, value: &str) -> Result<()> {
    tx.conn()
        .prepare_cached("INSERT OR REPLACE INTO mesh_state (key, value) VALUES (?1, ?2)")?
        .execute([key, value])?;
    Ok(())
}

/// Whether the pipeline has taken a message of this name from this mailbox (a MESH
/// pair placed just before a crash may have been processed already).
pub(crate) fn taken_by_pipeline(db: Db<'_>, mailbox: &str, name: &str) -> Result<bool> {
    Ok(db
        .conn()
        .prepare_cached("SELECT 1 FROM messages WHERE mailbox = ?1 AND name = ?2 LIMIT 1")?
        .query_row(params![mailbox, name.as_bytes()], |_| Ok(()))
        .optional()?
        .is_some())
}
