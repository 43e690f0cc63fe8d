//! Age-18 endings, the retention purge and the archive clean-up as of `--now`; the
//! nightly holdings files.

use serde_json::json;
use tracing::info;

use super::error::{io_at, PassError};
use super::pass::PassReport;
use super::recover::recover;
use crate::clock::Clock;
use crate::config::Config;
use crate::emit::{self};
use crate::formats::Kind;
use crate::fsutil::Dir;
use crate::index::{self, Index};
use crate::transport::{self};

/// Age-18 endings, the retention purge and the archive clean-up, as of `now`.
pub(super) fn housekeeping(
    config: &Config,
    index: &mut Index,
    now: Clock,
    root: &Dir,
) -> Result<(), PassError> {
    let today = now.today();
    let tx = index.begin()?;
    index::holdings::note_configured(
        &tx,
        config.authorities().filter_map(|a| a.authority_code()),
        &now.rfc3339(),
    )?;
    let mut seqs = index::records::ChangeSeq::load(tx.db())?;
    let ended = index::retention::end_at_18(&tx, &mut seqs, today)?;
    let purged = index::retention::purge(&tx, &mut seqs, today, config.hub.retention_days)?;
    seqs.save(&tx)?;
    let cutoff = crate::clock::add_days(today, -i64::from(config.hub.retention_days));
    index::retention::purge_flows(&tx, &cutoff.to_string())?;
    index::retention::purge_problems(&tx, now.now())?;
    if ended > 0 {
        index::audit::audit(&tx, &now, "pass", "age_18", &json!({"ended": ended}))?;
        info!(event = "age_18", ended);
    }
    for (authority, count) in &purged {
        index::audit::audit(
            &tx,
            &now,
            "pass",
            "purge",
            &json!({"authority": authority, "purged": count}),
        )?;
        info!(event = "purge", authority = %authority, purged = count);
    }
    tx.commit()?;
    let cutoff = crate::clock::add_days(today, -i64::from(config.hub.archive_days));
    for partner in &config.partners {
        let Ok(dir) = transport::folder(root, &partner.mailbox, "archive") else {
            continue;
        };
        let Ok(entries) = dir.entries() else {
            continue;
        };
        for (name, _) in entries {
            if let Some(day) = crate::clock::parse_date(&name.to_string_lossy()) {
                if day < cutoff {
                    // Never following a link: only the hub's own day folder goes.
                    dir.remove_tree(&name)
                        .map_err(io_at(&dir.path().join(&name)))?;
                    info!(event = "archive_expired", mailbox = %partner.mailbox, day = %day);
                }
            }
        }
    }
    Ok(())
}

/// Reserves and writes a holdings file for every authority (§4.5).
pub(super) fn emit_holdings(
    config: &Config,
    index: &mut Index,
    now: Clock,
    staging: &emit::Staging,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let tx = index.begin()?;
    for partner in config.authorities() {
        emit::render::reserve(
            &tx,
            config,
            &partner.mailbox,
            Kind::Holdings,
            &now,
            None,
            None,
        )?;
    }
    tx.commit()?;
    recover(config, index, staging, report)
}
