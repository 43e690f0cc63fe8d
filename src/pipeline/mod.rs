//! One pass of the hub (SPEC §7 `process`): finish what a crash interrupted, carry
//! out operator decisions, age-18 and retention, consume every ready inbound
//! message, write requested scheduled output.
//!
//! The order for each inbound message, which survives a kill at any point:
//! 1. one transaction: ledger row, problems, apply, receipt reserved (outbound row);
//! 2. the receipt written to `out/` (re-rendered from the index: byte-identical);
//! 3. the inbound file moved to `archive/`, `failed/` or `quarantine/`;
//! 4. the ledger row and outbound row marked done.
//!
//! A restart runs [`recover`] first, which redoes 2-4 for anything left half-way.
//! Before 1 commits, nothing happened: the file is still in `in/` and is read again.
//!
//! Owns no state between passes. Must never apply a file outside a transaction,
//! never move an inbound file before its receipt is written, and never log an NHS
//! number.

pub(crate) mod alerts;
mod decide;
mod decisions;
mod dry_run;
mod error;
pub(crate) mod extract;
pub(crate) mod feeds;
mod housekeeping;
mod message;
mod pass;
mod recover;
mod sink;

pub(crate) use dry_run::{partner_of_file, validate_file};
pub(crate) use error::PassError;
#[cfg(test)]
pub(crate) use pass::FileError;
pub(crate) use pass::{run_pass, Downloads, PassOptions, PassReport};
pub(crate) use recover::recover;

#[cfg(test)]
mod tests;
