//! `init [DIR]`: an example config and its mailbox folders.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use crate::config::{self, Config};

pub(super) fn run(dir: &Path) -> anyhow::Result<i32> {
    let path = dir.join("cpis-hub.toml");
    if path.exists() {
        bail!(
            "{} exists already; init never overwrites a config",
            path.display()
        );
    }
    crate::fsutil::ensure_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, config::example_for_init())
        .with_context(|| format!("writing {}", path.display()))?;
    let config = Config::load(&path)?;
    crate::transport::ensure_mailboxes(&config).context("creating the mailbox folders")?;
    say!(
        "wrote {} and the mailbox folders under {}",
        path.display(),
        config.hub.root.display()
    );
    say!("next: cpis-hub --config {} process", path.display());
    Ok(0)
}
