//! The daemon loop on paused tokio time: its timers fire when the schedule says,
//! without waiting for the real clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock;
use crate::model::Job;

fn config(dir: &Path) -> Config {
    let text = r#"
[hub]
mailbox = "X26HUB01"
root = "mb"
database = "db/hub.sqlite3"
settle = "0s"
rescan_every = "30s"
alerts_every = "15m"
alerts_full_at = "02:00"
holdings_at = "03:00"

[[authority]]
code = "LA1"
name = "Authority One"
mailbox = "X26LA001"

[[site]]
code = "S1"
name = "Site One"
mailbox = "X26S0001"
site_codes = ["S1A"]
"#;
    let path = dir.join("cpis-hub.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|e| {
            e.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(start_paused = true)]
async fn holdings_run_once_at_their_time_and_alerts_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let index = Index::open(&config.hub.database).unwrap();
    let base = clock::parse_rfc3339("2026-11-21T02:50:00Z").unwrap();
    let start = tokio::time::Instant::now();
    let clock: ClockSource = Arc::new(move || {
        Clock::at(base + chrono::Duration::from_std(start.elapsed()).unwrap_or_default())
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(run(config.clone(), index, clock.clone(), async move {
        let _ = stop_rx.await;
    }));
    let out_la = config.folder("X26LA001", "out");
    let out_site = config.folder("X26S0001", "out");

    // Step virtual time a second at a time; let each pass (a blocking task) finish.
    let mut holdings_seen_at = None;
    while clock().now() < clock::parse_rfc3339("2026-11-21T03:40:00Z").unwrap() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        if holdings_seen_at.is_none() && !names(&out_la, "HOLDINGS_").is_empty() {
            holdings_seen_at = Some(clock().now());
        }
    }
    stop_tx.send(()).unwrap();
    daemon.await.unwrap().unwrap();

    let holdings = names(&out_la, "HOLDINGS_");
    assert_eq!(holdings.len(), 1, "holdings once a day: {holdings:?}");
    let stamp = holdings[0].split('_').nth(2).unwrap().to_string();
    assert!(
        stamp.as_str() >= "20261121T030000Z" && stamp.as_str() < "20261121T031000Z",
        "holdings at 03:00, not before: {stamp}"
    );
    assert!(holdings_seen_at.is_some());
    let alerts = names(&out_site, "ALERTS_");
    assert_eq!(
        alerts.len(),
        1,
        "a FULL at the first emit, then no DELTA while nothing changes: {alerts:?}"
    );
    let index = Index::open(&config.hub.database).unwrap();
    let (last, _) = index::runs::job_state(index.db(), Job::AlertsDelta).unwrap();
    let last = clock::parse_rfc3339(&last.unwrap()).unwrap();
    assert!(
        last >= clock::parse_rfc3339("2026-11-21T03:35:00Z").unwrap(),
        "the alerts job ran every 15 minutes: last at {last}"
    );
    let (_, day) = index::runs::job_state(index.db(), Job::Holdings).unwrap();
    assert_eq!(day.as_deref(), Some("2026-11-21"));
}
