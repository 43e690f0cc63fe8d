//! The hub's vocabulary: every code, status and state the SPEC (or the ledger)
//! spells, as a type, each spelling written once here. A misspelt code does not
//! compile.
//!
//! Owns nothing. Must never depend on any other module of the crate: everything
//! else may depend on this one.

use chrono::NaiveDate;

/// An enum whose variants are spelled as the SPEC (or the ledger) spells them:
/// `as_str`, `parse`, `ALL` and `Display`.
macro_rules! spelled {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            #[allow(dead_code)] // not every vocabulary is listed whole
            $vis const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The spelling in files and in the ledger.
            $vis fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The variant spelled `text` (exactly).
            #[allow(dead_code)] // not every vocabulary is read back
            $vis fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled! {
    /// A receipt problem's code (SPEC §4.1, and the hub's own where the SPEC says "at
    /// least").
    #[allow(clippy::enum_variant_names)] // SITE_CODE is the SPEC's spelling
    pub(crate) enum Code {
        // Records (extracts).
        NhsMissing => "NHS_MISSING",
        NhsFormat => "NHS_FORMAT",
        NhsCheckDigit => "NHS_CHECK_DIGIT",
        NhsTestNumber => "NHS_TEST_NUMBER",
        NhsInactive => "NHS_INACTIVE",
        LocalIdMissing => "LOCAL_ID_MISSING",
        LocalIdFormat => "LOCAL_ID_FORMAT",
        PlanType => "PLAN_TYPE",
        Action => "ACTION",
        DateFormat => "DATE_FORMAT",
        DobMissing => "DOB_MISSING",
        DobFuture => "DOB_FUTURE",
        StartMissing => "START_MISSING",
        StartFuture => "START_FUTURE",
        EndBeforeStart => "END_BEFORE_START",
        Over18 => "OVER_18",
        DuplicateRecord => "DUPLICATE_RECORD",
        UnknownRecord => "UNKNOWN_RECORD",
        FieldTooLong => "FIELD_TOO_LONG",
        ContactFormat => "CONTACT_FORMAT",
        RecordFormat => "RECORD_FORMAT",
        Expired => "EXPIRED",
        // Records (attendance events, NHS number status).
        FieldMissing => "FIELD_MISSING",
        FieldFormat => "FIELD_FORMAT",
        SiteCode => "SITE_CODE",
        Setting => "SETTING",
        Timestamp => "TIMESTAMP",
        DuplicateEvent => "DUPLICATE_EVENT",
        // Files.
        Encoding => "ENCODING",
        Compression => "COMPRESSION",
        Metadata => "METADATA",
        Header => "HEADER",
        XmlMalformed => "XML_MALFORMED",
        XmlDoctype => "XML_DOCTYPE",
        CsvMalformed => "CSV_MALFORMED",
        LineTooLong => "LINE_TOO_LONG",
        RecordCount => "RECORD_COUNT",
        PartnerMismatch => "PARTNER_MISMATCH",
        Workflow => "WORKFLOW",
        Encrypted => "ENCRYPTED",
        DatMissing => "DAT_MISSING",
        TooLarge => "TOO_LARGE",
        Name => "NAME",
        RejectFraction => "REJECT_FRACTION",
        Stale => "STALE",
        MassEnd => "MASS_END",
        Discarded => "DISCARDED",
        ReadError => "READ_ERROR",
        ProcessingError => "PROCESSING_ERROR",
        // File warnings.
        SequenceGap => "SEQUENCE_GAP",
        UnknownColumn => "UNKNOWN_COLUMN",
        UnknownElement => "UNKNOWN_ELEMENT",
    }
}

impl Code {
    /// The severity a file-level problem of this code has.
    pub(crate) fn file_severity(self) -> Severity {
        match self {
            Code::SequenceGap | Code::UnknownColumn | Code::UnknownElement => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

spelled! {
    /// How serious a receipt problem is.
    pub(crate) enum Severity {
        Error => "ERROR",
        Warning => "WARNING",
    }
}

spelled! {
    /// An inbound message's status (§4.1); `Pending` while it is being decided.
    pub(crate) enum Status {
        Accepted => "ACCEPTED",
        Partial => "PARTIAL",
        Rejected => "REJECTED",
        Duplicate => "DUPLICATE",
        Stale => "STALE",
        Quarantined => "QUARANTINED",
        Pending => "PENDING",
    }
}

impl Status {
    /// Whether the message's records were applied.
    pub(crate) fn applies(self) -> bool {
        matches!(self, Status::Accepted | Status::Partial)
    }

    /// Whether `process` counts it as a failure (§7: exit 1).
    pub(crate) fn is_failure(self) -> bool {
        matches!(self, Status::Rejected | Status::Stale | Status::Quarantined)
    }

    /// The folder a message of this status ends in, on `today` (archive dates are
    /// Europe/London days).
    pub(crate) fn destination(self, today: NaiveDate) -> Folder {
        match self {
            Status::Rejected | Status::Stale => Folder::Failed,
            Status::Quarantined => Folder::Quarantine,
            _ => Folder::Archive(today),
        }
    }
}

spelled! {
    /// What an inbound message is.
    pub(crate) enum MessageKind {
        Extract => "extract",
        Attendance => "attendance",
        NhsStatus => "nhs_status",
        /// Refused before its content was read (a name, a size, an unreadable file).
        Refused => "refused",
    }
}

spelled! {
    /// Where a decided message is in its life: its files still to move, or done.
    pub(crate) enum MessageState {
        Moving => "moving",
        Done => "done",
    }
}

spelled! {
    /// Where a reserved outbound file is: to be written, or written.
    pub(crate) enum OutboundState {
        Pending => "pending",
        Written => "written",
    }
}

spelled! {
    /// Where a file taken from an SFTP `in/` is: being copied, copied and durable
    /// here (the remote file still to be retired), or retired (§1.5).
    pub(crate) enum DownloadState {
        Downloading => "downloading",
        Local => "local",
        Done => "done",
    }
}

spelled! {
    /// A scheduled job of the daemon (§5.4), as the ledger records its runs.
    pub(crate) enum Job {
        AlertsDelta => "alerts_delta",
        AlertsFull => "alerts_full",
        Holdings => "holdings",
    }
}

spelled! {
    /// An operator's decision on a quarantined message.
    pub(crate) enum Decision {
        Release => "release",
        Discard => "discard",
    }
}

spelled! {
    /// Who set a record's end date (§4.5).
    pub(crate) enum EndedReason {
        Authority => "AUTHORITY",
        AbsentFromFull => "ABSENT_FROM_FULL",
        Age18 => "AGE_18",
    }
}

spelled! {
    /// A row of an alert extract (§4.3).
    pub(crate) enum Change {
        Add => "ADD",
        Update => "UPDATE",
        Remove => "REMOVE",
    }
}

/// A folder of a mailbox (§1.1), as the ledger names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Folder {
    In,
    Out,
    Failed,
    Quarantine,
    /// `archive/YYYY-MM-DD`.
    Archive(NaiveDate),
}

impl Folder {
    /// The folder's path below the mailbox (`archive/2026-11-22`).
    pub(crate) fn path(self) -> String {
        match self {
            Folder::In => "in".into(),
            Folder::Out => "out".into(),
            Folder::Failed => "failed".into(),
            Folder::Quarantine => "quarantine".into(),
            Folder::Archive(day) => format!("archive/{}", day.format("%Y-%m-%d")),
        }
    }

    /// The folder a path names.
    pub(crate) fn parse(text: &str) -> Option<Folder> {
        Some(match text {
            "in" => Folder::In,
            "out" => Folder::Out,
            "failed" => Folder::Failed,
            "quarantine" => Folder::Quarantine,
            _ => Folder::Archive(
                NaiveDate::parse_from_str(text.strip_prefix("archive/")?, "%Y-%m-%d").ok()?,
            ),
        })
    }
}

impl std::fmt::Display for Folder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_back() {
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(*c));
        }
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(*s));
        }
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        for f in [
            Folder::In,
            Folder::Out,
            Folder::Failed,
            Folder::Quarantine,
            Folder::Archive(day),
        ] {
            assert_eq!(Folder::parse(&f.path()), Some(f));
        }
        assert_eq!(Folder::Archive(day).path(), "archive/2026-11-22");
    }

    #[test]
    fn spellings_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
        }
    }
}

spelled! {
    /// What a message taken from the hub's MESH inbox was (§9).
    pub(crate) enum MeshInKind {
        /// Data from a `mesh_api` partner: placed in its `in/` as a MESH pair.
        Data => "data",
        /// Data from an unknown or non-`mesh_api` sender: kept for the operator.
        Kept => "kept",
        /// A REPORT (e.g. an undelivered message) about a file the hub sent.
        Report => "report",
    }
}

spelled! {
    /// Where a message from the hub's MESH inbox is: downloaded and durable under a
    /// temporary name, placed under its own name, or acknowledged on the server.
    pub(crate) enum MeshInState {
        Fetched => "fetched",
        Placed => "placed",
        Acked => "acked",
    }
}

spelled! {
    /// Where an outbound file for a `mesh_api` partner is: a send begun (outcome
    /// unknown until recorded), its first chunk accepted (the rest to follow under
    /// the recorded message id), sent, or refused by the server.
    pub(crate) enum MeshOutState {
        Sending => "sending",
        Uploading => "uploading",
        Sent => "sent",
        Refused => "refused",
    }
}
