//! `quarantine list | release ID | discard ID`.

use std::io::Write;

use anyhow::bail;
use serde_json::json;

use super::args::QuarantineCommand;
use super::operator;
use crate::clock::Clock;
use crate::config::Config;
use crate::index::{self, Index};

pub(super) fn run(config: &Config, command: QuarantineCommand, now: Clock) -> anyhow::Result<i32> {
    match command {
        QuarantineCommand::List => {
            let Some(index) = Index::open_read_only(&config.hub.database)? else {
                say!("no quarantined files (no database yet)");
                return Ok(0);
            };
            let rows = index::ledger::quarantined(index.db())?;
            if rows.is_empty() {
                say!("no quarantined files");
                return Ok(0);
            }
            say!(
                "{:<6} {:<10} {:<20} {:<40} {:<16} REASON",
                "ID",
                "MAILBOX",
                "RECEIVED",
                "FILE",
                "DECISION"
            );
            for (m, decision) in rows {
                let reason = index::views::quarantine_reason(index.db(), m.id)?
                    .unwrap_or_else(|| "held for an operator".into());
                say!(
                    "{:<6} {:<10} {:<20} {:<40} {:<16} {}",
                    m.id,
                    m.mailbox,
                    m.received_at,
                    String::from_utf8_lossy(&m.name),
                    decision
                        .map(|d| format!("{d} queued"))
                        .unwrap_or_else(|| "-".into()),
                    reason
                );
            }
            Ok(0)
        }
        QuarantineCommand::Release { id } | QuarantineCommand::Discard { id } => {
            let decision = if matches!(command, QuarantineCommand::Release { .. }) {
                crate::model::Decision::Release
            } else {
                crate::model::Decision::Discard
            };
            let mut index = Index::open(&config.hub.database)?;
            let tx = index.begin()?;
            let Some(m) = index::ledger::message(tx.db(), id)? else {
                bail!("no message with id {id}: see `cpis-hub quarantine list`");
            };
            if m.status != crate::model::Status::Quarantined {
                bail!("message {id} is {}, not QUARANTINED: only quarantined files can be released or discarded", m.status);
            }
            let by = operator();
            index::ledger::queue_decision(&tx, id, decision, &now.rfc3339(), &by)?;
            index::audit::audit(
                &tx,
                &now,
                &format!("operator:{by}"),
                &format!("quarantine_{decision}_requested"),
                &json!({"message_id": id, "file": String::from_utf8_lossy(&m.name)}),
            )?;
            tx.commit()?;
            say!("{decision} of message {id} ({}) queued: the next pass (the running daemon, or the next `cpis-hub process`) carries it out", String::from_utf8_lossy(&m.name));
            Ok(0)
        }
    }
}
