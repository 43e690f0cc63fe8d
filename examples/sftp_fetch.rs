//! Downloads what is ready on one partner's SFTP remote into its local `in/`, as
//! `process` does, and nothing else (used by `bench/sftp_throughput.py`).
//!
//!     cargo run --release --example sftp_fetch -- CONFIG MAILBOX

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(config), Some(mailbox)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: sftp_fetch CONFIG MAILBOX");
    };
    let start = Instant::now();
    let got = cpis_hub::sftp_fetch(std::path::Path::new(config), mailbox)?;
    println!("{got} files in {:.3} s", start.elapsed().as_secs_f64());
    Ok(())
}
