//! `audit [--since DATE] [--json]`: the audit log.

use std::io::Write;

use serde_json::json;

use super::report::since_instant;
use super::Exit;
use crate::config::Config;
use crate::index::{self, Index};

pub(super) fn run(config: &Config, since: Option<&str>, json_out: bool) -> Result<i32, Exit> {
    let since_text = since_instant(since)?;
    let run = || -> anyhow::Result<i32> {
        let Some(index) = Index::open_read_only(&config.hub.database)? else {
            if !json_out {
                say!("the audit log is empty (no database yet)");
            }
            return Ok(0);
        };
        let rows = index::audit::audit_since(index.db(), since_text.as_deref())?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for r in rows {
            if json_out {
                let detail: serde_json::Value = serde_json::from_str(&r.detail)
                    .unwrap_or(serde_json::Value::String(r.detail.clone()));
                writeln!(
                    out,
                    "{}",
                    json!({"id": r.id, "at": r.at, "pretend_at": r.pretend_at, "actor": r.actor, "action": r.action, "detail": detail})
                )?;
            } else {
                let pretended = r
                    .pretend_at
                    .as_deref()
                    .map(|p| format!(" (--now {p})"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<6} {:<20} {:<24} {:<28} {}{pretended}",
                    r.id, r.at, r.actor, r.action, r.detail
                )?;
            }
        }
        Ok(0)
    };
    run().map_err(|e| Exit(1, e))
}
