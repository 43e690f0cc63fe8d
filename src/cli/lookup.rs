//! `lookup NHS_NUMBER --reason TEXT`: what is held, audited.

use std::io::Write;

use serde_json::json;

use super::{operator, usage, Exit};
use crate::clock::{self, Clock};
use crate::config::Config;
use crate::index::{self, Index};
use crate::nhs::NhsNumber;

pub(super) fn run(config: &Config, text: &str, reason: &str, now: Clock) -> Result<i32, Exit> {
    if reason.trim().is_empty() {
        return Err(usage(anyhow::anyhow!(
            "--reason must say why you are looking"
        )));
    }
    let nhs = NhsNumber::parse(text).map_err(|_| {
        usage(anyhow::anyhow!(
            "{text:?} is not a valid NHS number (10 digits, Modulus 11)"
        ))
    })?;
    let run = || -> anyhow::Result<i32> {
        let mut index = Index::open(&config.hub.database)?;
        let number = nhs.as_string();
        let held = index::holdings::records_by_nhs(index.db(), &number)?;
        let tx = index.begin()?;
        index::audit::audit(
            &tx,
            &now,
            &format!("operator:{}", operator()),
            "lookup",
            &json!({"nhs_number": number, "reason": reason, "records_shown": held.len()}),
        )?;
        tx.commit()?;
        if held.is_empty() {
            say!("nothing is held for {number}");
            return Ok(0);
        }
        let today = now.today();
        for (authority, h) in held {
            let (name, office, emergency) = match config.authority(&authority).map(|p| &p.role) {
                Some(crate::config::Role::Authority {
                    name,
                    office_hours_phone,
                    out_of_hours_phone,
                    ..
                }) => (
                    name.as_str(),
                    office_hours_phone.as_str(),
                    out_of_hours_phone.as_str(),
                ),
                _ => ("(authority no longer configured)", "", ""),
            };
            let end = h.end_date.as_deref().and_then(clock::parse_date);
            let status = if end.is_some_and(|e| e <= today) {
                "ENDED"
            } else {
                "ACTIVE"
            };
            say!("{authority}  {name}  office hours {office}  out of hours {emergency}");
            say!(
                "  local_id {}  plan {}  {}  dob {}  start {}  end {}{}  nhs_status {}",
                h.local_id,
                h.plan_type,
                status,
                h.date_of_birth.as_deref().unwrap_or("-"),
                h.start_date,
                h.end_date.as_deref().unwrap_or("-"),
                h.ended_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                h.nhs_status.as_deref().unwrap_or("ACTIVE"),
            );
            let accesses =
                index::flows::recent_accesses(index.db(), &authority, &h.local_id, &h.plan_type)?;
            say!("  recent unscheduled-care accesses: {}", accesses.len());
            for (at, site, setting) in accesses {
                say!("    {at}  {site}  {setting}");
            }
        }
        Ok(0)
    };
    run().map_err(|e| Exit(1, e))
}
