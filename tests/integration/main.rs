//! Integration tests of the `cpis-hub` binary: each test builds a hub in a temporary
//! folder (see `harness`), drops files into mailboxes and reads what comes out.

mod harness;

mod bounded;
mod conformance;
mod crash;
mod daemon;
mod deploy;
mod extracts;
mod golden;
mod hostile;
mod intake;
mod mesh;
mod monitoring;
mod nhs_side;
mod operator;
mod output;
mod quarantine;
mod readme;
mod reports;
mod schemas;
mod sftp;
