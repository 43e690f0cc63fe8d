//! Evaluating and applying one authority extract (SPEC §4.1 decision order, §5.1).
//!
//! One streaming pass validates every line and, when nothing so far forbids it,
//! applies the valid ones at once. When the end of the file shows that nothing may
//! be applied (a file-level error, too many invalid lines, the mass-end guard) or
//! that some record appears twice, what the pass wrote is undone (the caller's
//! transaction, or a savepoint in [`evaluate`]) and the file read again knowing that
//! ([`Hints`]). Memory: 16 bytes per record (a hash of its key), plus
//! the sending authority's held records (key hash, row id, content hash) when it
//! holds at most [`HELD_IN_MEMORY`].
//!
//! Two threads per pass: a worker reads and checks the lines (pure `parse` and
//! `validate` work, never the index) and sends them in bounded batches; this thread
//! reads what is held, then applies the lines in file order. Must never apply a line
//! out of file order, nor let the worker touch SQLite.

mod apply;
mod held;
mod lines;

use crate::model::{Code, Severity};
use std::collections::HashSet;
use std::io::{self, Read};

use chrono::NaiveDate;

use super::decide;
use crate::clock::{self, Clock};
use crate::config::HubSettings;
use crate::formats::EXTRACT;
use crate::index::{self, ledger::Counts, IndexError, Store};
use crate::parse::{limits, DocReader, Stop};
use crate::validate::{self, ExtractHeader, ExtractRules, ExtractType, Problem};
use apply::{read_and_apply, LinePlan};
use held::absent_from_full;

/// Why an extract could not be evaluated at all (nothing is decided; retry later).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExtractError {
    #[error("reading the inbound file failed: {0} (the file stays in in/ and is tried again)")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Index(#[from] IndexError),
}

pub(crate) use super::sink::{DbSink, MemorySink, Sink};
pub(crate) use crate::model::Status;

/// What is being evaluated.
pub(crate) struct Job<'a> {
    pub hub: &'a HubSettings,
    /// The mailbox owner's authority code.
    pub authority: &'a str,
    pub now: Clock,
    /// File-level problems found before the content (from the `.ctl`).
    pub pre_problems: Vec<Problem>,
    /// The mass-end guard applies (not when an operator released the file).
    pub guard: bool,
    /// Apply (inside the caller's transaction) or only evaluate (`validate`).
    pub apply: bool,
}

/// The decision and its counts.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub status: Status,
    pub counts: Counts,
    pub header: ExtractHeader,
    /// Open records a FULL would end (ABSENT_FROM_FULL).
    pub would_end: u64,
}

struct PassResult {
    header: ExtractHeader,
    file_error: bool,
    stale: bool,
    records: u64,
    invalid: u64,
    /// Lines past their retention (EXPIRED): counted, not applied.
    expired: u64,
    warnings: u64,
    /// Sorted key hashes of every readable line.
    hashes: Vec<u128>,
    dups: HashSet<u128>,
    wrote: bool,
    open_before: u64,
    to_end: Vec<i64>,
    reference_date: NaiveDate,
}

impl PassResult {
    /// Nothing read yet; `today` stands for the reference date until the header
    /// gives one.
    fn empty(today: NaiveDate) -> PassResult {
        PassResult {
            header: ExtractHeader {
                extract_type: None,
                extracted_at: None,
                sequence: None,
                records: None,
            },
            file_error: false,
            stale: false,
            records: 0,
            invalid: 0,
            expired: 0,
            warnings: 0,
            hashes: Vec::new(),
            dups: HashSet::new(),
            wrote: false,
            open_before: 0,
            to_end: Vec::new(),
            reference_date: today,
        }
    }
}

struct Pass<'s> {
    sink: &'s mut dyn Sink,
    warnings: u64,
    file_error: bool,
}

impl Pass<'_> {
    fn push(&mut self, store: Store<'_>, p: Problem) -> Result<(), IndexError> {
        // STALE is a decision of its own (§4.1 order), not a file-level error.
        if p.line.is_none() && p.severity == Severity::Error && p.code != Code::Stale {
            self.file_error = true;
        }
        if p.severity == Severity::Warning {
            self.warnings += 1;
        }
        self.sink.push(store, p)
    }
}

/// Opens the inbound data (decompressed when needed, bounded in size).
pub(crate) type Opener<'a> = &'a dyn Fn() -> io::Result<Box<dyn Read + Send>>;

fn run_pass(
    store: Store<'_>,
    job: &Job<'_>,
    open: Opener<'_>,
    allow_apply: bool,
    dups: &HashSet<u128>,
    sink: &mut dyn Sink,
) -> Result<PassResult, ExtractError> {
    let mut pass = Pass {
        sink,
        warnings: 0,
        file_error: false,
    };
    let today = job.now.today();
    for p in &job.pre_problems {
        pass.push(store, p.clone())?;
    }
    let mut result = PassResult::empty(today);
    let source = open()?;
    let (reader, prelude) = match DocReader::open(source, &EXTRACT) {
        Ok(ok) => ok,
        Err(Stop::Io(e)) => return Err(ExtractError::Io(e)),
        Err(Stop::Content(fp)) => {
            pass.push(store, Problem::from_file(fp))?;
            result.file_error = true;
            result.warnings = pass.warnings;
            return Ok(result);
        }
    };
    for w in prelude.warnings {
        pass.push(store, Problem::from_file(w))?;
    }
    let (header, meta_problems) =
        validate::extract_metadata(&prelude.metadata, job.authority, job.now.now());
    for p in meta_problems {
        pass.push(store, p)?;
    }
    let header_problems = validate::extract_columns(&prelude.present, header.extract_type);
    let columns_ok = header_problems.is_empty();
    for p in header_problems {
        pass.push(store, p)?;
    }
    let state = index::holdings::authority_state(store.db(), job.authority)?;
    if let Some(message) = header
        .sequence
        .zip(state.last_sequence)
        .and_then(|(seq, last)| sequence_gap(seq, last))
    {
        pass.push(store, Problem::file(Code::SequenceGap, "sequence", message))?;
    }
    let last_applied = state
        .last_extracted_at
        .as_deref()
        .and_then(clock::parse_rfc3339);
    let stale = matches!((header.extracted_at, last_applied), (Some(at), Some(last)) if at < last);
    let reference_date = header.reference_date(today);
    let rules = ExtractRules {
        extract_type: header.extract_type,
        reference_date,
        allow_test_numbers: job.hub.allow_test_nhs_numbers,
    };
    let full = header.extract_type == Some(ExtractType::Full);
    let plan = LinePlan {
        rules: &rules,
        columns_ok,
        allow_apply,
        can_apply: allow_apply && !pass.file_error && !stale && header.extract_type.is_some(),
        full,
        reference_date,
        dups,
    };
    let read = read_and_apply(store, job, reader, &plan, &mut pass, &mut result)?;
    if !read.fatal {
        if let Some(declared) = header.records {
            if declared != result.records {
                pass.push(store, Problem::file(Code::RecordCount, "records", format!("the metadata declares records={declared} but the file holds {} records: the file may be truncated; send it again", result.records)))?;
            }
        }
    }
    result.hashes.sort_unstable();
    result.dups = result
        .hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    if full && !pass.file_error {
        result.to_end = absent_from_full(
            store,
            job.authority,
            reference_date,
            read.held.as_ref(),
            &result.hashes,
        )?;
    }
    if let Some(writer) = read.writer {
        read.seqs.save(store.tx()?)?;
        writer.save(store.tx()?)?;
    }
    if stale && !pass.file_error {
        let last = state.last_extracted_at.clone().unwrap_or_default();
        let at = header.extracted_at.map(clock::rfc3339).unwrap_or_default();
        pass.push(store, Problem::file(Code::Stale, "extracted_at", format!("extracted_at={at} is older than the last extract applied for {} ({last}); nothing was applied", job.authority)))?;
    }
    result.header = header;
    result.file_error = pass.file_error;
    result.stale = stale;
    result.warnings = pass.warnings;
    result.reference_date = reference_date;
    Ok(result)
}

/// The SEQUENCE_GAP warning of a file numbered `seq` after the last applied `last`
/// (§4.1): repeated, some missing, or lower; `None` when it is the next one.
fn sequence_gap(seq: u64, last: u64) -> Option<String> {
    if seq > last + 1 {
        Some(format!("sequence={seq}, but the last applied file had sequence={last}: {} file(s) may be missing (expected {})", seq - last - 1, last + 1))
    } else if seq == last {
        Some(format!("sequence={seq} repeats the last applied file's sequence: a file sent again? (expected {})", last + 1))
    } else if seq < last {
        Some(format!("sequence={seq} is lower than the last applied file's ({last}): did the sequence start again? (expected {})", last + 1))
    } else {
        None
    }
}

/// The mass-end threshold: more than this many endings quarantines a FULL (§5.1).
pub(crate) fn mass_end_limit(hub: &HubSettings, open: u64) -> f64 {
    (hub.mass_end_fraction * open as f64).max(hub.mass_end_min as f64)
}

/// What an earlier pass over the same file taught: read it again knowing this.
#[derive(Debug, Default, Clone)]
pub(crate) struct Hints {
    /// Keys that appear more than once in the file.
    dups: HashSet<u128>,
    /// The decision forbids applying: evaluate without writing.
    no_apply: bool,
}

/// One evaluation: decided, or read the file again (after undoing what the pass wrote).
pub(crate) enum Step {
    Done(Outcome),
    Again(Hints),
}

/// Evaluates an extract and, when `job.apply` and the decision allows, applies it
/// (in the caller's transaction), inside a savepoint it rolls back to whenever the
/// file must be read again. Problems go to `sink`.
pub(crate) fn evaluate(
    store: Store<'_>,
    job: &Job<'_>,
    open: Opener<'_>,
    sink: &mut dyn Sink,
) -> Result<Outcome, ExtractError> {
    if job.apply {
        store.tx()?.savepoint("extract_pass")?;
    }
    let mut hints = Hints::default();
    let outcome = loop {
        match evaluate_step(store, job, open, sink, &hints) {
            Ok(Step::Done(o)) => break Ok(o),
            Ok(Step::Again(h)) => {
                if job.apply {
                    store.tx()?.rollback_to("extract_pass")?;
                }
                sink.reset();
                hints = h;
            }
            Err(e) => break Err(e),
        }
    };
    if job.apply {
        if outcome.is_err() {
            store.tx()?.rollback_to("extract_pass")?;
        }
        store.tx()?.release("extract_pass")?;
    }
    outcome
}

/// One pass of [`evaluate`] without a savepoint, for a caller that owns the whole
/// transaction: on [`Step::Again`] it rolls the transaction back and starts the
/// message again with the hints (a savepoint would make SQLite copy every page the
/// pass changes to a sub-journal: ~5–12 % of a large FULL).
pub(crate) fn evaluate_step(
    store: Store<'_>,
    job: &Job<'_>,
    open: Opener<'_>,
    sink: &mut dyn Sink,
    hints: &Hints,
) -> Result<Step, ExtractError> {
    let apply = job.apply && !hints.no_apply;
    let r = run_pass(store, job, open, apply, &hints.dups, sink)?;
    if r.dups != hints.dups {
        return Ok(Step::Again(Hints {
            dups: r.dups,
            no_apply: hints.no_apply,
        }));
    }
    let dups = &hints.dups;
    let full = r.header.extract_type == Some(ExtractType::Full);
    let would_end = r.to_end.len() as u64;
    let limit = mass_end_limit(job.hub, r.open_before);
    let findings = decide::Findings {
        file_error: r.file_error,
        stale: r.stale,
        records: r.records,
        invalid: r.invalid,
        mass_end: (full && job.guard).then_some(decide::MassEnd {
            would_end,
            open_before: r.open_before,
            limit,
        }),
    };
    let (status, extra) = decide::decide(&findings, job.hub.max_reject_fraction);
    if r.wrote && !status.applies() {
        return Ok(Step::Again(Hints {
            dups: dups.clone(),
            no_apply: true,
        }));
    }
    if hints.no_apply && status.applies() && job.apply {
        // The decision depends only on the file and what was held before it: the same
        // on every pass. Never report as applied what was not.
        return Err(ExtractError::Io(io::Error::other(
            "the decision changed between two passes over the same file; it stays in in/ and is tried again",
        )));
    }
    if let Some(p) = extra {
        sink.push(store, p)?;
    }
    if status.applies() && job.apply {
        let mut seqs = index::records::ChangeSeq::load(store.db())?;
        for id in &r.to_end {
            index::records::end_record(
                store.tx()?,
                &mut seqs,
                *id,
                r.reference_date,
                crate::model::EndedReason::AbsentFromFull,
            )?;
        }
        seqs.save(store.tx()?)?;
        if let Some(at) = r.header.extracted_at {
            index::holdings::record_applied_extract(
                store.tx()?,
                job.authority,
                &at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                r.header.sequence,
                full,
                &job.now.rfc3339(),
            )?;
        }
    }
    let counts = Counts {
        records: r.records,
        applied: if status.applies() {
            r.records - r.invalid - r.expired
        } else {
            0
        },
        rejected: r.invalid,
        warnings: r.warnings,
    };
    Ok(Step::Done(Outcome {
        status,
        counts,
        header: r.header,
        would_end,
    }))
}

/// Wraps a reader so that reading past `max` bytes fails with TOO_LARGE.
pub(crate) fn bounded(reader: impl Read + Send + 'static, max: u64) -> Box<dyn Read + Send> {
    Box::new(limits::SizeLimit::new(reader, max))
}

#[cfg(test)]
mod tests {
    use super::sequence_gap;

    #[test]
    fn the_next_sequence_is_no_gap() {
        assert_eq!(sequence_gap(8, 7), None);
        assert_eq!(sequence_gap(1, 0), None);
    }

    #[test]
    fn a_gap_names_how_many_may_be_missing_and_what_was_expected() {
        let w = sequence_gap(10, 7).unwrap();
        assert!(w.contains("2 file(s) may be missing"), "{w}");
        assert!(w.contains("expected 8"), "{w}");
    }

    #[test]
    fn a_repeat_and_a_restart_are_told_apart() {
        let repeat = sequence_gap(7, 7).unwrap();
        assert!(repeat.contains("repeats"), "{repeat}");
        let lower = sequence_gap(3, 7).unwrap();
        assert!(lower.contains("lower"), "{lower}");
        assert!(lower.contains("expected 8"), "{lower}");
    }
}
