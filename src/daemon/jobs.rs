//! One turn of the daemon's loop, run on a blocking thread: what the schedule
//! says is due (read from the ledger), the pass with those jobs, the record of the
//! jobs that ran, and which SFTP remotes now have files to send.
//!
//! Owns nothing between turns: the ledger keeps when each job last ran. Must never
//! run on an async worker (it reads SQLite and folders), and never record a job
//! that a stopped pass did not finish.

use chrono::{DateTime, NaiveDate, Utc};
use tracing::{error, info};

use super::schedule;
use crate::clock::{self, Clock};
use crate::config::Config;
use crate::index::{self, Index, IndexError};
use crate::model::Job;
use crate::pipeline::{self, PassError, PassOptions, PassReport};

/// The scheduled jobs due now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct DueJobs {
    pub(super) alerts_delta: bool,
    pub(super) alerts_full: Option<NaiveDate>,
    pub(super) holdings: Option<NaiveDate>,
}

/// What a turn did.
pub(super) struct Turn {
    pub(super) result: Result<PassReport, PassError>,
    /// When the next scheduled job is due.
    pub(super) next_job: DateTime<Utc>,
    /// SFTP mailboxes with files waiting in their local `out/`.
    pub(super) to_upload: Vec<String>,
    /// Whether files wait in a `mesh_api` partner's `out/`.
    pub(super) to_send_mesh: bool,
}

/// What is due now, and when the next job will be.
pub(super) fn due_jobs(
    config: &Config,
    index: &Index,
    now: DateTime<Utc>,
) -> Result<(DueJobs, DateTime<Utc>), IndexError> {
    let hub = &config.hub;
    let state = |job| index::runs::job_state(index.db(), job);
    let delta_last = state(Job::AlertsDelta)?.0;
    let delta_last = delta_last.as_deref().and_then(clock::parse_rfc3339);
    let day = |job| -> Result<Option<NaiveDate>, IndexError> {
        Ok(state(job)?.1.as_deref().and_then(clock::parse_date))
    };
    let (full_day, holdings_day) = (day(Job::AlertsFull)?, day(Job::Holdings)?);
    let due = DueJobs {
        alerts_delta: schedule::interval_due(now, hub.alerts_every, delta_last),
        alerts_full: schedule::daily_due(now, hub.alerts_full_at, full_day),
        holdings: schedule::daily_due(now, hub.holdings_at, holdings_day),
    };
    let next = [
        schedule::interval_next(now, hub.alerts_every, delta_last),
        schedule::daily_next(now, hub.alerts_full_at, full_day),
        schedule::daily_next(now, hub.holdings_at, holdings_day),
    ]
    .into_iter()
    .min()
    .unwrap_or(now);
    Ok((due, next))
}

/// One turn at `now`: the jobs due, the pass, the record of the jobs run.
pub(super) fn turn(config: &Config, index: &mut Index, now: Clock, options: PassOptions) -> Turn {
    let (due, next_job) = due_jobs(config, index, now.now()).unwrap_or_else(|e| {
        error!(event = "schedule_error", error = %e);
        (
            DueJobs::default(),
            now.now() + chrono::Duration::seconds(30),
        )
    });
    let result = pass(config, index, now, &due, options);
    let to_upload = config
        .sftp
        .iter()
        .filter(|r| crate::transport::has_outbound(config, &r.mailbox))
        .map(|r| r.mailbox.clone())
        .collect();
    Turn {
        result,
        next_job,
        to_upload,
        to_send_mesh: config.mesh.is_some() && crate::transport::mesh::has_outbound(config),
    }
}

/// One pass with the jobs due, recording their runs.
fn pass(
    config: &Config,
    index: &mut Index,
    now: Clock,
    due: &DueJobs,
    options: PassOptions,
) -> Result<PassReport, PassError> {
    let options = PassOptions {
        alert_deltas: due.alerts_delta,
        alert_fulls: due.alerts_full.is_some(),
        emit_holdings: due.holdings.is_some(),
        ..options
    };
    let report = pipeline::run_pass(config, index, now, &options)?;
    if report.stopped {
        return Ok(report);
    }
    let at = now.rfc3339();
    let ran: Vec<(Job, Option<NaiveDate>)> = [
        (Job::AlertsDelta, due.alerts_delta, None),
        (Job::AlertsFull, due.alerts_full.is_some(), due.alerts_full),
        (Job::Holdings, due.holdings.is_some(), due.holdings),
    ]
    .into_iter()
    .filter(|&(_, ran, _)| ran)
    .map(|(job, _, day)| (job, day))
    .collect();
    index.write(|tx| {
        for (job, day) in &ran {
            let day = day.map(|d| d.to_string());
            index::runs::set_job_run(tx, *job, &at, day.as_deref())?;
        }
        Ok::<_, IndexError>(())
    })?;
    for (job, _) in ran {
        info!(event = "job_run", job = job.as_str());
    }
    Ok(report)
}
