//! The steps after a message's commit, batched for a pass and redone after a crash:
//! receipts written, files moved, both marked done.

use std::collections::HashSet;
use std::io::{self};

use tracing::info;

use super::error::{io_at, PassError};
use super::pass::PassReport;
use crate::config::Config;
use crate::emit::{self, render::EmitError};
use crate::fsutil::Dir;
use crate::index::{self, ledger::MessageRow, Index};
use crate::transport::{self, name_from};

/// Writes every reserved outbound file and finishes every half-done move.
///
/// Batched: whatever an interrupted pass left in the staging folder is removed; every
/// reserved file is rendered there, all are flushed with one `syncfs`, renamed into
/// their partners' folders and flushed again, and marked written; only then are the
/// inbound files whose receipts are out moved (and flushed) and marked done. The
/// order for each message is unchanged — receipt durable, then the file moved, then
/// marked — so a crash anywhere is finished by the next call. A partner whose folder
/// cannot take a file (a folder planted at its name, `out/` replaced by a link) stops
/// that file and its message only: it is reported, and tried again next pass.
pub(crate) fn recover(
    config: &Config,
    index: &mut Index,
    staging: &emit::Staging,
    report: &mut PassReport,
) -> Result<(), PassError> {
    let staging_path = config.hub.root.join(emit::STAGING);
    staging.clear().map_err(io_at(&staging_path))?;
    let rows = index::outbound::pending_outbound(index.db())?;
    let mut batch = Vec::new();
    let mut failed = HashSet::new();
    for row in &rows {
        match emit::render::stage(config, index.db(), staging, row) {
            Ok(out) => batch.push(out),
            Err(EmitError::Missing(what)) => {
                failed.insert(row.id);
                report.partner_error(
                    &row.mailbox,
                    format!("outbound file {what} cannot be rendered"),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    let undelivered = emit::publish(staging, batch).map_err(io_at(&config.hub.root))?;
    for u in undelivered {
        failed.insert(u.id);
        report.partner_error(&u.mailbox, format!("an outbound file could not be put in its folder: {} (remove what is in the way; it is written again at the next pass)", u.error));
    }
    let written: Vec<&index::outbound::OutboundRow> =
        rows.iter().filter(|r| !failed.contains(&r.id)).collect();
    if !written.is_empty() {
        crate::fault::point("after_receipt");
        let tx = index.begin()?;
        for row in &written {
            index::outbound::mark_outbound_written(&tx, row.id)?;
        }
        tx.commit()?;
        for row in &written {
            info!(event = "outbound_written", mailbox = %row.mailbox, file = %emit::render::data_name(row));
        }
    }
    let waiting = index::ledger::messages_awaiting_receipt(index.db())?;
    let mut moved = Vec::new();
    for m in index::ledger::messages_moving(index.db())? {
        if waiting.contains(&m.id) {
            continue;
        }
        match move_message(staging.root(), &m) {
            Ok(()) => moved.push(m.id),
            Err(e) => report.partner_error(
                &m.mailbox,
                format!("moving {}: {e}", String::from_utf8_lossy(&m.name)),
            ),
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    staging.root().syncfs().map_err(io_at(&config.hub.root))?;
    crate::fault::point("after_move");
    let tx = index.begin()?;
    for id in moved {
        index::ledger::mark_message_done(&tx, id)?;
    }
    tx.commit()?;
    Ok(())
}

/// Moves a decided message's files (the `.ctl` first: a lone `.dat` waits harmlessly,
/// a lone `.ctl` would be refused) to their final folder.
pub(super) fn move_message(root: &Dir, m: &MessageRow) -> io::Result<()> {
    let from = transport::folder(root, &m.mailbox, &m.src_folder.path())?;
    let to = transport::create_folder(root, &m.mailbox, &m.dest_folder.path())?;
    if let (Some(ctl), Some(dest_ctl)) = (&m.src_ctl_name, &m.dest_ctl_name) {
        transport::move_entry(&from, &name_from(ctl), &to, &name_from(dest_ctl))?;
    }
    transport::move_entry(
        &from,
        &name_from(&m.src_name),
        &to,
        &name_from(&m.dest_name),
    )
}
