//! `backup FILE`: a consistent, checked, audited copy of the database.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::json;

use super::operator;
use crate::clock::Clock;
use crate::config::Config;
use crate::index::{self, Index};

/// A consistent copy of the database (the online `VACUUM INTO`: readers and the
/// daemon's writer carry on), written 0600, then checked and audited.
pub(super) fn run(config: &Config, file: &Path, now: Clock) -> anyhow::Result<i32> {
    if file.exists() {
        bail!("{} exists already; backup never overwrites", file.display());
    }
    let Some(index) = Index::open_read_only(&config.hub.database)? else {
        bail!(
            "there is no database at {} to back up",
            config.hub.database.display()
        );
    };
    let target = file.to_str().context("the backup path must be UTF-8")?;
    // The copy holds every record: 0600 from its first byte (created empty here,
    // never replacing anything; VACUUM INTO fills an empty file), not chmod'ed after.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    index.backup_to(target).with_context(|| {
        let _ = std::fs::remove_file(file);
        format!("backing up to {}", file.display())
    })?;
    crate::fault::point("backup_copied");
    let records = index::ReadOnly::check_copy(file)?;
    drop(index);
    let mut writer = Index::open(&config.hub.database)?;
    let tx = writer.begin()?;
    index::audit::audit(
        &tx,
        &now,
        &format!("operator:{}", operator()),
        "backup",
        &json!({"file": file.display().to_string(), "records": records}),
    )?;
    tx.commit()?;
    say!(
        "backed up {} records to {} (integrity check ok)",
        records,
        file.display()
    );
    Ok(0)
}
