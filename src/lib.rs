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

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod emit;
pub mod fault;
pub mod formats;
pub mod fsutil;
pub mod index;
pub mod intake;
pub mod lock;
pub mod model;
pub mod nhs;
pub mod parse;
pub mod pipeline;
pub mod report;
pub mod status;
pub mod transport;
pub mod validate;
