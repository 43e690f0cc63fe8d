//! Where a receipt's problems go: the index (a real receipt) or memory (`validate`),
//! at most [`MAX_LISTED_PER_CODE`] of each code, the rest counted in one closing row.

use std::collections::HashMap;

use crate::index::{self, IndexError, Store};
use crate::model::{Code, Severity};
use crate::validate::Problem;

/// Where problems go: the index (for a receipt) or memory (for `validate`).
pub(crate) trait Sink {
    fn push(&mut self, store: Store<'_>, problem: Problem) -> Result<(), IndexError>;
    /// Forget everything pushed (the pass is read again).
    fn reset(&mut self);
    /// After the last problem: one row per code that had more than
    /// [`MAX_LISTED_PER_CODE`], saying how many more there were.
    fn finish(&mut self, store: Store<'_>) -> Result<(), IndexError>;
}

/// A receipt lists at most this many problems of one code; the others are counted
/// in one closing row (the counts in the metadata always count them all). Bounds
/// the receipt, and the memory and database rows behind it, whatever the file.
pub(super) const MAX_LISTED_PER_CODE: u64 = 1000;

/// Counts problems per code and says which are listed.
#[derive(Debug, Default)]
struct Cap {
    by_code: HashMap<Code, (u64, Severity)>,
}

impl Cap {
    fn admit(&mut self, p: &Problem) -> bool {
        let entry = self.by_code.entry(p.code).or_insert((0, p.severity));
        entry.0 += 1;
        entry.0 <= MAX_LISTED_PER_CODE
    }

    /// The closing rows, in a stable order (by code).
    fn summaries(&self) -> Vec<Problem> {
        let mut over: Vec<(&Code, &(u64, Severity))> = self
            .by_code
            .iter()
            .filter(|(_, (n, _))| *n > MAX_LISTED_PER_CODE)
            .collect();
        over.sort_by_key(|(code, _)| **code);
        over.into_iter()
            .map(|(code, (n, severity))| Problem {
                line: None,
                reference: String::new(),
                severity: *severity,
                code: *code,
                field: String::new(),
                message: format!(
                    "{} more {code} problems are not listed ({n} in all; a receipt lists the first {MAX_LISTED_PER_CODE} of each code)",
                    n - MAX_LISTED_PER_CODE
                ),
            })
            .collect()
    }
}

/// Problems into the `problems` table under one receipt.
pub(crate) struct DbSink {
    pub receipt_id: i64,
    seq: u64,
    cap: Cap,
}

impl DbSink {
    pub(crate) fn new(receipt_id: i64) -> Self {
        DbSink {
            receipt_id,
            seq: 0,
            cap: Cap::default(),
        }
    }

    fn insert(&mut self, store: Store<'_>, problem: &Problem) -> Result<(), IndexError> {
        self.seq += 1;
        index::ledger::insert_problem(store.tx()?, self.receipt_id, self.seq, problem)
    }
}

impl Sink for DbSink {
    fn push(&mut self, store: Store<'_>, problem: Problem) -> Result<(), IndexError> {
        if self.cap.admit(&problem) {
            self.insert(store, &problem)?;
        }
        Ok(())
    }
    fn reset(&mut self) {
        // The savepoint rollback removed the rows.
        self.seq = 0;
        self.cap = Cap::default();
    }
    fn finish(&mut self, store: Store<'_>) -> Result<(), IndexError> {
        for p in self.cap.summaries() {
            self.insert(store, &p)?;
        }
        self.cap = Cap::default();
        Ok(())
    }
}

/// Problems kept in memory.
#[derive(Default)]
pub(crate) struct MemorySink(pub Vec<Problem>, Cap);

impl Sink for MemorySink {
    fn push(&mut self, _: Store<'_>, problem: Problem) -> Result<(), IndexError> {
        if self.1.admit(&problem) {
            self.0.push(problem);
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.0.clear();
        self.1 = Cap::default();
    }
    fn finish(&mut self, _: Store<'_>) -> Result<(), IndexError> {
        self.0.extend(self.1.summaries());
        self.1 = Cap::default();
        Ok(())
    }
}
