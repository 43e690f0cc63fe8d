//! cpis-hub: the hub of a child-protection information-sharing service.
//!
//! Authorities' nightly extracts arrive as files in mailboxes; the hub validates
//! every line, keeps an SQLite index, and answers each file with a receipt. See
//! `docs/ARCHITECTURE.md` for the flow of a file and the invariants.
//!
//! The modules are the crate's own; the few items public below are what the
//! binary, the benchmarks and the integration tests use. `docs/ARCHITECTURE.md`
//! has the code map: the pipeline stages `intake`, `parse`, `validate`, `index`,
//! `emit`, `transport`, `pipeline`, the `daemon`, `report` and the `cli`.

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

/// The SFTP download alone, for `bench/sftp_throughput.py`.
pub use cli::sftp_fetch;
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
