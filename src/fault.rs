//! Crash and fault injection for the crash-order tests: when `CPIS_HUB_FAULT` names a
//! point the process reaches, it aborts there, as a `kill -9` would stop it.
//!
//! Owns nothing. Compiled in only with the cargo feature `fault-injection`, which
//! `cargo test` turns on (the crate's dev-dependency on itself) and no production
//! build has: there, every function here is a constant and the variable is ignored
//! (the daemon says so at start if it is set). With the feature, the variable is read
//! once; unset, the points cost one comparison.

/// The points, in the order a message passes them.
pub const POINTS: &[&str] = &[
    "before_commit",
    "after_commit",
    "after_receipt",
    "after_move",
];

/// Whether this build can inject faults at all.
pub(crate) const COMPILED_IN: bool = cfg!(feature = "fault-injection");

#[cfg(feature = "fault-injection")]
fn armed() -> Option<&'static str> {
    use std::sync::OnceLock;
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            std::env::var("CPIS_HUB_FAULT")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .as_deref()
}

#[cfg(not(feature = "fault-injection"))]
fn armed() -> Option<&'static str> {
    None
}

/// A warning for the log when `CPIS_HUB_FAULT` is set in a build that ignores it.
pub(crate) fn ignored_warning() -> Option<String> {
    (!COMPILED_IN && std::env::var_os("CPIS_HUB_FAULT").is_some()).then(|| {
        "CPIS_HUB_FAULT is set but this build has no fault injection: it is ignored".into()
    })
}

/// Aborts the process if `CPIS_HUB_FAULT` is this point.
pub(crate) fn point(name: &str) {
    if armed() == Some(name) {
        eprintln!("cpis-hub: fault injected at {name}: aborting");
        std::process::abort();
    }
}

/// With `CPIS_HUB_FAULT=transient_read:N` the first N reads of inbound files fail
/// with "permission denied" (transient); with `permanent_read:N`, with "invalid
/// data" (permanent). For tests of retries, backoff and `failed/`.
pub(crate) fn transient_read() -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::sync::atomic::{AtomicU32, Ordering};
    static FAILED: AtomicU32 = AtomicU32::new(0);
    let Some(armed) = armed() else { return Ok(()) };
    let (kind, spec) = if let Some(n) = armed.strip_prefix("transient_read:") {
        (ErrorKind::PermissionDenied, n)
    } else if let Some(n) = armed.strip_prefix("permanent_read:") {
        (ErrorKind::InvalidData, n)
    } else {
        return Ok(());
    };
    let limit: u32 = spec.parse().unwrap_or(0);
    if FAILED.fetch_add(1, Ordering::SeqCst) < limit {
        return Err(Error::new(kind, "fault injected: read error"));
    }
    Ok(())
}

/// With `CPIS_HUB_FAULT=held_in_memory:N` an extract reads the authority's held
/// records into memory only when there are at most N of them (production: 200,000),
/// so the tests can run the path that reads each record from the index instead.
pub(crate) fn held_in_memory(default: usize) -> usize {
    armed()
        .and_then(|a| a.strip_prefix("held_in_memory:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// With `CPIS_HUB_FAULT=poison:NAME` applying the inbound file NAME fails the same
/// way every time (an SQL constraint error: not the environment), for tests of
/// bounded retries.
pub(crate) fn poisoned(name: &[u8]) -> bool {
    armed()
        .and_then(|a| a.strip_prefix("poison:"))
        .is_some_and(|n| n.as_bytes() == name)
}
