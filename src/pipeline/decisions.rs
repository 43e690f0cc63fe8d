//! Operators' decisions on quarantined messages (§5.3), carried out by a pass.

use super::extract;
use crate::model::{Code, Decision, Folder, MessageState};
use std::io::{self};

use serde_json::json;

use super::error::{extract_failed, io_at, PassError};
use super::extract::{DbSink, Job, Sink, Status};
use super::message::{finish_extract, open_inbound, opener, place, reserve_receipt};
use super::pass::PassReport;
use super::recover::recover;
use crate::clock::Clock;
use crate::config::Config;
use crate::emit::{self};
use crate::index::{self, ledger::Counts, Index, Store};
use crate::transport::{self, name_from};
use crate::validate::Problem;

/// Carries out queued quarantine decisions (§6.6).
pub(super) fn carry_out_decisions(
    config: &Config,
    index: &mut Index,
    now: Clock,
    staging: &emit::Staging,
    report: &mut PassReport,
) -> Result<(), PassError> {
    for d in index::ledger::pending_decisions(index.db())? {
        let Some(mut m) = index::ledger::message(index.db(), d.message_id)? else {
            continue;
        };
        let tx = index.begin()?;
        if m.status != Status::Quarantined || m.state != MessageState::Done {
            index::ledger::finish_decisions(&tx, m.id, &now.rfc3339())?;
            tx.commit()?;
            continue;
        }
        m.src_folder = Folder::Quarantine;
        let file_name = String::from_utf8_lossy(&m.name).into_owned();
        m.src_name = m.dest_name.clone();
        m.src_ctl_name = m.dest_ctl_name.clone();
        let status = if d.decision == Decision::Release {
            let authority = m.authority.clone().unwrap_or_default();
            let receipt =
                index::ledger::insert_receipt(&tx, m.id, Status::Pending, Counts::default())?;
            let job = Job {
                hub: &config.hub,
                authority: &authority,
                now,
                pre_problems: Vec::new(),
                guard: false,
                apply: true,
            };
            let folder = transport::folder(staging.root(), &m.mailbox, "quarantine")
                .map_err(io_at(&config.folder(&m.mailbox, "quarantine")))?;
            let path = folder.path().join(name_from(&m.src_name));
            let file = open_inbound(&folder, &name_from(&m.src_name), u64::MAX)?
                .map_err(|p| io_at(&path)(io::Error::new(io::ErrorKind::InvalidData, p.message)))?;
            let open = opener(&file, m.compressed, config.hub.max_file_bytes);
            let mut sink = DbSink::new(receipt);
            let outcome = extract::evaluate(Store::Write(&tx), &job, &open, &mut sink)
                .map_err(extract_failed(&path))?;
            sink.finish(Store::Write(&tx))?;
            finish_extract(
                config,
                &tx,
                &now,
                &mut m,
                receipt,
                &outcome,
                &format!("operator:{}", d.requested_by),
            )?;
            report
                .messages
                .push((m.mailbox.clone(), name_from(&m.name), outcome.status));
            outcome.status
        } else {
            let counts = Counts {
                records: m.records,
                ..Counts::default()
            };
            let receipt = index::ledger::insert_receipt(&tx, m.id, Status::Rejected, counts)?;
            index::ledger::insert_problem(
                &tx,
                receipt,
                1,
                &Problem::file(
                    Code::Discarded,
                    "",
                    "an operator discarded this quarantined file; nothing was applied",
                ),
            )?;
            m.status = Status::Rejected;
            m.applied = 0;
            m.dest_folder = Folder::Failed;
            place(config, &mut m);
            index::ledger::update_message(&tx, &m)?;
            reserve_receipt(config, &tx, &now, &m, receipt)?;
            index::audit::audit(
                &tx,
                &now,
                &format!("operator:{}", d.requested_by),
                "quarantine_discard",
                &json!({"message_id": m.id, "file": file_name}),
            )?;
            Status::Rejected
        };
        if d.decision == Decision::Release {
            index::audit::audit(
                &tx,
                &now,
                &format!("operator:{}", d.requested_by),
                "quarantine_release",
                &json!({"message_id": m.id, "file": file_name, "status": status.as_str()}),
            )?;
        }
        index::ledger::finish_decisions(&tx, m.id, &now.rfc3339())?;
        tx.commit()?;
        recover(config, index, staging, report)?;
    }
    Ok(())
}
