//! Age-18 endings and the retention purge, and the counters that say when either
//! could find work (so a pass with nothing due reads no record).

use chrono::NaiveDate;
use rusqlite::{params, OptionalExtension};

use super::IndexError;
use super::{Db, Tx};
use crate::model::EndedReason;
use crate::validate::ExtractRecord;

use super::records::{delete_record, end_record, ChangeSeq};

type Result<T> = std::result::Result<T, IndexError>;

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
pub(crate) struct DueDays {
    earliest: Option<NaiveDate>,
    earliest_end: Option<NaiveDate>,
}

fn days(d: NaiveDate) -> i64 {
    use chrono::Datelike;
    i64::from(d.num_days_from_ce())
}

pub(super) fn lower_counter(tx: &Tx<'_>, name: &str, day: NaiveDate) -> Result<()> {
    let conn = tx.conn();
    conn.prepare_cached("UPDATE counters SET value = min(value, ?2) WHERE name = ?1")?
        .execute(params![name, days(day)])?;
    Ok(())
}

fn read_counter(db: Db<'_>, name: &str) -> Result<Option<i64>> {
    let conn = db.conn();
    Ok(conn
        .prepare_cached("SELECT value FROM counters WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

fn set_counter(tx: &Tx<'_>, name: &str, value: i64) -> Result<()> {
    let conn = tx.conn();
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

    pub(super) fn note(&mut self, r: &ExtractRecord) {
        let min = |a: Option<NaiveDate>, b: NaiveDate| Some(a.map_or(b, |a| a.min(b)));
        if let Some(day) = Self::candidate(r.plan_type.as_str(), r.date_of_birth, r.end_date) {
            self.earliest = min(self.earliest, day);
        }
        if let Some(end) = r.end_date {
            self.earliest_end = min(self.earliest_end, end);
        }
    }

    /// Lowers the stored days (never raises them; unknown stays unknown).
    pub(super) fn save(&self, tx: &Tx<'_>) -> Result<()> {
        let _conn = tx.conn();
        if let Some(day) = self.earliest {
            lower_counter(tx, "age18_due", day)?;
        }
        if let Some(day) = self.earliest_end {
            lower_counter(tx, "purge_due", day)?;
        }
        Ok(())
    }
}

/// Ends open CPP/LAC records of children who are 18 on or before `today`, on their
/// 18th birthday. Returns how many were ended. Reads nothing when [`DueDays`] says
/// nothing can be due yet.
pub(crate) fn end_at_18(tx: &Tx<'_>, seqs: &mut ChangeSeq, today: NaiveDate) -> Result<u64> {
    let conn = tx.conn();
    if read_counter(tx.db(), "age18_due")?.is_some_and(|day| days(today) < day) {
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
        end_record(tx, seqs, *id, *on, EndedReason::Age18)?;
    }
    set_counter(tx, "age18_due", next)?;
    Ok(due.len() as u64)
}

/// Purges records whose `end_date + retention_days` is on or before `today`.
/// Returns how many were purged, by authority. Reads nothing when `purge_due` (see
/// [`DueDays`]) says no ending is old enough yet.
pub(crate) fn purge(
    tx: &Tx<'_>,
    seqs: &mut ChangeSeq,
    today: NaiveDate,
    retention_days: u32,
) -> Result<Vec<(String, u64)>> {
    let conn = tx.conn();
    let cutoff = crate::clock::add_days(today, -i64::from(retention_days));
    if read_counter(tx.db(), "purge_due")?.is_some_and(|day| days(cutoff) < day) {
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
        delete_record(tx, seqs, id)?;
        match counts.last_mut() {
            Some((a, n)) if *a == authority => *n += 1,
            _ => counts.push((authority, 1)),
        }
    }
    set_counter(tx, "purge_due", next)?;
    Ok(counts)
}

/// Forgets what retention allows: event ids, sent notification rows and alert
/// tombstones older than `cutoff` (YYYY-MM-DD), finished MESH transfers and reports
/// older than it, and tombstones every site has seen.
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
    // The MESH ledger: finished transfers and reports older than retention (a message
    // acknowledged that long ago is never listed again).
    conn.prepare_cached("DELETE FROM mesh_inbound WHERE state = ?2 AND at < ?1")?
        .execute(rusqlite::params![cutoff, crate::model::MeshInState::Acked])?;
    conn.prepare_cached("DELETE FROM mesh_outbound WHERE state = ?2 AND at < ?1")?
        .execute(rusqlite::params![cutoff, crate::model::MeshOutState::Sent])?;
    conn.prepare_cached("DELETE FROM mesh_reports WHERE at < ?1")?
        .execute([cutoff])?;
    conn.prepare_cached("DELETE FROM removed WHERE change_seq <= (SELECT coalesce(MIN(last_seq), -1) FROM site_state)")?.execute([])?;
    Ok(())
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
