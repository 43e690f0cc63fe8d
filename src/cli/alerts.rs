//! `alerts full --site CODE`: queue a FULL alert extract (written by the next pass).

use std::io::Write;

use serde_json::json;

use super::{operator, usage, Exit};
use crate::clock::Clock;
use crate::config::Config;
use crate::index::{self, Index};

pub(super) fn full(config: &Config, site: &str, now: Clock) -> Result<i32, Exit> {
    if config.site(site).is_none() {
        return Err(usage(anyhow::anyhow!(
            "--site {site} is not a configured site organisation"
        )));
    }
    let run = || -> anyhow::Result<i32> {
        let mut index = Index::open(&config.hub.database)?;
        let by = operator();
        let tx = index.begin()?;
        index::alerts::queue_alert_request(&tx, site, &now.rfc3339(), &by)?;
        index::audit::audit(
            &tx,
            &now,
            &format!("operator:{by}"),
            "alerts_full_requested",
            &json!({"site": site}),
        )?;
        tx.commit()?;
        say!("FULL alert extract for {site} queued: the next pass (the running daemon, or the next `cpis-hub process`) writes it");
        Ok(0)
    };
    run().map_err(|e| Exit(1, e))
}
