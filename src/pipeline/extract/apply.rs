//! The applying side of a pass: each checked line's index checks and write, in
//! file order, while the worker thread reads ahead.
//!
//! Owns the record writer and the change sequence for the length of a pass. Must
//! never apply a line out of file order, nor a line of a file that may not be
//! applied (`can_apply`).

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::mpsc;

use chrono::NaiveDate;

use super::held::{read_held, HeldMap};
use super::lines::{prepare_lines, Line, Prepared, LINE_BATCHES};
use super::{ExtractError, Job, Pass, PassResult};
use crate::clock;
use crate::index::{self, IndexError, Store};
use crate::model::Severity;
use crate::parse::DocReader;
use crate::validate::{self, Action, ExtractRules, Problem};

/// The applying side of a pass: what it needs to decide and write each line.
struct Applying<'c, 'a> {
    store: Store<'c>,
    authority: &'a str,
    can_apply: bool,
    check_nhs_status: bool,
    dups: &'a HashSet<u128>,
    seqs: index::records::ChangeSeq,
    /// Present when the pass may apply (a dry run has none).
    writer: Option<index::records::RecordWriter<'c>>,
    held: Option<HeldMap>,
    /// Today (Europe/London, `--now`) and `hub.retention_days`: for EXPIRED.
    today: NaiveDate,
    retention_days: u32,
}

impl Applying<'_, '_> {
    /// Index checks and the write of one checked line; its problems go to the pass.
    fn apply(
        &mut self,
        p: &mut Prepared,
        pass: &mut Pass<'_>,
        result: &mut PassResult,
    ) -> Result<(), ExtractError> {
        let store = self.store;
        let (line, key, hash) = (p.line, p.key, p.hash);
        let checked = &mut p.checked;
        if let (Some(h), Some((local_id, plan))) = (key, &checked.key) {
            result.hashes.push(h);
            if self.dups.contains(&h) {
                checked
                    .problems
                    .push(validate::duplicate_record(line, local_id, *plan));
                checked.record = None;
            }
        }
        let key = key.unwrap_or_default();
        if let Some(record) = checked.record.as_ref() {
            let purge_after = record
                .end_date
                .map(|e| clock::add_days(e, i64::from(self.retention_days)));
            match record.action {
                Action::Upsert if purge_after.is_some_and(|p| p <= self.today) => {
                    // Past its retention already: never held (again); a record held
                    // now is left as it is (a mistyped end date never removes a flag).
                    checked.problems.push(validate::expired(
                        line,
                        &record.local_id,
                        record.end_date.unwrap_or_default(),
                        purge_after.unwrap_or_default(),
                    ));
                    result.expired += 1;
                }
                Action::Upsert => {
                    let inactive = match record.nhs_number {
                        Some(n) if self.check_nhs_status => {
                            index::records::nhs_status(store.db(), &n.as_string())?
                        }
                        _ => None,
                    };
                    if let Some((status, replacement)) = inactive {
                        checked.problems.push(validate::nhs_inactive(
                            line,
                            &record.local_id,
                            &status,
                            replacement.as_deref(),
                        ));
                    } else if self.can_apply {
                        let writer = self.writer.as_mut().ok_or(IndexError::ReadOnly)?;
                        match self.held.as_mut() {
                            Some(map) => {
                                let before = map.get(&key).copied();
                                let (_, now) = writer.upsert_known(
                                    &mut self.seqs,
                                    self.authority,
                                    before,
                                    record,
                                    hash,
                                )?;
                                // Only what was held before the file stays in the map
                                // (memory does not grow with the file): a key met again
                                // is a duplicate, and a pass with duplicates is read again.
                                if before.is_some() {
                                    map.insert(key, now);
                                }
                            }
                            None => {
                                writer.upsert(&mut self.seqs, self.authority, record)?;
                            }
                        }
                        result.wrote = true;
                    }
                }
                Action::Delete => {
                    let id = match self.held.as_ref() {
                        Some(map) => map.get(&key).map(|h| h.id),
                        None => index::records::find_record(
                            store.db(),
                            self.authority,
                            &record.local_id,
                            record.plan_type,
                        )?
                        .map(|r| r.id),
                    };
                    match id {
                        None => checked.problems.push(validate::unknown_record(
                            line,
                            &record.local_id,
                            record.plan_type,
                        )),
                        Some(id) if self.can_apply => {
                            index::records::delete_record(store.tx()?, &mut self.seqs, id)?;
                            if let Some(map) = self.held.as_mut() {
                                map.remove(&key);
                            }
                            result.wrote = true;
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        if checked
            .problems
            .iter()
            .any(|p| p.severity == Severity::Error)
        {
            result.invalid += 1;
        }
        for p in checked.problems.drain(..) {
            pass.push(store, p)?;
        }
        Ok(())
    }
}

/// What the reading of an extract's lines needs to know, decided from its header.
pub(super) struct LinePlan<'a> {
    pub(super) rules: &'a ExtractRules,
    /// The header names the columns a record needs: lines are checked.
    pub(super) columns_ok: bool,
    /// A real pass (not a dry run): records may be written.
    pub(super) allow_apply: bool,
    /// This file's lines are applied (no file-level error, not stale).
    pub(super) can_apply: bool,
    pub(super) full: bool,
    pub(super) reference_date: NaiveDate,
    /// Keys that appear twice in the file (found by a first pass over it).
    pub(super) dups: &'a HashSet<u128>,
}

/// What reading the lines leaves for the end of the pass.
pub(super) struct LinesRead<'c> {
    pub(super) seqs: index::records::ChangeSeq,
    pub(super) writer: Option<index::records::RecordWriter<'c>>,
    pub(super) held: Option<HeldMap>,
    /// The file ended in a problem that makes the rest unreadable.
    pub(super) fatal: bool,
}

/// Reads, checks and applies every line in file order. A worker thread reads,
/// parses and checks the lines (pure work) while this one reads what the authority
/// holds, then applies them.
pub(super) fn read_and_apply<'c>(
    store: Store<'c>,
    job: &Job<'_>,
    reader: DocReader<Box<dyn Read + Send>>,
    plan: &LinePlan<'_>,
    pass: &mut Pass<'_>,
    result: &mut PassResult,
) -> Result<LinesRead<'c>, ExtractError> {
    let check_nhs_status = index::records::any_nhs_status(store.db())?;
    let (line_tx, line_rx) = mpsc::sync_channel::<Vec<Line>>(LINE_BATCHES);
    let (used_tx, used_rx) = mpsc::channel::<Vec<Line>>();
    let (rules, columns_ok) = (plan.rules, plan.columns_ok);
    std::thread::scope(|scope| {
        scope.spawn(move || prepare_lines(reader, rules, columns_ok, line_tx, used_rx));
        let seqs = index::records::ChangeSeq::load(store.db())?;
        let writer = if plan.allow_apply {
            Some(index::records::RecordWriter::new(store.tx()?)?)
        } else {
            None
        };
        let held = match read_held(store, job.authority, plan.reference_date)? {
            Some((map, open)) => {
                result.open_before = open;
                Some(map)
            }
            None => {
                if plan.full {
                    result.open_before =
                        index::records::count_open(store.db(), job.authority, plan.reference_date)?;
                }
                None
            }
        };
        let mut state = Applying {
            store,
            authority: job.authority,
            can_apply: plan.can_apply,
            check_nhs_status,
            dups: plan.dups,
            seqs,
            writer,
            held,
            today: job.now.today(),
            retention_days: job.hub.retention_days,
        };
        let mut fatal = false;
        'lines: for mut batch in line_rx {
            for line in batch.iter_mut() {
                match line {
                    Line::Warning(w) => pass.push(store, Problem::from_file(w.clone()))?,
                    Line::Io(e) => {
                        let e = std::mem::replace(e, io::Error::other("taken"));
                        return Err(ExtractError::Io(e));
                    }
                    Line::Fatal(fp) => {
                        pass.push(store, Problem::from_file(fp.clone()))?;
                        fatal = true;
                        break 'lines;
                    }
                    Line::Record(p) => {
                        result.records += 1;
                        if let Some(p) = p {
                            state.apply(p, pass, result)?;
                        }
                    }
                }
            }
            // Back to the worker to be freed there.
            let _ = used_tx.send(std::mem::take(&mut batch));
        }
        drop(used_tx);
        Ok(LinesRead {
            seqs: state.seqs,
            writer: state.writer,
            held: state.held,
            fatal,
        })
    })
}
