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
