//! The records held: reading, upserting (a content hash spares unchanged rows),
//! ending, deleting; the opaque alert ids.

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};

use super::bound::{BorrowedStatement, Param};
use super::IndexError;
use crate::model::EndedReason;
use crate::validate::{ExtractRecord, PlanType};

use super::retention::{lower_counter, DueDays};
use super::{date_text, Db, Tx};

type Result<T> = std::result::Result<T, IndexError>;

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// A held record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRecord {
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
pub(crate) struct ChangeSeq {
    next: i64,
}

impl ChangeSeq {
    /// Reads the counter (inside the transaction that will use it).
    pub(crate) fn load(db: Db<'_>) -> Result<ChangeSeq> {
        let conn = db.conn();
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
    pub(crate) fn save(&self, tx: &Tx<'_>) -> Result<()> {
        let conn = tx.conn();
        conn.prepare_cached(
            "UPDATE counters SET value = max(value, ?1) WHERE name = 'change_seq'",
        )?
        .execute([self.next - 1])?;
        Ok(())
    }
}

pub(crate) fn find_record(
    db: Db<'_>,
    authority: &str,
    local_id: &str,
    plan: PlanType,
) -> Result<Option<StoredRecord>> {
    let conn = db.conn();
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
pub(crate) enum Upserted {
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
pub(crate) fn content_hash(r: &ExtractRecord) -> i64 {
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
pub(crate) struct Held {
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
pub(crate) fn for_each_held(
    db: Db<'_>,
    authority: &str,
    on: NaiveDate,
    limit: u64,
    mut f: impl FnMut(&[u8], &[u8], Held),
) -> Result<bool> {
    let conn = db.conn();
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
pub(crate) struct RecordWriter<'c> {
    conn: &'c Connection,
    find: rusqlite::Statement<'c>,
    insert: BorrowedStatement<'c>,
    update: BorrowedStatement<'c>,
    set_hash: rusqlite::Statement<'c>,
    /// The earliest 18th birthday among the CPP/LAC records written (see [`DueDays`]).
    due: DueDays,
}

impl<'c> RecordWriter<'c> {
    pub(crate) fn new(tx: &'c Tx<'_>) -> Result<Self> {
        let conn = tx.conn();
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
    pub(crate) fn save(&self, tx: &Tx<'_>) -> Result<()> {
        let _conn = tx.conn();
        self.due.save(tx)
    }

    /// Upserts a valid record, reading what is held under its key first.
    pub(crate) fn upsert(
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
    pub(crate) fn upsert_known(
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
pub(crate) fn alert_secret(db: Db<'_>) -> Result<i64> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT value FROM counters WHERE name = 'alert_secret'")?
        .query_row([], |r| r.get(0))?)
}

/// A record's alert id (§4.3): opaque, stable for the record's life, never derived
/// from its local_id — a keyed hash of its row id, so it needs no index of its own.
pub(crate) fn alert_id(secret: i64, record_id: i64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&secret.to_le_bytes());
    bytes[8..].copy_from_slice(&record_id.to_le_bytes());
    let h = xxhash_rust::xxh3::xxh3_128(&bytes);
    format!("{:024x}", h >> 32)
}

/// Removes a record at once, leaving a tombstone for the sites' alert REMOVE row.
pub(crate) fn delete_record(tx: &Tx<'_>, seqs: &mut ChangeSeq, id: i64) -> Result<()> {
    let conn = tx.conn();
    let seq = seqs.take();
    let alert = alert_id(alert_secret(tx.db())?, id);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO removed (alert_id, nhs_number, created_seq, change_seq) SELECT ?3, nhs_number, created_seq, ?2 FROM records WHERE id = ?1",
    )?
    .execute(params![id, seq, alert])?;
    conn.prepare_cached("DELETE FROM records WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Open records of an authority on a date: no end date, or one after that date.
pub(crate) fn count_open(db: Db<'_>, authority: &str, on: NaiveDate) -> Result<u64> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM records WHERE authority = ?1 AND (end_date IS NULL OR end_date > ?2)")?
        .query_row(params![authority, date_text(Some(on))], |r| r.get(0))?)
}

/// Calls `f(id, local_id, plan_type)` for each open record of an authority.
pub(crate) fn for_each_open(
    db: Db<'_>,
    authority: &str,
    on: NaiveDate,
    mut f: impl FnMut(i64, &str, &str),
) -> Result<()> {
    let conn = db.conn();
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
pub(crate) fn end_record(
    tx: &Tx<'_>,
    seqs: &mut ChangeSeq,
    id: i64,
    on: NaiveDate,
    reason: EndedReason,
) -> Result<()> {
    let conn = tx.conn();
    let seq = seqs.take();
    conn.prepare_cached(
        // The hub's own ending matches no line an authority sends: hash unknown.
        "UPDATE records SET end_date = ?2, ended_reason = ?3, change_seq = ?4, row_hash = NULL WHERE id = ?1",
    )?
    .execute(params![id, date_text(Some(on)), reason, seq])?;
    lower_counter(tx, "purge_due", on)
}

/// Whether any NHS number is marked superseded or inactive (if none, no lookup is needed).
pub(crate) fn any_nhs_status(db: Db<'_>) -> Result<bool> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM nhs_status)")?
        .query_row([], |r| r.get(0))?)
}

/// The status of an NHS number when it is superseded or inactive: (status, replacement).
pub(crate) fn nhs_status(db: Db<'_>, nhs: &str) -> Result<Option<(String, Option<String>)>> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT status, replacement FROM nhs_status WHERE nhs_number = ?1")?
        .query_row([nhs], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}
