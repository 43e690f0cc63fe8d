//! `run`: the daemon on a single-threaded runtime, until SIGTERM or SIGINT.

use super::process::open_for_processing;
use super::Exit;
use crate::clock::Clock;
use crate::config::Config;

pub(super) fn run(config: Config, now: Option<chrono::DateTime<chrono::Utc>>) -> Result<i32, Exit> {
    let (_lock, index) = open_for_processing(&config)?;
    let clock: crate::daemon::ClockSource = match now {
        Some(base) => {
            let started = std::time::Instant::now();
            std::sync::Arc::new(move || {
                let elapsed = chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
                Clock::at(base + elapsed)
            })
        }
        None => std::sync::Arc::new(Clock::real),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Exit(1, e.into()))?;
    let result = runtime.block_on(async move {
        let shutdown =
            stop_signal().map_err(|e| crate::daemon::DaemonError::Task(e.to_string()))?;
        crate::daemon::run(config, index, clock, shutdown).await
    });
    // The daemon has given transfers in progress their grace already; any still
    // running are abandoned now (they write temporary names only). No second
    // timed wait: it would measure time on the clock a --now-less test moves.
    runtime.shutdown_background();
    result.map_err(|e| Exit(1, e.into()))?;
    Ok(0)
}

/// SIGTERM or SIGINT, as a future (registered now, so no signal is missed).
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
