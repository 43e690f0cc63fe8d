//! Alert extracts to sites (SPEC §4.3): a FULL at a site's first alerts emit, on an
//! operator's request, and at each scheduled emit for sites configured
//! `alerts = "full"`; otherwise a DELTA of what changed since the site's last file,
//! written only when something changed.
//!
//! What each file covers (a range of change sequence numbers) is reserved in one
//! transaction with the site's new state; the files are written after the commit,
//! and a FULL going to many sites is rendered once.

use serde_json::json;
use tracing::info;

use super::{PassError, PassReport};
use crate::clock::Clock;
use crate::config::{AlertsMode, Config, Role};
use crate::emit::{self, alerts::AlertParams};
use crate::formats::Kind;
use crate::index::{self, outbound::OutboundRow, Index};
use crate::validate::ExtractType;

/// Reserves and writes alert files: `deltas` — DELTAs to `alerts = "delta"` sites
/// (and a FULL to any site never sent one); `fulls_due` — the nightly FULL to
/// `alerts = "full"` sites. Operators' FULL requests are always carried out.
pub(crate) fn emit_alerts(
    config: &Config,
    index: &mut Index,
    now: Clock,
    staging: &emit::Staging,
    report: &mut PassReport,
    deltas: bool,
    fulls_due: bool,
) -> Result<(), PassError> {
    let requested = index::alerts::pending_alert_requests(index.db())?;
    if !deltas && !fulls_due && requested.is_empty() {
        return Ok(());
    }
    let tx = index.begin()?;
    let upto = index::alerts::last_change_seq(tx.db())?;
    let mut fulls: Vec<OutboundRow> = Vec::new();
    for partner in &config.partners {
        let Role::Site { code, alerts, .. } = &partner.role else {
            continue;
        };
        let state = index::alerts::site_state(tx.db(), code)?;
        let asked = requested.contains(code);
        let full_mode = *alerts == AlertsMode::Full;
        let params = match &state {
            _ if asked => Some((ExtractType::Full, 0, None)),
            None if deltas || (full_mode && fulls_due) => Some((ExtractType::Full, 0, None)),
            Some(_) if full_mode && fulls_due => Some((ExtractType::Full, 0, None)),
            Some((last_created_at, last_seq))
                if deltas
                    && !full_mode
                    && index::alerts::changed_between(tx.db(), *last_seq, upto)? =>
            {
                Some((ExtractType::Delta, *last_seq, Some(last_created_at.clone())))
            }
            _ => None,
        };
        let Some((kind, from, since)) = params else {
            continue;
        };
        let mut row = emit::render::reserve(
            &tx,
            config,
            &partner.mailbox,
            Kind::Alerts,
            &now,
            None,
            None,
        )?;
        let params = AlertParams {
            kind,
            from,
            upto,
            since,
        };
        let text = json!(params).to_string();
        index::outbound::set_outbound_params(&tx, row.id, &text)?;
        row.params = Some(text);
        index::alerts::set_site_state(&tx, code, &now.rfc3339(), upto)?;
        if asked {
            index::alerts::finish_alert_requests(&tx, code, &now.rfc3339())?;
        }
        info!(event = "alerts_reserved", site = %code, kind = kind.as_str(), sequence = row.sequence);
        if kind == ExtractType::Full {
            fulls.push(row);
        }
    }
    tx.commit()?;
    // FULL files first, rendered once for all sites; then everything else (and any
    // FULL a site's folder could not take, written alone by `recover`).
    if !fulls.is_empty() {
        let undelivered = emit::alerts::write_full_alerts(config, index.db(), staging, &fulls)?;
        let written: Vec<&OutboundRow> = fulls
            .iter()
            .filter(|row| !undelivered.iter().any(|u| u.id == row.id))
            .collect();
        index.write(|tx| {
            written
                .iter()
                .try_for_each(|row| index::outbound::mark_outbound_written(tx, row.id))
        })?;
        for row in written {
            info!(event = "outbound_written", mailbox = %row.mailbox, file = %emit::render::data_name(row));
        }
    }
    super::recover(config, index, staging, report)
}
