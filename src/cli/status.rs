//! `status`: what the hub is doing (text or JSON).

use std::io::Write;

use super::Exit;
use crate::clock::Clock;
use crate::config::Config;

pub(super) fn run(config: &Config, json: bool, now: Clock) -> Result<i32, Exit> {
    let status = crate::status::gather(config, now).map_err(|e| Exit(1, e.into()))?;
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&status).map_err(|e| Exit(1, e.into()))?
        );
    } else {
        write!(
            std::io::stdout().lock(),
            "{}",
            crate::status::render_text(&status)
        )?;
    }
    Ok(0)
}

/// `status --check` (§10): one line per problem; 0 none, 1 some, 2 on error.
pub(super) fn check(config: &Config, now: Clock) -> Result<i32, Exit> {
    let status = crate::status::gather(config, now).map_err(|e| Exit(2, e.into()))?;
    let problems = crate::status::problems(config, &status);
    let mut out = std::io::stdout().lock();
    if problems.is_empty() {
        writeln!(out, "OK: nothing needs an operator")?;
        return Ok(0);
    }
    for p in &problems {
        writeln!(out, "{p}")?;
    }
    Ok(1)
}
