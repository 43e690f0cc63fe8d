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
