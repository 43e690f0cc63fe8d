//! `validate`: what the receipt of a file would say, nothing changed.

use super::extract;
use super::feeds;
use crate::model::Code;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::error::{extract_failed, io_at, PassError};
use super::extract::{Job, Sink, Status};
use super::message::{opener, sha256_of};
use crate::clock::Clock;
use crate::config::{Config, Partner, Role};
use crate::index::{self, ledger::Counts, ledger::MessageRow, Db, Store};
use crate::validate::Problem;

/// The outcome of `validate`: what the receipt would say, nothing changed.
pub(crate) struct Validation {
    pub partner_key: (&'static str, String),
    pub sha256: String,
    pub status: Status,
    pub counts: Counts,
    pub problems: Vec<Problem>,
    /// For a DUPLICATE: the earlier message with the same content.
    pub earlier: Option<MessageRow>,
}

/// The partner a file speaks for, from its own metadata: `authority=` of an
/// extract, `site=` of attendance events; an NHS number status file is the
/// demographics feed's.
pub(crate) fn partner_of_file<'c>(config: &'c Config, path: &Path) -> Option<&'c Partner> {
    use crate::formats::{ATTENDANCE, EXTRACT, NHS_STATUS};
    for spec in [&EXTRACT, &ATTENDANCE, &NHS_STATUS] {
        let file = File::open(path).ok()?;
        let Ok((_, prelude)) = crate::parse::DocReader::open(file, spec) else {
            continue;
        };
        let meta = &prelude.metadata;
        return match spec.name {
            "cpis-extract" => config.authority(meta.get("authority")?),
            "cpis-attendance" => config.site(meta.get("site")?),
            _ => config
                .partners
                .iter()
                .find(|p| matches!(p.role, Role::Demographics)),
        };
    }
    None
}

/// Checks a file against the rules and the index without changing anything (§7).
pub(crate) fn validate_file(
    config: &Config,
    db: Db<'_>,
    path: &Path,
    partner: Option<&Partner>,
    now: Clock,
) -> Result<Validation, PassError> {
    let file = Arc::new(File::open(path).map_err(io_at(path))?);
    let sha256 = sha256_of(&file).map_err(io_at(path))?;
    let Some(partner) = partner else {
        let problem = Problem::file(
            Code::PartnerMismatch,
            "authority",
            "the file's metadata names no configured partner: name the sender with --partner MAILBOX",
        );
        return Ok(Validation {
            partner_key: ("mailbox", String::new()),
            sha256,
            status: Status::Rejected,
            counts: Counts::default(),
            problems: vec![problem],
            earlier: None,
        });
    };
    let (key, value) = partner.key();
    let partner_key = (key, value.to_string());
    if let Some(id) = index::ledger::find_duplicate(db, &partner.mailbox, &sha256)? {
        return Ok(Validation {
            partner_key,
            sha256,
            status: Status::Duplicate,
            counts: Counts::default(),
            problems: Vec::new(),
            earlier: index::ledger::message(db, id)?,
        });
    }
    let open = opener(&file, false, config.hub.max_file_bytes);
    let mut sink = extract::MemorySink::default();
    let io_err = extract_failed(path);
    let outcome = match feeds::handler_for(config, partner, now, 0) {
        Some(mut handler) => feeds::evaluate(
            Store::Read(db),
            handler.as_mut(),
            &config.hub,
            &[],
            &open,
            false,
            &mut sink,
        )
        .map_err(io_err)?,
        None => {
            let job = Job {
                hub: &config.hub,
                authority: partner.authority_code().unwrap_or_default(),
                now,
                pre_problems: Vec::new(),
                guard: true,
                apply: false,
            };
            extract::evaluate(Store::Read(db), &job, &open, &mut sink).map_err(io_err)?
        }
    };
    sink.finish(Store::Read(db))?;
    let mut problems = sink.0;
    problems.sort_by_key(|p| p.line.map_or((0, 0), |l| (1, l)));
    Ok(Validation {
        partner_key,
        sha256,
        status: outcome.status,
        counts: outcome.counts,
        problems,
        earlier: None,
    })
}
