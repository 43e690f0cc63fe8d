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

use crate::model::{Code, Severity};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read};
use std::sync::mpsc;

use chrono::NaiveDate;
use xxhash_rust::xxh3::xxh3_128;

use super::decide;
use crate::clock::{self, Clock};
use crate::config::HubSettings;
use crate::formats::EXTRACT;
use crate::index::{self, ledger::Counts, IndexError, Store};
use crate::parse::{limits, DocReader, FileProblem, Item, Stop};
use crate::validate::{
    self, Action, Checked, ExtractHeader, ExtractRules, ExtractType, PlanType, Problem,
};

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

/// Records held by the authority, by key hash, read in one range scan before the
/// lines: an upsert then needs no read, and an unchanged record no write. Read only
/// when the authority holds at most [`HELD_IN_MEMORY`] records (≤ ~11 MiB); above
/// that, every line reads its record from the index instead.
type HeldMap = HashMap<u128, index::records::Held, BuildHasherDefault<KeyHasher>>;

/// The most held records read into memory for one file (see [`HeldMap`]).
pub(crate) const HELD_IN_MEMORY: usize = 200_000;

/// The keys are already xxh3-128 hashes: use their low 64 bits as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Reads what the authority holds (see [`HeldMap`]); `None` when it holds too much
/// (the scan stops at the first record over the limit).
fn read_held(
    store: Store<'_>,
    authority: &str,
    on: NaiveDate,
) -> Result<Option<(HeldMap, u64)>, IndexError> {
    let limit = crate::fault::held_in_memory(HELD_IN_MEMORY) as u64;
    let mut map = HeldMap::default();
    let mut open = 0u64;
    let all =
        index::records::for_each_held(store.db(), authority, on, limit, |local_id, plan, held| {
            let plan = std::str::from_utf8(plan).ok().and_then(PlanType::parse);
            if let Some(plan) = plan {
                map.insert(key_hash_bytes(local_id, plan), held);
                open += u64::from(held.open);
            }
        })?;
    Ok(all.then_some((map, open)))
}

fn key_hash(local_id: &str, plan: PlanType) -> u128 {
    key_hash_bytes(local_id.as_bytes(), plan)
}

fn key_hash_bytes(local_id: &[u8], plan: PlanType) -> u128 {
    // local_id is at most 64 characters (256 bytes): hashed from the stack.
    let mut stack = [0u8; 258];
    let mut heap = Vec::new();
    let bytes: &mut [u8] = if local_id.len() + 2 <= stack.len() {
        &mut stack[..local_id.len() + 2]
    } else {
        heap.resize(local_id.len() + 2, 0);
        &mut heap
    };
    bytes[..local_id.len()].copy_from_slice(local_id);
    bytes[local_id.len()] = 0xFF;
    bytes[local_id.len() + 1] = plan as u8;
    xxh3_128(bytes)
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

/// Lines are handed from the reading thread to the applying one in batches of this
/// many, with at most [`LINE_BATCHES`] batches in flight (bounded memory).
const LINE_BATCH: usize = 256;
const LINE_BATCHES: usize = 16;

/// One item of the file, read and checked by the worker thread.
enum Line {
    Warning(FileProblem),
    Fatal(FileProblem),
    /// Reading the source failed: the pass ends with this error.
    Io(io::Error),
    /// A record; `None` when the columns are unusable (counted, not checked).
    Record(Option<Box<Prepared>>),
}

/// A checked line with the hashes the applying thread needs.
struct Prepared {
    line: u64,
    checked: Checked,
    /// [`key_hash`] of (local_id, plan_type) when both could be read.
    key: Option<u128>,
    /// The content hash of a valid UPSERT (`index::records::content_hash`).
    hash: i64,
}

/// The worker: reads every item and checks every record (pure functions only).
/// Stops after a fatal item, or when the applying side has stopped listening.
fn prepare_lines(
    reader: DocReader<Box<dyn Read + Send>>,
    rules: &ExtractRules,
    columns_ok: bool,
    out: mpsc::SyncSender<Vec<Line>>,
    used: mpsc::Receiver<Vec<Line>>,
) {
    let mut batch = Vec::with_capacity(LINE_BATCH);
    // Batches come back once applied and are emptied here: what this thread
    // allocated, this thread frees (no allocator lock shared across threads).
    let mut spare = Vec::new();
    for item in reader {
        let (line, stop) = match item {
            Item::Warning(w) => (Line::Warning(w), false),
            Item::Fatal(fp) => (Line::Fatal(fp), true),
            Item::Io(e) => (Line::Io(e), true),
            Item::Record(raw) if columns_ok => {
                let checked = rules.check(&raw);
                let key = checked.key.as_ref().map(|(id, plan)| key_hash(id, *plan));
                let hash = match &checked.record {
                    Some(r) if r.action == Action::Upsert => index::records::content_hash(r),
                    _ => 0,
                };
                let p = Prepared {
                    line: raw.line,
                    checked,
                    key,
                    hash,
                };
                (Line::Record(Some(Box::new(p))), false)
            }
            Item::Record(_) => (Line::Record(None), false),
        };
        batch.push(line);
        if batch.len() == LINE_BATCH || stop {
            while let Ok(mut old) = used.try_recv() {
                old.clear();
                spare.push(old);
            }
            let next = spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(LINE_BATCH));
            let full = std::mem::replace(&mut batch, next);
            if out.send(full).is_err() || stop {
                break;
            }
        }
    }
    if !batch.is_empty() {
        let _ = out.send(batch);
    }
    drop(out);
    // Until the applying side is done with every batch (it then drops its sender).
    for old in used {
        drop(old);
    }
}

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
    let mut result = PassResult {
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
    };
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
    if let (Some(seq), Some(last)) = (header.sequence, state.last_sequence) {
        let message = if seq > last + 1 {
            Some(format!("sequence={seq}, but the last applied file had sequence={last}: {} file(s) may be missing (expected {})", seq - last - 1, last + 1))
        } else if seq == last {
            Some(format!("sequence={seq} repeats the last applied file's sequence: a file sent again? (expected {})", last + 1))
        } else if seq < last {
            Some(format!("sequence={seq} is lower than the last applied file's ({last}): did the sequence start again? (expected {})", last + 1))
        } else {
            None
        };
        if let Some(message) = message {
            pass.push(store, Problem::file(Code::SequenceGap, "sequence", message))?;
        }
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
    let can_apply = allow_apply && !pass.file_error && !stale && header.extract_type.is_some();
    let full = header.extract_type == Some(ExtractType::Full);
    let check_nhs_status = index::records::any_nhs_status(store.db())?;
    // A worker thread reads, parses and checks the lines (pure work) while this one
    // reads what the authority holds, then applies them in file order.
    let (line_tx, line_rx) = mpsc::sync_channel::<Vec<Line>>(LINE_BATCHES);
    let (used_tx, used_rx) = mpsc::channel::<Vec<Line>>();
    let rules = &rules;
    let (seqs, writer, held, fatal) = std::thread::scope(|scope| {
        scope.spawn(move || prepare_lines(reader, rules, columns_ok, line_tx, used_rx));
        let seqs = index::records::ChangeSeq::load(store.db())?;
        let writer = if allow_apply {
            Some(index::records::RecordWriter::new(store.tx()?)?)
        } else {
            None
        };
        let held = match read_held(store, job.authority, reference_date)? {
            Some((map, open)) => {
                result.open_before = open;
                Some(map)
            }
            None => {
                if full {
                    result.open_before =
                        index::records::count_open(store.db(), job.authority, reference_date)?;
                }
                None
            }
        };
        let mut state = Applying {
            store,
            authority: job.authority,
            can_apply,
            check_nhs_status,
            dups,
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
                            state.apply(p, &mut pass, &mut result)?;
                        }
                    }
                }
            }
            // Back to the worker to be freed there.
            let _ = used_tx.send(std::mem::take(&mut batch));
        }
        drop(used_tx);
        Ok::<_, ExtractError>((state.seqs, state.writer, state.held, fatal))
    })?;
    if !fatal {
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
        let hashes = &result.hashes;
        let mut to_end = Vec::new();
        match &held {
            // Rows inserted or updated by this pass are in the file: only what was
            // held and open before it can be absent.
            Some(map) => {
                for (k, h) in map {
                    if h.open && hashes.binary_search(k).is_err() {
                        to_end.push(h.id);
                    }
                }
                // In row order, whatever the map's order: change_seq, and so the
                // sites' DELTA rows, come out the same on every run.
                to_end.sort_unstable();
            }
            None => {
                index::records::for_each_open(
                    store.db(),
                    job.authority,
                    reference_date,
                    |id, local_id, plan| {
                        if let Some(plan) = PlanType::parse(plan) {
                            if hashes.binary_search(&key_hash(local_id, plan)).is_err() {
                                to_end.push(id);
                            }
                        }
                    },
                )?;
                to_end.sort_unstable();
            }
        }
        result.to_end = to_end;
    }
    if let Some(writer) = writer {
        seqs.save(store.tx()?)?;
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
