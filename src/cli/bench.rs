//! Glue for the benchmarks: what `bench/` times that is no command of its own.

use std::path::Path;

use anyhow::Context;

use crate::clock::Clock;
use crate::config::Config;
use crate::index::Index;
use crate::transport::sftp;

/// Downloads what is ready on one partner's SFTP remote into its local `in/`, as
/// `process` does, and nothing else: two listings, so that plain files whose size
/// held between them are taken too. Returns how many files came.
pub fn sftp_fetch(config: &Path, mailbox: &str) -> anyhow::Result<usize> {
    let config = Config::load(config)?;
    let remote = config
        .sftp
        .iter()
        .find(|r| r.mailbox == mailbox)
        .with_context(|| format!("no [[sftp]] for {mailbox}"))?;
    let mut index = Index::open(&config.hub.database)?;
    let (_session, conn) = sftp::connect(remote)?;
    let mut listings = sftp::Listings::default();
    let mut got = 0;
    for _ in 0..2 {
        got += sftp::download(
            &conn,
            remote,
            &config,
            &mut index,
            &Clock::real(),
            &mut listings,
        )?
        .len();
    }
    Ok(got)
}
