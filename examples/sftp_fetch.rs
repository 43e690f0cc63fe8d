//! Downloads what is ready on one partner's SFTP remote into its local `in/`, as
//! `process` does, and nothing else (used by `bench/sftp_throughput.py`).
//!
//!     cargo run --release --example sftp_fetch -- CONFIG MAILBOX

use std::time::Instant;

use cpis_hub::clock::Clock;
use cpis_hub::config::Config;
use cpis_hub::index::Index;
use cpis_hub::transport::sftp;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(config), Some(mailbox)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: sftp_fetch CONFIG MAILBOX");
    };
    let config = Config::load(std::path::Path::new(config))?;
    let remote = config
        .sftp
        .iter()
        .find(|r| &r.mailbox == mailbox)
        .ok_or_else(|| anyhow::anyhow!("no [[sftp]] for {mailbox}"))?;
    let mut index = Index::open(&config.hub.database)?;
    let start = Instant::now();
    let (_session, conn) = sftp::connect(remote)?;
    let mut listings = sftp::Listings::default();
    let mut got = sftp::download(
        &conn,
        remote,
        &config,
        &mut index,
        &Clock::real(),
        &mut listings,
    )?;
    got.extend(sftp::download(
        &conn,
        remote,
        &config,
        &mut index,
        &Clock::real(),
        &mut listings,
    )?);
    println!(
        "{} files in {:.3} s",
        got.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
