//! Queries and updates over an open connection (or transaction). Each function is
//! one statement or a few, prepared and cached; transactions are the caller's.

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::bound::{BorrowedStatement, Param};
use super::IndexError;
use crate::config::{Format, Framing};
use crate::formats::Kind;
use crate::model::{
    Decision, EndedReason, Folder, MessageKind, MessageState, OutboundState, Status,
};
use crate::validate::{ExtractRecord, PlanType, Problem};

type Result<T> = std::result::Result<T, IndexError>;

fn date_text(d: Option<NaiveDate>) -> Option<String> {
    use chrono::Datelike;
    d.map(|d| format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()))
}

// ---------------------------------------------------------------------------
// Ledger
// ---------------------------------------------------------------------------

/// A message's row in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
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
    pub fn arriving(
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
pub fn find_duplicate(conn: &Connection, mailbox: &str, sha256: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM messages WHERE mailbox = ?1 AND sha256 = ?2 ORDER BY id LIMIT 1",
        )?
        .query_row(params![mailbox, sha256], |r| r.get(0))
        .optional()?)
}

/// Inserts a message; its outcome columns are filled by [`update_message`].
pub fn insert_message(conn: &Connection, m: &MessageRow) -> Result<i64> {
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
pub fn update_message(conn: &Connection, m: &MessageRow) -> Result<()> {
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

pub fn message(conn: &Connection, id: i64) -> Result<Option<MessageRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
        ))?
        .query_row([id], message_row)
        .optional()?)
}

/// Messages whose files have not been moved to their final folder yet.
pub fn messages_moving(conn: &Connection) -> Result<Vec<MessageRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE state <> 'done' ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], message_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn mark_message_done(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("UPDATE messages SET state = 'done' WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Messages decided whose receipt is not written yet: their files must not move.
pub fn messages_awaiting_receipt(conn: &Connection) -> Result<std::collections::HashSet<i64>> {
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
pub fn decided_in_inbox(
    conn: &Connection,
    mailbox: &str,
) -> Result<std::collections::HashSet<Vec<u8>>> {
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
pub fn note_failure(
    conn: &Connection,
    mailbox: &str,
    name: &[u8],
    error: &str,
    at: &str,
) -> Result<u32> {
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
pub fn forget_failures(conn: &Connection, mailbox: &str, name: &[u8]) -> Result<()> {
    conn.prepare_cached("DELETE FROM failures WHERE mailbox = ?1 AND name = ?2")?
        .execute(params![mailbox, name])?;
    Ok(())
}

/// This database's identity (marked on its mailbox root, §6.6), as 16 hex digits.
pub fn database_id(conn: &Connection) -> Result<String> {
    let id: i64 = conn
        .prepare_cached("SELECT value FROM counters WHERE name = 'database_id'")?
        .query_row([], |r| r.get(0))?;
    Ok(format!("{:016x}", id as u64))
}

/// Messages held in quarantine with no decision carried out yet.
pub fn quarantined(conn: &Connection) -> Result<Vec<(MessageRow, Option<String>)>> {
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
pub struct Counts {
    pub records: u64,
    pub applied: u64,
    pub rejected: u64,
    pub warnings: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRow {
    pub id: i64,
    pub message_id: i64,
    pub status: Status,
    pub counts: Counts,
}

pub fn insert_receipt(
    conn: &Connection,
    message_id: i64,
    status: Status,
    c: Counts,
) -> Result<i64> {
    conn.prepare_cached("INSERT INTO receipts (message_id, status, records, applied, rejected, warnings) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![message_id, status, c.records, c.applied, c.rejected, c.warnings])?;
    Ok(conn.last_insert_rowid())
}

pub fn update_receipt(conn: &Connection, id: i64, status: Status, c: Counts) -> Result<()> {
    conn.prepare_cached("UPDATE receipts SET status = ?2, records = ?3, applied = ?4, rejected = ?5, warnings = ?6 WHERE id = ?1")?
        .execute(params![id, status, c.records, c.applied, c.rejected, c.warnings])?;
    Ok(())
}

pub fn receipt(conn: &Connection, id: i64) -> Result<Option<ReceiptRow>> {
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

pub fn insert_problem(conn: &Connection, receipt_id: i64, seq: u64, p: &Problem) -> Result<()> {
    conn.prepare_cached("INSERT INTO problems (receipt_id, seq, line, ref, severity, code, field, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?
        .execute(params![receipt_id, seq, p.line, p.reference, p.severity, p.code, p.field, p.message])?;
    Ok(())
}

/// A receipt's problems in receipt order: file-level first, then by line.
pub fn for_each_problem<E: From<IndexError>>(
    conn: &Connection,
    receipt_id: i64,
    f: impl FnMut(Problem) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    super::each_row(
        conn,
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

// ---------------------------------------------------------------------------
// Outbound files and sequences
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRow {
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
pub fn next_sequence(conn: &Connection, mailbox: &str, kind: Kind) -> Result<u64> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO sequences (mailbox, kind, last) VALUES (?1, ?2, 1)
             ON CONFLICT (mailbox, kind) DO UPDATE SET last = last + 1 RETURNING last",
        )?
        .query_row(params![mailbox, kind], |r| r.get(0))?)
}

pub fn insert_outbound(conn: &Connection, o: &OutboundRow) -> Result<i64> {
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
pub fn pending_outbound(conn: &Connection) -> Result<Vec<OutboundRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OUTBOUND_COLUMNS} FROM outbound WHERE state <> 'written' ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], outbound_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn outbound(conn: &Connection, id: i64) -> Result<Option<OutboundRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {OUTBOUND_COLUMNS} FROM outbound WHERE id = ?1"
        ))?
        .query_row([id], outbound_row)
        .optional()?)
}

pub fn mark_outbound_written(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("UPDATE outbound SET state = 'written' WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// The newest outbound file of each kind for a mailbox: (kind, stem, created_at).
pub fn last_outbound(conn: &Connection, mailbox: &str) -> Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, stem, created_at FROM outbound o WHERE mailbox = ?1 AND id = (SELECT MAX(id) FROM outbound WHERE mailbox = ?1 AND kind = o.kind) ORDER BY kind",
    )?;
    let rows = stmt
        .query_map([mailbox], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// A held record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub id: i64,
    pub nhs_number: String,
    pub date_of_birth: Option<String>,
    pub start_date: String,
    pub end_date: Option<String>,
    pub ended_reason: Option<String>,
    pub team: Option<String>,
    pub office_hours_phone: Option<String>,
    pub out_of_hours_phone: Option<String>,
    pub email: Option<String>,
}

/// Hands out change sequence numbers (they order changes for the sites' alert
/// DELTAs) from memory; [`ChangeSeq::save`] stores the last one given before the
/// transaction commits. Numbers only grow; a rolled-back savepoint leaves a gap.
#[derive(Debug)]
pub struct ChangeSeq {
    next: i64,
}

impl ChangeSeq {
    /// Reads the counter (inside the transaction that will use it).
    pub fn load(conn: &Connection) -> Result<ChangeSeq> {
        let last: i64 = conn
            .prepare_cached("SELECT value FROM counters WHERE name = 'change_seq'")?
            .query_row([], |r| r.get(0))?;
        Ok(ChangeSeq { next: last + 1 })
    }

    fn take(&mut self) -> i64 {
        self.next += 1;
        self.next - 1
    }

    /// Writes the counter back (never lowering it).
    pub fn save(&self, conn: &Connection) -> Result<()> {
        conn.prepare_cached(
            "UPDATE counters SET value = max(value, ?1) WHERE name = 'change_seq'",
        )?
        .execute([self.next - 1])?;
        Ok(())
    }
}

pub fn find_record(
    conn: &Connection,
    authority: &str,
    local_id: &str,
    plan: PlanType,
) -> Result<Option<StoredRecord>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, nhs_number, date_of_birth, start_date, end_date, ended_reason, team, office_hours_phone, out_of_hours_phone, email
             FROM records WHERE authority = ?1 AND local_id = ?2 AND plan_type = ?3",
        )?
        .query_row(params![authority, local_id, plan.as_str()], |r| {
            Ok(StoredRecord {
                id: r.get(0)?,
                nhs_number: r.get(1)?,
                date_of_birth: r.get(2)?,
                start_date: r.get(3)?,
                end_date: r.get(4)?,
                ended_reason: r.get(5)?,
                team: r.get(6)?,
                office_hours_phone: r.get(7)?,
                out_of_hours_phone: r.get(8)?,
                email: r.get(9)?,
            })
        })
        .optional()?)
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Inserted,
    Updated,
    Unchanged,
}

/// A date as stored (`YYYY-MM-DD`), formatted without allocating.
#[derive(Clone)]
enum DateText {
    Short([u8; 10]),
    /// A year outside 0000–9999 (an extract cannot carry one): chrono's own text.
    Long(String),
}

impl DateText {
    fn new(d: NaiveDate) -> DateText {
        use chrono::Datelike;
        match u32::try_from(d.year()).ok().filter(|y| *y <= 9999) {
            None => DateText::Long(date_text(Some(d)).unwrap_or_default()),
            Some(y) => {
                let mut b = *b"0000-00-00";
                for (i, p) in [1000, 100, 10, 1].iter().enumerate() {
                    b[i] = b'0' + ((y / p) % 10) as u8;
                }
                b[5] = b'0' + (d.month() / 10) as u8;
                b[6] = b'0' + (d.month() % 10) as u8;
                b[8] = b'0' + (d.day() / 10) as u8;
                b[9] = b'0' + (d.day() % 10) as u8;
                DateText::Short(b)
            }
        }
    }
    fn as_str(&self) -> &str {
        match self {
            DateText::Short(b) => std::str::from_utf8(b).unwrap_or_default(),
            DateText::Long(s) => s,
        }
    }
}

/// A record's column values as they are stored, borrowed or on the stack.
struct Columns<'r> {
    record: &'r ExtractRecord,
    nhs: [u8; 10],
    dob: Option<DateText>,
    start: Option<DateText>,
    end: Option<DateText>,
    reason: Option<&'static str>,
    team: Option<&'r str>,
    office_hours_phone: Option<&'r str>,
    out_of_hours_phone: Option<&'r str>,
    email: Option<&'r str>,
}

impl<'r> Columns<'r> {
    fn of(r: &'r ExtractRecord) -> Columns<'r> {
        let dt = |d: Option<NaiveDate>| d.map(DateText::new);
        let end = dt(r.end_date);
        Columns {
            record: r,
            nhs: r.nhs_number.map(|n| n.ascii()).unwrap_or([b'0'; 10]),
            dob: dt(r.date_of_birth),
            start: dt(r.start_date),
            end,
            reason: r.end_date.map(|_| EndedReason::Authority.as_str()),
            team: r.team.as_deref(),
            office_hours_phone: r.office_hours_phone.as_deref(),
            out_of_hours_phone: r.out_of_hours_phone.as_deref(),
            email: r.email.as_deref(),
        }
    }

    fn nhs(&self) -> &str {
        std::str::from_utf8(&self.nhs).unwrap_or_default()
    }

    /// The stored text of each content column, in `CONTENT_COLUMNS` order.
    fn texts(&self) -> [Option<&str>; 9] {
        [
            Some(self.nhs()),
            self.dob.as_ref().map(DateText::as_str),
            self.start.as_ref().map(DateText::as_str),
            self.end.as_ref().map(DateText::as_str),
            self.reason,
            self.team,
            self.office_hours_phone,
            self.out_of_hours_phone,
            self.email,
        ]
    }

    /// The content hash stored in `records.row_hash`: xxh3-64 over the content
    /// columns, each length-prefixed (absent = `u32::MAX`). Never 0 (0 = unknown).
    fn hash(&self) -> i64 {
        hash_texts(&self.texts())
    }
}

/// What INSERT and UPDATE of a record bind first: the content columns (?1..?9), the
/// content hash (?10) and the change sequence number (?11).
fn content_params<'a>(c: &'a Columns<'_>, hash: i64, seq: i64) -> [Param<'a>; 11] {
    let t = c.texts().map(Param::from);
    [
        t[0],
        t[1],
        t[2],
        t[3],
        t[4],
        t[5],
        t[6],
        t[7],
        t[8],
        Param::Int(hash),
        Param::Int(seq),
    ]
}

/// The content hash of a valid record as [`RecordWriter`] would store it (pure; the
/// extract's reading thread computes it).
pub fn content_hash(r: &ExtractRecord) -> i64 {
    Columns::of(r).hash()
}

/// The content columns an upsert compares, in order.
const CONTENT_COLUMNS: &str = "nhs_number, date_of_birth, start_date, end_date, ended_reason, team, office_hours_phone, out_of_hours_phone, email";

fn hash_texts(texts: &[Option<&str>; 9]) -> i64 {
    let mut buf = [0u8; 512];
    let mut v = Vec::new();
    let mut n = 0;
    let total: usize = texts.iter().map(|t| 4 + t.map_or(0, str::len)).sum();
    let out: &mut [u8] = if total <= buf.len() {
        &mut buf[..total]
    } else {
        v.resize(total, 0);
        &mut v[..]
    };
    for t in texts {
        let len = t.map_or(u32::MAX, |t| t.len() as u32);
        out[n..n + 4].copy_from_slice(&len.to_le_bytes());
        n += 4;
        if let Some(t) = t {
            out[n..n + t.len()].copy_from_slice(t.as_bytes());
            n += t.len();
        }
    }
    match xxhash_rust::xxh3::xxh3_64(out) as i64 {
        0 => 1,
        h => h,
    }
}

/// What is held under one key, as [`for_each_held`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub id: i64,
    /// `records.row_hash`; 0 when unknown (a row the hub ended, or one stored before
    /// schema version 2): the next upsert compares columns instead.
    pub hash: i64,
    /// Open on the reference date it was read for.
    pub open: bool,
}

impl Held {
    /// What is held after this file wrote the record (it is in the file: open or not
    /// no longer matters for the FULL rule).
    fn written(id: i64, hash: i64) -> Held {
        Held {
            id,
            hash,
            open: true,
        }
    }
}

/// Calls `f(local_id, plan_type, held)` (the stored UTF-8 bytes) for every record of
/// an authority, open on `on` or not, in key order, as long as it holds at most
/// `limit` records. Returns `false` (having stopped after `limit` calls) when it holds
/// more: the caller then discards what it was given.
pub fn for_each_held(
    conn: &Connection,
    authority: &str,
    on: NaiveDate,
    limit: u64,
    mut f: impl FnMut(&[u8], &[u8], Held),
) -> Result<bool> {
    let on = date_text(Some(on));
    let mut stmt = conn.prepare_cached(
        "SELECT id, local_id, plan_type, row_hash, end_date IS NULL OR end_date > ?2 FROM records WHERE authority = ?1 ORDER BY local_id, plan_type",
    )?;
    let mut rows = stmt.query(params![authority, on])?;
    let mut seen = 0u64;
    while let Some(r) = rows.next()? {
        if seen == limit {
            return Ok(false);
        }
        seen += 1;
        let held = Held {
            id: r.get(0)?,
            hash: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            open: r.get(4)?,
        };
        let local_id = r.get_ref(1)?.as_bytes().map_err(rusqlite::Error::from)?;
        let plan = r.get_ref(2)?.as_bytes().map_err(rusqlite::Error::from)?;
        f(local_id, plan, held);
    }
    Ok(true)
}

/// Upserts valid records with statements prepared once per file. An unchanged record
/// costs a compare of content hashes when the caller knows what is held
/// ([`RecordWriter::upsert_known`]), else one read and a compare of column values;
/// never a write.
pub struct RecordWriter<'c> {
    conn: &'c Connection,
    find: rusqlite::Statement<'c>,
    insert: BorrowedStatement<'c>,
    update: BorrowedStatement<'c>,
    set_hash: rusqlite::Statement<'c>,
    /// The earliest 18th birthday among the CPP/LAC records written (see [`DueDays`]).
    due: DueDays,
}

impl<'c> RecordWriter<'c> {
    pub fn new(conn: &'c Connection) -> Result<Self> {
        Ok(RecordWriter {
            conn,
            find: conn.prepare(&format!(
                "SELECT id, {CONTENT_COLUMNS}, row_hash FROM records WHERE authority = ?1 AND local_id = ?2 AND plan_type = ?3"
            ))?,
            insert: BorrowedStatement::prepare(
                conn,
                // ?1..?9: the content columns, as in UPDATE below (`content_params`).
                "INSERT INTO records (nhs_number, date_of_birth, start_date, end_date, ended_reason,
                 team, office_hours_phone, out_of_hours_phone, email, row_hash, change_seq, created_seq, authority, local_id, plan_type)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14)
                 ON CONFLICT (authority, local_id, plan_type) DO NOTHING",
            )?,
            update: BorrowedStatement::prepare(
                conn,
                "UPDATE records SET nhs_number = ?1, date_of_birth = ?2, start_date = ?3, end_date = ?4, ended_reason = ?5,
                 team = ?6, office_hours_phone = ?7, out_of_hours_phone = ?8, email = ?9, row_hash = ?10, change_seq = ?11 WHERE id = ?12",
            )?,
            set_hash: conn.prepare("UPDATE records SET row_hash = ?2 WHERE id = ?1")?,
            due: DueDays::default(),
        })
    }

    /// Stores what the writes mean for the age-18 ending (call before the
    /// transaction commits).
    pub fn save(&self, conn: &Connection) -> Result<()> {
        self.due.save(conn)
    }

    /// Upserts a valid record, reading what is held under its key first.
    pub fn upsert(
        &mut self,
        seqs: &mut ChangeSeq,
        authority: &str,
        r: &ExtractRecord,
    ) -> Result<(Upserted, Held)> {
        let cols = Columns::of(r);
        let texts = cols.texts();
        let existing: Option<(i64, bool, Option<i64>)> = self
            .find
            .query_row(
                params![authority, r.local_id, r.plan_type.as_str()],
                |row| {
                    let mut same = true;
                    for (i, want) in texts.iter().enumerate() {
                        let got = row.get_ref(i + 1)?.as_str_or_null().ok().flatten();
                        // An end date the hub set (ABSENT_FROM_FULL, AGE_18) that the
                        // authority now sends itself becomes the authority's (a change).
                        let skip = i == 4 && cols.end.is_none();
                        if !skip && got != *want {
                            same = false;
                            break;
                        }
                    }
                    Ok((row.get(0)?, same, row.get(10)?))
                },
            )
            .optional()?;
        let hash = hash_texts(&texts);
        match existing {
            Some((id, true, stored)) => {
                if stored != Some(hash) {
                    // Stored before schema version 2, or after the hub ended it and
                    // the authority then sent that ending as its own: no content
                    // change, so no change_seq, but the next night compares hashes.
                    self.set_hash.execute(params![id, hash])?;
                }
                Ok((Upserted::Unchanged, Held::written(id, hash)))
            }
            Some((id, false, _)) => {
                self.write_update(seqs, id, &cols, hash)?;
                Ok((Upserted::Updated, Held::written(id, hash)))
            }
            None => self.insert_new(seqs, authority, r, &cols, hash),
        }
    }

    /// Upserts a valid record knowing what was held under its key before the file
    /// (`held`, from [`for_each_held`], updated by this file's earlier lines) and its
    /// [`content_hash`]:
    /// no read at all, and no write when the content hash is unchanged.
    pub fn upsert_known(
        &mut self,
        seqs: &mut ChangeSeq,
        authority: &str,
        held: Option<Held>,
        r: &ExtractRecord,
        hash: i64,
    ) -> Result<(Upserted, Held)> {
        let cols = Columns::of(r);
        match held {
            Some(h) if h.hash == 0 => self.upsert(seqs, authority, r),
            Some(h) if h.hash == hash => Ok((Upserted::Unchanged, h)),
            Some(h) => {
                self.write_update(seqs, h.id, &cols, hash)?;
                Ok((Upserted::Updated, Held { hash, ..h }))
            }
            None => self.insert_new(seqs, authority, r, &cols, hash),
        }
    }

    /// Inserts a record whose key was not held before the file. A key inserted
    /// earlier in this same pass (a record twice in the file, whose pass is always
    /// read again) inserts nothing and counts as unchanged.
    fn insert_new(
        &mut self,
        seqs: &mut ChangeSeq,
        authority: &str,
        r: &ExtractRecord,
        cols: &Columns<'_>,
        hash: i64,
    ) -> Result<(Upserted, Held)> {
        Ok(match self.write_insert(seqs, authority, r, cols, hash)? {
            Some(id) => (Upserted::Inserted, Held::written(id, hash)),
            None => (Upserted::Unchanged, Held::written(0, hash)),
        })
    }

    fn write_update(
        &mut self,
        seqs: &mut ChangeSeq,
        id: i64,
        c: &Columns<'_>,
        hash: i64,
    ) -> Result<()> {
        self.due.note(c.record);
        let mut params = [Param::Null; 12];
        params[..11].copy_from_slice(&content_params(c, hash, seqs.take()));
        params[11] = Param::Int(id);
        self.update.execute(&params)?;
        Ok(())
    }

    fn write_insert(
        &mut self,
        seqs: &mut ChangeSeq,
        authority: &str,
        r: &ExtractRecord,
        c: &Columns<'_>,
        hash: i64,
    ) -> Result<Option<i64>> {
        self.due.note(r);
        let mut params = [Param::Null; 14];
        params[..11].copy_from_slice(&content_params(c, hash, seqs.take()));
        params[11..].copy_from_slice(&[
            Param::Text(authority),
            Param::Text(&r.local_id),
            Param::Text(r.plan_type.as_str()),
        ]);
        let inserted = self.insert.execute(&params)?;
        // 0 rows: the key was inserted earlier in this same pass, i.e. the record is
        // twice in the file; such a pass is always rolled back and read again.
        Ok((inserted == 1).then(|| self.insert_rowid()))
    }

    fn insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }
}

/// The key of this index's alert ids.
pub fn alert_secret(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT value FROM counters WHERE name = 'alert_secret'")?
        .query_row([], |r| r.get(0))?)
}

/// A record's alert id (§4.3): opaque, stable for the record's life, never derived
/// from its local_id — a keyed hash of its row id, so it needs no index of its own.
pub fn alert_id(secret: i64, record_id: i64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&secret.to_le_bytes());
    bytes[8..].copy_from_slice(&record_id.to_le_bytes());
    let h = xxhash_rust::xxh3::xxh3_128(&bytes);
    format!("{:024x}", h >> 32)
}

/// Removes a record at once, leaving a tombstone for the sites' alert REMOVE row.
pub fn delete_record(conn: &Connection, seqs: &mut ChangeSeq, id: i64) -> Result<()> {
    let seq = seqs.take();
    let alert = alert_id(alert_secret(conn)?, id);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO removed (alert_id, nhs_number, created_seq, change_seq) SELECT ?3, nhs_number, created_seq, ?2 FROM records WHERE id = ?1",
    )?
    .execute(params![id, seq, alert])?;
    conn.prepare_cached("DELETE FROM records WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Open records of an authority on a date: no end date, or one after that date.
pub fn count_open(conn: &Connection, authority: &str, on: NaiveDate) -> Result<u64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM records WHERE authority = ?1 AND (end_date IS NULL OR end_date > ?2)")?
        .query_row(params![authority, date_text(Some(on))], |r| r.get(0))?)
}

/// Calls `f(id, local_id, plan_type)` for each open record of an authority.
pub fn for_each_open(
    conn: &Connection,
    authority: &str,
    on: NaiveDate,
    mut f: impl FnMut(i64, &str, &str),
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, local_id, plan_type FROM records WHERE authority = ?1 AND (end_date IS NULL OR end_date > ?2)",
    )?;
    let mut rows = stmt.query(params![authority, date_text(Some(on))])?;
    while let Some(r) = rows.next()? {
        let local_id: String = r.get(1)?;
        let plan: String = r.get(2)?;
        f(r.get(0)?, &local_id, &plan);
    }
    Ok(())
}

/// Ends a record on a date with a reason (ABSENT_FROM_FULL, AGE_18).
pub fn end_record(
    conn: &Connection,
    seqs: &mut ChangeSeq,
    id: i64,
    on: NaiveDate,
    reason: EndedReason,
) -> Result<()> {
    let seq = seqs.take();
    conn.prepare_cached(
        // The hub's own ending matches no line an authority sends: hash unknown.
        "UPDATE records SET end_date = ?2, ended_reason = ?3, change_seq = ?4, row_hash = NULL WHERE id = ?1",
    )?
    .execute(params![id, date_text(Some(on)), reason, seq])?;
    lower_counter(conn, "purge_due", on)
}

/// Whether any NHS number is marked superseded or inactive (if none, no lookup is needed).
pub fn any_nhs_status(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM nhs_status)")?
        .query_row([], |r| r.get(0))?)
}

/// The status of an NHS number when it is superseded or inactive: (status, replacement).
pub fn nhs_status(conn: &Connection, nhs: &str) -> Result<Option<(String, Option<String>)>> {
    Ok(conn
        .prepare_cached("SELECT status, replacement FROM nhs_status WHERE nhs_number = ?1")?
        .query_row([nhs], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The earliest days the two whole-table housekeeping jobs can find work, kept in
/// `counters` (days from the Common Era; no row = unknown) so that a pass with nothing
/// due reads no record:
/// - `age18_due`: the earliest 18th birthday of a CPP/LAC record that age 18 would
///   still end; read by [`end_at_18`];
/// - `purge_due`: the earliest `end_date` of any record; [`purge`] acts when
///   `end_date + retention_days` has come.
///
/// Every write that could bring either day forward lowers it (never raises it); the
/// job that reads the whole table sets it again from what remains.
#[derive(Debug, Default)]
pub struct DueDays {
    earliest: Option<NaiveDate>,
    earliest_end: Option<NaiveDate>,
}

fn days(d: NaiveDate) -> i64 {
    use chrono::Datelike;
    i64::from(d.num_days_from_ce())
}

fn lower_counter(conn: &Connection, name: &str, day: NaiveDate) -> Result<()> {
    conn.prepare_cached("UPDATE counters SET value = min(value, ?2) WHERE name = ?1")?
        .execute(params![name, days(day)])?;
    Ok(())
}

fn read_counter(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT value FROM counters WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

fn set_counter(conn: &Connection, name: &str, value: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO counters (name, value) VALUES (?1, ?2)")?
        .execute(params![name, value])?;
    Ok(())
}

impl DueDays {
    /// The 18th birthday on which this record would end, when it is a candidate.
    fn candidate(plan: &str, dob: Option<NaiveDate>, end: Option<NaiveDate>) -> Option<NaiveDate> {
        if !matches!(plan, "CPP" | "LAC") {
            return None;
        }
        let eighteen = crate::clock::birthday(dob?, 18);
        end.is_none_or(|e| e > eighteen).then_some(eighteen)
    }

    fn note(&mut self, r: &ExtractRecord) {
        let min = |a: Option<NaiveDate>, b: NaiveDate| Some(a.map_or(b, |a| a.min(b)));
        if let Some(day) = Self::candidate(r.plan_type.as_str(), r.date_of_birth, r.end_date) {
            self.earliest = min(self.earliest, day);
        }
        if let Some(end) = r.end_date {
            self.earliest_end = min(self.earliest_end, end);
        }
    }

    /// Lowers the stored days (never raises them; unknown stays unknown).
    fn save(&self, conn: &Connection) -> Result<()> {
        if let Some(day) = self.earliest {
            lower_counter(conn, "age18_due", day)?;
        }
        if let Some(day) = self.earliest_end {
            lower_counter(conn, "purge_due", day)?;
        }
        Ok(())
    }
}

/// Ends open CPP/LAC records of children who are 18 on or before `today`, on their
/// 18th birthday. Returns how many were ended. Reads nothing when [`DueDays`] says
/// nothing can be due yet.
pub fn end_at_18(conn: &Connection, seqs: &mut ChangeSeq, today: NaiveDate) -> Result<u64> {
    if read_counter(conn, "age18_due")?.is_some_and(|day| days(today) < day) {
        return Ok(0);
    }
    let mut due = Vec::new();
    let mut next = i64::MAX;
    {
        let mut stmt = conn.prepare_cached(
            "SELECT id, plan_type, date_of_birth, end_date FROM records WHERE plan_type IN ('CPP', 'LAC') AND date_of_birth IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let plan: String = r.get(1)?;
            let dob: String = r.get(2)?;
            let end: Option<String> = r.get(3)?;
            let end = end.as_deref().and_then(crate::clock::parse_date);
            let Some(eighteen) = DueDays::candidate(&plan, crate::clock::parse_date(&dob), end)
            else {
                continue;
            };
            if eighteen <= today {
                due.push((r.get::<_, i64>(0)?, eighteen));
            } else {
                next = next.min(days(eighteen));
            }
        }
    }
    for (id, on) in &due {
        end_record(conn, seqs, *id, *on, EndedReason::Age18)?;
    }
    set_counter(conn, "age18_due", next)?;
    Ok(due.len() as u64)
}

/// Purges records whose `end_date + retention_days` is on or before `today`.
/// Returns how many were purged, by authority. Reads nothing when `purge_due` (see
/// [`DueDays`]) says no ending is old enough yet.
pub fn purge(
    conn: &Connection,
    seqs: &mut ChangeSeq,
    today: NaiveDate,
    retention_days: u32,
) -> Result<Vec<(String, u64)>> {
    let cutoff = crate::clock::add_days(today, -i64::from(retention_days));
    if read_counter(conn, "purge_due")?.is_some_and(|day| days(cutoff) < day) {
        return Ok(Vec::new());
    }
    let mut due = Vec::new();
    let mut next = i64::MAX;
    {
        let mut stmt = conn.prepare_cached(
            "SELECT id, authority, end_date FROM records WHERE end_date IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let end: String = r.get(2)?;
            match crate::clock::parse_date(&end) {
                Some(end) if end <= cutoff => {
                    due.push((r.get::<_, String>(1)?, end, r.get::<_, i64>(0)?));
                }
                Some(end) => next = next.min(days(end)),
                None => {}
            }
        }
    }
    // By authority, oldest ending first: the same order on every run.
    due.sort_unstable();
    let mut counts: Vec<(String, u64)> = Vec::new();
    for (authority, _, id) in due {
        delete_record(conn, seqs, id)?;
        match counts.last_mut() {
            Some((a, n)) if *a == authority => *n += 1,
            _ => counts.push((authority, 1)),
        }
    }
    set_counter(conn, "purge_due", next)?;
    Ok(counts)
}

/// A row of the holdings file (§4.5), dates as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
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

pub fn count_held(conn: &Connection, authority: &str) -> Result<u64> {
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
pub fn for_each_holding<E: From<IndexError>>(
    conn: &Connection,
    authority: &str,
    mut f: impl FnMut(Holding) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    super::each_row(
        conn,
        &format!("{HOLDING_SELECT} WHERE r.authority = ?1 ORDER BY r.local_id, r.plan_type"),
        [authority],
        holding_row,
        |(_, h)| f(h),
    )
}

/// Held records (any authority) with an NHS number, for `lookup`.
pub fn records_by_nhs(conn: &Connection, nhs: &str) -> Result<Vec<(String, Holding)>> {
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
pub struct AuthorityState {
    pub last_extracted_at: Option<String>,
    pub last_sequence: Option<u64>,
    pub last_full_at: Option<String>,
    pub last_delta_at: Option<String>,
}

pub fn authority_state(conn: &Connection, authority: &str) -> Result<AuthorityState> {
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
pub fn record_applied_extract(
    conn: &Connection,
    authority: &str,
    extracted_at: &str,
    sequence: Option<u64>,
    full: bool,
    now: &str,
) -> Result<()> {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    pub id: i64,
    pub message_id: i64,
    pub decision: Decision,
    pub requested_by: String,
}

pub fn queue_decision(
    conn: &Connection,
    message_id: i64,
    decision: Decision,
    at: &str,
    by: &str,
) -> Result<i64> {
    conn.prepare_cached("INSERT INTO decisions (message_id, decision, requested_at, requested_by) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![message_id, decision, at, by])?;
    Ok(conn.last_insert_rowid())
}

/// Decisions not yet carried out, oldest first (one per message: the newest wins).
pub fn pending_decisions(conn: &Connection) -> Result<Vec<DecisionRow>> {
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
pub fn finish_decisions(conn: &Connection, message_id: i64, at: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE decisions SET done_at = ?2 WHERE message_id = ?1 AND done_at IS NULL",
    )?
    .execute(params![message_id, at])?;
    Ok(())
}

/// Appends to the audit log. `detail` is JSON; it never holds an NHS number except
/// for lookups, whose number is the record the audit exists to keep.
/// Appends to the audit log: the real time of the entry (never `--now`, which is
/// kept beside it when given), who, what.
pub fn audit(
    conn: &Connection,
    clock: &crate::clock::Clock,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    let at = crate::clock::rfc3339(chrono::Utc::now());
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, detail, pretend_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        at,
        actor,
        action,
        detail.to_string(),
        clock.pretended()
    ])?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    /// The `--now` of the command, when it was given.
    pub pretend_at: Option<String>,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// Audit entries at or after `since` (RFC 3339 text), oldest first.
pub fn audit_since(conn: &Connection, since: Option<&str>) -> Result<Vec<AuditRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, detail, pretend_at FROM audit WHERE ?1 IS NULL OR at >= ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([since], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                detail: r.get(4)?,
                pretend_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Kind-specific parameters of a reserved outbound file (alerts: type, range, since).
pub fn set_outbound_params(conn: &Connection, id: i64, params: &str) -> Result<()> {
    conn.prepare_cached("UPDATE outbound SET params = ?2 WHERE id = ?1")?
        .execute(params![id, params])?;
    Ok(())
}

/// Savepoints inside a file's transaction: a pass that must be read again is rolled
/// back to its savepoint (`rollback_to`), a finished one kept (`release`).
pub fn savepoint(conn: &Connection, name: &str) -> Result<()> {
    Ok(conn.execute_batch(&format!("SAVEPOINT {name}"))?)
}

pub fn rollback_to(conn: &Connection, name: &str) -> Result<()> {
    Ok(conn.execute_batch(&format!("ROLLBACK TO {name}"))?)
}

pub fn release(conn: &Connection, name: &str) -> Result<()> {
    Ok(conn.execute_batch(&format!("RELEASE {name}"))?)
}
