//! cpis-hub: the hub of a child-protection information-sharing service.
//!
//! Authorities' nightly extracts arrive as files in mailboxes; the hub validates
//! every line, keeps an SQLite index, and answers each file with a receipt. See
//! `docs/ARCHITECTURE.md` for the flow of a file and the invariants.
//!
//! Pipeline stages, one module each: [`intake`] (find ready messages), [`parse`]
//! (streaming readers), [`validate`] (pure rules), [`index`] (the only SQL),
//! [`emit`] (atomic outbound writers), [`transport`] (mailbox folders),
//! [`pipeline`] (one pass, in crash-safe order), [`cli`].

mod cli;
mod clock;
mod config;
mod daemon;
mod emit;
mod fault;
mod formats;
mod fsutil;
mod index;
mod intake;
mod lock;
mod model;
mod nhs;
mod parse;
mod pipeline;
mod report;
mod status;
mod transport;
mod validate;

// The public surface: what the binary, the benchmarks and the integration tests
// use. Everything else is the crate's own.

/// The binary's entry point and its command line (for completions and man pages).
pub use cli::{main, Cli};
/// Time as the tests give it (`--now`).
pub use clock::parse_rfc3339;
/// The crash points `CPIS_HUB_FAULT` accepts (with the `fault-injection` feature).
pub use fault::POINTS as FAULT_POINTS;
/// Metadata values as receipts encode them.
pub use formats::percent_decode;
/// The database schema this build writes.
pub use index::SCHEMA_VERSION;
/// The hub's processing lock, as a second process would hold it.
pub use lock::{Lock, LockError};
/// The SFTP download alone, for `bench/sftp_throughput.py`.
pub use cli::sftp_fetch;
