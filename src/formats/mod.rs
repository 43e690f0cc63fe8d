//! The tables of every SPEC format (§2.3, §3, §4) and the spellings they share:
//! column lists, the case mapping of names between CSV and XML (§2.1), and the
//! percent encoding of metadata values. Read by the readers, the validators and
//! the writers, so that no list or spelling is written twice.
//!
//! Owns no state; does no I/O. Must never depend on `parse` or `emit`: both
//! depend on it.

mod encoding;
mod names;

pub(crate) use encoding::metadata_line;
pub use encoding::percent_decode;
pub(crate) use names::{camel, pascal, snake};

/// The columns of one SPEC format, inbound or outbound.
#[derive(Debug)]
pub(crate) struct Spec {
    /// `cpis-extract`
    pub name: &'static str,
    /// `CpisExtract`
    pub root: &'static str,
    /// snake_case column names; a record's values come in this order.
    pub columns: &'static [&'static str],
}

/// Authority extract (§2.3).
pub(crate) static EXTRACT: Spec = Spec {
    name: "cpis-extract",
    root: "CpisExtract",
    columns: &[
        "action",
        "local_id",
        "nhs_number",
        "plan_type",
        "date_of_birth",
        "start_date",
        "end_date",
        "team",
        "office_hours_phone",
        "out_of_hours_phone",
        "email",
    ],
};

/// Index of each extract column in [`EXTRACT`]`.columns`.
pub(crate) mod extract_col {
    pub(crate) const ACTION: usize = 0;
    pub(crate) const LOCAL_ID: usize = 1;
    pub(crate) const NHS_NUMBER: usize = 2;
    pub(crate) const PLAN_TYPE: usize = 3;
    pub(crate) const DATE_OF_BIRTH: usize = 4;
    pub(crate) const START_DATE: usize = 5;
    pub(crate) const END_DATE: usize = 6;
    pub(crate) const TEAM: usize = 7;
    pub(crate) const OFFICE_HOURS_PHONE: usize = 8;
    pub(crate) const OUT_OF_HOURS_PHONE: usize = 9;
    pub(crate) const EMAIL: usize = 10;
}

/// Attendance events (§3.1).
pub(crate) static ATTENDANCE: Spec = Spec {
    name: "cpis-attendance",
    root: "CpisAttendance",
    columns: &[
        "event_id",
        "nhs_number",
        "accessed_at",
        "site_ods_code",
        "site_name",
        "setting",
        "unscheduled",
        "user_name",
        "user_role",
    ],
};

/// NHS number status changes (§3.2).
pub(crate) static NHS_STATUS: Spec = Spec {
    name: "cpis-nhs-status",
    root: "CpisNhsStatus",
    columns: &[
        "nhs_number",
        "status",
        "replacement_nhs_number",
        "effective_date",
    ],
};

pub(crate) static RECEIPT: Spec = Spec {
    name: "cpis-receipt",
    root: "CpisReceipt",
    columns: &["line", "ref", "severity", "code", "field", "message"],
};

pub(crate) static HOLDINGS: Spec = Spec {
    name: "cpis-holdings",
    root: "CpisHoldings",
    columns: &[
        "local_id",
        "nhs_number",
        "plan_type",
        "date_of_birth",
        "start_date",
        "end_date",
        "status",
        "ended_reason",
        "purge_after",
        "nhs_status",
        "accesses",
        "last_accessed_at",
    ],
};

/// The kinds of outbound file (§4): the first part of every outbound name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Receipt,
    Access,
    Alerts,
    Inactive,
    Holdings,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Receipt => "RECEIPT",
            Kind::Access => "ACCESS",
            Kind::Alerts => "ALERTS",
            Kind::Inactive => "INACTIVE",
            Kind::Holdings => "HOLDINGS",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Kind> {
        [
            Kind::Receipt,
            Kind::Access,
            Kind::Alerts,
            Kind::Inactive,
            Kind::Holdings,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

pub(crate) static ACCESS: Spec = Spec {
    name: "cpis-access",
    root: "CpisAccess",
    columns: &[
        "notification_id",
        "local_id",
        "nhs_number",
        "plan_type",
        "plan_status",
        "plan_end_date",
        "accessed_at",
        "site_ods_code",
        "site_name",
        "setting",
        "user_name",
        "user_role",
    ],
};

pub(crate) static ALERTS: Spec = Spec {
    name: "cpis-alerts",
    root: "CpisAlerts",
    columns: &[
        "change",
        "alert_id",
        "nhs_number",
        "subject",
        "plan_type",
        "date_of_birth",
        "start_date",
        "end_date",
        "authority_code",
        "authority_name",
        "team",
        "office_hours_phone",
        "out_of_hours_phone",
        "email",
    ],
};

pub(crate) static INACTIVE: Spec = Spec {
    name: "cpis-inactive",
    root: "CpisInactive",
    columns: &[
        "local_id",
        "nhs_number",
        "plan_type",
        "status",
        "replacement_nhs_number",
        "effective_date",
    ],
};

/// Index of each attendance column in [`ATTENDANCE`]`.columns`.
pub(crate) mod attendance_col {
    pub(crate) const EVENT_ID: usize = 0;
    pub(crate) const NHS_NUMBER: usize = 1;
    pub(crate) const ACCESSED_AT: usize = 2;
    pub(crate) const SITE_ODS_CODE: usize = 3;
    pub(crate) const SITE_NAME: usize = 4;
    pub(crate) const SETTING: usize = 5;
    pub(crate) const UNSCHEDULED: usize = 6;
    pub(crate) const USER_NAME: usize = 7;
    pub(crate) const USER_ROLE: usize = 8;
}

/// Index of each NHS number status column in [`NHS_STATUS`]`.columns`.
pub(crate) mod status_col {
    pub(crate) const NHS_NUMBER: usize = 0;
    pub(crate) const STATUS: usize = 1;
    pub(crate) const REPLACEMENT: usize = 2;
    pub(crate) const EFFECTIVE_DATE: usize = 3;
}
