//! `report summary | reconcile | rejections`.

use super::args::ReportCommand;
use super::validate::read_index;
use super::{usage, warn_line, Exit};
use crate::clock::{self, Clock};
use crate::config::Config;
use crate::index;

/// `--since DATE` as the RFC 3339 instant of midnight Europe/London that day.
pub(super) fn since_instant(since: Option<&str>) -> Result<Option<String>, Exit> {
    match since {
        None => Ok(None),
        Some(day) => {
            let date = clock::parse_date(day).ok_or_else(|| {
                usage(anyhow::anyhow!("--since {day:?} is not a date YYYY-MM-DD"))
            })?;
            Ok(Some(clock::rfc3339(clock::london_instant(
                date,
                chrono::NaiveTime::MIN,
            ))))
        }
    }
}

pub(super) fn run(config: &Config, command: ReportCommand, now: Clock) -> Result<i32, Exit> {
    let index = read_index(config).map_err(|e| Exit(1, e))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let fail = |e: std::io::Error| Exit(1, e.into());
    match command {
        ReportCommand::Summary { csv, html } => {
            let s =
                crate::report::summary(index.db(), config, &now).map_err(|e| Exit(1, e.into()))?;
            if csv {
                crate::report::write_summary_csv(&s, &mut out).map_err(fail)?;
            } else {
                crate::report::write_summary_text(&s, &mut out).map_err(fail)?;
            }
            if let Some(path) = html {
                let mut page = Vec::new();
                crate::report::html::write(&s, &mut page).map_err(fail)?;
                std::fs::write(&path, page)
                    .map_err(|e| Exit(1, anyhow::anyhow!("writing {}: {e}", path.display())))?;
            }
            Ok(0)
        }
        ReportCommand::Reconcile {
            authority,
            file,
            csv,
        } => {
            if config.authority(&authority).is_none() {
                return Err(usage(anyhow::anyhow!(
                    "--authority {authority} is not a configured authority"
                )));
            }
            let counts = crate::report::reconcile::reconcile(
                index.db(),
                config,
                &authority,
                &file,
                &now,
                csv,
                &mut out,
            )
            .map_err(|e| Exit(2, e.into()))?;
            if counts.delta {
                warn_line(format_args!(
                    "warning: {} is a DELTA extract; reconcile compares a FULL with what is held, so every held record the DELTA does not mention is listed as only held",
                    file.display()
                ));
            }
            Ok(if counts.matches() { 0 } else { 1 })
        }
        ReportCommand::Rejections {
            authority,
            since,
            codes,
            all,
            csv,
        } => {
            let since = since_instant(since.as_deref())?;
            let codes: Vec<crate::model::Code> = if all {
                Vec::new()
            } else if codes.is_empty() {
                crate::report::rejections::NHS_CODES.to_vec()
            } else {
                codes
                    .iter()
                    .map(|c| {
                        crate::model::Code::parse(c).ok_or_else(|| {
                            usage(anyhow::anyhow!("--code {c} is not a receipt code (see docs/formats-authorities.md)"))
                        })
                    })
                    .collect::<Result<Vec<_>, Exit>>()?
            };
            let rows = index::views::rejections(
                index.db(),
                authority.as_deref(),
                since.as_deref(),
                &codes,
            )
            .map_err(|e| Exit(1, e.into()))?;
            if csv {
                crate::report::rejections::write_csv(&rows, &mut out).map_err(fail)?;
            } else {
                crate::report::rejections::write_text(&rows, &mut out).map_err(fail)?;
            }
            Ok(0)
        }
    }
}
