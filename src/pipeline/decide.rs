//! The decision of SPEC §4.1 / §5.1, for every inbound file: the first rule that
//! applies wins — a file-level error (REJECTED), STALE, every record invalid or the
//! reject fraction (REJECTED), the mass-end guard (QUARANTINED), then ACCEPTED or
//! PARTIAL. (DUPLICATE is decided before a file is read.)
//!
//! Owns nothing; pure: it reads no file and no index.

use crate::model::{Code, Status};
use crate::validate::Problem;

/// What reading a file found, as far as the decision needs it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Findings {
    /// A file-level error was found (its problem is in the receipt already).
    pub file_error: bool,
    /// `extracted_at` is older than the last extract applied (extracts only).
    pub stale: bool,
    pub records: u64,
    pub invalid: u64,
    /// A FULL under the mass-end guard: what it would end, and of how many open.
    pub mass_end: Option<MassEnd>,
}

/// The mass-end guard's figures for a FULL.
#[derive(Debug, Clone, Copy)]
pub(super) struct MassEnd {
    pub would_end: u64,
    pub open_before: u64,
    /// `max(hub.mass_end_fraction × open, hub.mass_end_min)`.
    pub limit: f64,
}

/// The status of a file and, when the decision has its own row in the receipt
/// (REJECT_FRACTION, MASS_END), that row.
pub(super) fn decide(f: &Findings, max_reject_fraction: f64) -> (Status, Option<Problem>) {
    let fraction = if f.records > 0 {
        f.invalid as f64 / f.records as f64
    } else {
        0.0
    };
    if f.file_error {
        (Status::Rejected, None)
    } else if f.stale {
        (Status::Stale, None)
    } else if f.records > 0 && f.invalid == f.records {
        let message = format!("all {} records are invalid; nothing was applied", f.records);
        (
            Status::Rejected,
            Some(Problem::file(Code::RejectFraction, "", message)),
        )
    } else if fraction > max_reject_fraction {
        let message = format!(
            "{} of {} records are invalid ({:.0}%), more than hub.max_reject_fraction {max_reject_fraction}; nothing was applied: fix the file and send it again",
            f.invalid,
            f.records,
            fraction * 100.0,
        );
        (
            Status::Rejected,
            Some(Problem::file(Code::RejectFraction, "", message)),
        )
    } else if let Some(m) = f.mass_end.filter(|m| m.would_end as f64 > m.limit) {
        let message = format!(
            "this FULL would end {} of the {} open records (more than {:.0}); it is held for an operator (cpis-hub quarantine release|discard)",
            m.would_end, m.open_before, m.limit
        );
        (
            Status::Quarantined,
            Some(Problem::file(Code::MassEnd, "", message)),
        )
    } else if f.invalid == 0 {
        (Status::Accepted, None)
    } else {
        (Status::Partial, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(f: Findings) -> (Status, Option<Code>) {
        let (s, p) = decide(&f, 0.5);
        (s, p.map(|p| p.code))
    }

    #[test]
    fn the_first_rule_that_applies_wins() {
        let mass = Some(MassEnd {
            would_end: 50,
            open_before: 100,
            limit: 20.0,
        });
        let all = Findings {
            file_error: true,
            stale: true,
            records: 4,
            invalid: 4,
            mass_end: mass,
        };
        assert_eq!(status(all), (Status::Rejected, None));
        let f = Findings {
            file_error: false,
            ..all
        };
        assert_eq!(status(f), (Status::Stale, None));
        let f = Findings { stale: false, ..f };
        assert_eq!(status(f), (Status::Rejected, Some(Code::RejectFraction)));
        let f = Findings { invalid: 3, ..f };
        assert_eq!(status(f), (Status::Rejected, Some(Code::RejectFraction)));
        let f = Findings { invalid: 1, ..f };
        assert_eq!(status(f), (Status::Quarantined, Some(Code::MassEnd)));
        let f = Findings {
            mass_end: None,
            ..f
        };
        assert_eq!(status(f), (Status::Partial, None));
        let f = Findings { invalid: 0, ..f };
        assert_eq!(status(f), (Status::Accepted, None));
    }

    #[test]
    fn an_empty_file_is_accepted_and_the_guard_allows_up_to_its_limit() {
        assert_eq!(status(Findings::default()), (Status::Accepted, None));
        let at_limit = Findings {
            mass_end: Some(MassEnd {
                would_end: 20,
                open_before: 100,
                limit: 20.0,
            }),
            ..Findings::default()
        };
        assert_eq!(status(at_limit), (Status::Accepted, None));
    }
}
