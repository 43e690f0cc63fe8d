//! Crash injection for the crash-order tests: when `CPIS_HUB_FAULT` names a point
//! the process reaches, it aborts there, as a `kill -9` would stop it.
//!
//! Owns nothing. The variable is read once; unset (always, in production) the
//! points cost one comparison.

use std::sync::OnceLock;

/// The points, in the order a message passes them.
pub const POINTS: &[&str] = &[
    "before_commit",
    "after_commit",
    "after_receipt",
    "after_move",
];

fn armed() -> Option<&'static str> {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            std::env::var("CPIS_HUB_FAULT")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .as_deref()
}

/// Aborts the process if `CPIS_HUB_FAULT` is this point.
pub fn point(name: &str) {
    if armed() == Some(name) {
        eprintln!("cpis-hub: fault injected at {name}: aborting");
        std::process::abort();
    }
}

/// With `CPIS_HUB_FAULT=transient_read:N`, the first N reads of inbound files fail
/// with "permission denied" (a transient error), to test retries and backoff.
pub fn transient_read() -> std::io::Result<()> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static FAILED: AtomicU32 = AtomicU32::new(0);
    let Some(spec) = armed().and_then(|a| a.strip_prefix("transient_read:")) else {
        return Ok(());
    };
    let limit: u32 = spec.parse().unwrap_or(0);
    if FAILED.fetch_add(1, Ordering::SeqCst) < limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "fault injected: transient read error",
        ));
    }
    Ok(())
}
