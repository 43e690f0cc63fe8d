//! The worker thread of a pass: reads every item of the file and checks every
//! record with pure `validate` rules, and hands them on in bounded batches.
//!
//! Owns the reader. Must never touch the index, and never hold more than
//! [`LINE_BATCHES`] batches of [`LINE_BATCH`] lines in flight.

use std::io::{self, Read};
use std::sync::mpsc;

use crate::index;
use crate::parse::{DocReader, FileProblem, Item};
use crate::validate::{key_hash, Action, Checked, ExtractRules};

/// Lines are handed from the reading thread to the applying one in batches of this
/// many, with at most [`LINE_BATCHES`] batches in flight (bounded memory).
pub(super) const LINE_BATCH: usize = 256;
pub(super) const LINE_BATCHES: usize = 16;

/// One item of the file, read and checked by the worker thread.
pub(super) enum Line {
    Warning(FileProblem),
    Fatal(FileProblem),
    /// Reading the source failed: the pass ends with this error.
    Io(io::Error),
    /// A record; `None` when the columns are unusable (counted, not checked).
    Record(Option<Box<Prepared>>),
}

/// A checked line with the hashes the applying thread needs.
pub(super) struct Prepared {
    pub(super) line: u64,
    pub(super) checked: Checked,
    /// [`key_hash`] of (local_id, plan_type) when both could be read.
    pub(super) key: Option<u128>,
    /// The content hash of a valid UPSERT (`index::records::content_hash`).
    pub(super) hash: i64,
}

/// The worker: reads every item and checks every record (pure functions only).
/// Stops after a fatal item, or when the applying side has stopped listening.
pub(super) fn prepare_lines(
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
