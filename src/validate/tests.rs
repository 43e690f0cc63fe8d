//! One test per rule of §2.3 / §4.1, and property tests of the rules' totality.

use super::*;
use crate::model::Code;
use crate::parse::RawRecord;
use proptest::prelude::*;

fn rules(kind: ExtractType) -> ExtractRules {
    ExtractRules {
        extract_type: Some(kind),
        reference_date: NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
        allow_test_numbers: true,
    }
}

/// A raw record from (column, value) pairs.
fn raw(fields: &[(&str, &str)]) -> RawRecord {
    let columns = crate::formats::EXTRACT.columns;
    let mut values = vec![None; columns.len()];
    for (k, v) in fields {
        let i = columns.iter().position(|c| c == k).unwrap();
        values[i] = Some(v.to_string());
    }
    RawRecord {
        line: 3,
        values,
        malformed: None,
    }
}

fn good() -> Vec<(&'static str, &'static str)> {
    vec![
        ("local_id", "C1"),
        ("nhs_number", "9990010005"),
        ("plan_type", "CPP"),
        ("date_of_birth", "2016-01-01"),
        ("start_date", "2026-01-01"),
    ]
}

fn with(changes: &[(&'static str, &'static str)]) -> RawRecord {
    let mut f = good();
    for (k, v) in changes {
        f.retain(|(key, _)| key != k);
        if !v.is_empty() {
            f.push((k, v));
        }
    }
    raw(&f)
}

fn codes(c: &Checked) -> Vec<Code> {
    c.problems.iter().map(|p| p.code).collect()
}

#[test]
fn a_good_record_passes() {
    let c = rules(ExtractType::Full).check(&raw(&good()));
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let r = c.record.unwrap();
    assert_eq!((r.action, r.plan_type), (Action::Upsert, PlanType::Cpp));
}

/// Changes to a good record, and the one code they must give (`None`: no problem).
type Case = (&'static [(&'static str, &'static str)], Option<Code>);

#[test]
fn each_rule_has_its_code() {
    let full = rules(ExtractType::Full);
    let cases: &[Case] = &[
        (&[("nhs_number", "")], Some(Code::NhsMissing)),
        (&[("nhs_number", "12345")], Some(Code::NhsFormat)),
        (&[("nhs_number", "9990010006")], Some(Code::NhsCheckDigit)),
        (&[("local_id", "")], Some(Code::LocalIdMissing)),
        (&[("local_id", "x\u{1}y")], Some(Code::LocalIdFormat)),
        (&[("plan_type", "CIN")], Some(Code::PlanType)),
        (&[("plan_type", "")], Some(Code::PlanType)),
        (&[("date_of_birth", "01/01/2016")], Some(Code::DateFormat)),
        (&[("date_of_birth", "")], Some(Code::DobMissing)),
        (&[("date_of_birth", "2026-11-22")], Some(Code::DobFuture)),
        (&[("start_date", "")], Some(Code::StartMissing)),
        (&[("start_date", "2026-11-22")], Some(Code::StartFuture)),
        (&[("end_date", "2025-12-31")], Some(Code::EndBeforeStart)),
        (&[("date_of_birth", "2008-11-21")], Some(Code::Over18)),
        (&[("action", "DELETE")], Some(Code::Action)),
        (&[("action", "MERGE")], Some(Code::Action)),
        (&[("team", "t")], None),
        (
            &[("office_hours_phone", "call us")],
            Some(Code::ContactFormat),
        ),
        (&[("email", "nobody")], Some(Code::ContactFormat)),
    ];
    for (changes, code) in cases {
        let c = full.check(&with(changes));
        if let Some(code) = code {
            assert_eq!(codes(&c), [*code], "{changes:?}");
            assert!(c.record.is_none());
        } else {
            assert!(c.problems.is_empty(), "{changes:?}: {:?}", codes(&c));
        }
    }
    let long: &'static str = Box::leak("x".repeat(65).into_boxed_str());
    assert_eq!(
        codes(&full.check(&with(&[("local_id", long)]))),
        [Code::FieldTooLong]
    );
    let long_team: &'static str = Box::leak("t".repeat(101).into_boxed_str());
    assert_eq!(
        codes(&full.check(&with(&[("team", long_team)]))),
        [Code::FieldTooLong]
    );
}

#[test]
fn test_numbers_need_the_setting() {
    let mut r = rules(ExtractType::Full);
    r.allow_test_numbers = false;
    assert_eq!(codes(&r.check(&raw(&good()))), [Code::NhsTestNumber]);
}

#[test]
fn eighteen_with_the_plan_ended_is_fine_and_ucpp_needs_no_dob() {
    let full = rules(ExtractType::Full);
    assert!(full
        .check(&with(&[
            ("date_of_birth", "2008-11-21"),
            ("end_date", "2026-11-20")
        ]))
        .problems
        .is_empty());
    assert!(
        full.check(&with(&[("date_of_birth", "2008-11-22")]))
            .problems
            .is_empty(),
        "17 until tomorrow"
    );
    assert!(full
        .check(&with(&[("plan_type", "UCPP"), ("date_of_birth", "")]))
        .problems
        .is_empty());
    assert!(
        full.check(&with(&[
            ("plan_type", "UCPP"),
            ("date_of_birth", "1990-01-01")
        ]))
        .problems
        .is_empty(),
        "a mother is over 18"
    );
}

#[test]
fn delta_needs_action_and_delete_needs_only_the_key() {
    let delta = rules(ExtractType::Delta);
    assert_eq!(codes(&delta.check(&raw(&good()))), [Code::Action]);
    let del = delta.check(&raw(&[
        ("action", "DELETE"),
        ("local_id", "C1"),
        ("plan_type", "LAC"),
    ]));
    assert!(del.problems.is_empty());
    assert_eq!(del.record.unwrap().action, Action::Delete);
}

#[test]
fn a_rejected_line_with_a_readable_key_still_mentions_its_record() {
    let c = rules(ExtractType::Full).check(&with(&[("nhs_number", "9990010006")]));
    assert_eq!(c.key, Some(("C1".to_string(), PlanType::Cpp)));
    assert!(c.record.is_none());
}

#[test]
fn no_problem_text_carries_the_nhs_number() {
    for bad in ["9990010006", "999 001 000"] {
        let c = rules(ExtractType::Full).check(&with(&[("nhs_number", bad)]));
        for p in &c.problems {
            assert!(
                !p.message.contains(bad) && !p.reference.contains(bad),
                "{p:?}"
            );
        }
    }
}

#[test]
fn metadata_rules() {
    let now = clock::parse_rfc3339("2026-11-22T10:00:00Z").unwrap();
    let meta = |line: &str| crate::parse::meta::parse_line(line).unwrap();
    let (h, p) = extract_metadata(&meta("#cpis-extract v1 authority=LA1 type=FULL extracted_at=2026-11-21T01:30:00Z sequence=3 records=2"), "LA1", now);
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(
        (h.extract_type, h.sequence, h.records),
        (Some(ExtractType::Full), Some(3), Some(2))
    );
    let (_, p) = extract_metadata(
        &meta("#cpis-extract v1 authority=LA2 type=WEEKLY extracted_at=yesterday records=x"),
        "LA1",
        now,
    );
    let got: Vec<_> = p.iter().map(|p| (p.code, p.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (Code::PartnerMismatch, "authority"),
            (Code::Metadata, "type"),
            (Code::Metadata, "extracted_at"),
            (Code::Metadata, "records")
        ]
    );
}

#[test]
fn header_needs_action_only_in_a_delta() {
    let mut present = vec![true; crate::formats::EXTRACT.columns.len()];
    present[crate::formats::extract_col::ACTION] = false;
    assert!(extract_columns(&present, Some(ExtractType::Full)).is_empty());
    assert_eq!(
        extract_columns(&present, Some(ExtractType::Delta))[0].field,
        "action"
    );
}

proptest! {
    /// Whatever a line holds, checking it never panics, and a record comes out
    /// exactly when no problem was found.
    #[test]
    fn checking_is_total(values in proptest::collection::vec(proptest::option::of("\\PC{0,12}"), 11)) {
        let r = RawRecord { line: 9, values, malformed: None };
        for kind in [ExtractType::Full, ExtractType::Delta] {
            let c = rules(kind).check(&r);
            prop_assert_eq!(c.record.is_some(), c.problems.is_empty() && c.key.is_some());
            prop_assert!(c.problems.iter().all(|p| p.line == Some(9) && p.severity == Severity::Error));
        }
    }
}

mod feeds {
    use super::super::*;
    use crate::formats::ATTENDANCE;
    use crate::parse::RawRecord;

    fn event(fields: &[(&str, &str)]) -> RawRecord {
        let mut base: Vec<(&str, &str)> = vec![
            ("event_id", "EV-1"),
            ("nhs_number", "9990010005"),
            ("accessed_at", "2026-11-22T07:00:00Z"),
            ("site_ods_code", "R0A02"),
            ("setting", "ED"),
            ("user_name", "Dr Example"),
            ("user_role", "Registrar"),
        ];
        for (k, v) in fields {
            base.retain(|(key, _)| key != k);
            if !v.is_empty() {
                base.push((k, v));
            }
        }
        let mut values = vec![None; ATTENDANCE.columns.len()];
        for (k, v) in base {
            values[ATTENDANCE.columns.iter().position(|c| *c == k).unwrap()] = Some(v.to_string());
        }
        RawRecord {
            line: 3,
            values,
            malformed: None,
        }
    }

    fn check(fields: &[(&str, &str)]) -> (Option<crate::validate::feeds::Event>, Vec<Code>) {
        let sites = vec!["R0A02".to_string(), "R0A66".to_string()];
        let rules = AttendanceRules {
            site_codes: &sites,
            now: crate::clock::parse_rfc3339("2026-11-22T10:00:00Z").unwrap(),
            allow_test_numbers: true,
        };
        let (e, _, p) = rules.check(&event(fields));
        (e, p.iter().map(|p| p.code).collect())
    }

    #[test]
    fn a_good_event_passes_and_defaults_to_unscheduled() {
        let (e, codes) = check(&[]);
        assert!(codes.is_empty(), "{codes:?}");
        let e = e.unwrap();
        assert!(e.unscheduled);
        assert_eq!(e.site_name, None);
    }

    #[test]
    fn each_event_rule_has_its_code() {
        for (fields, code) in [
            (vec![("event_id", "")], Code::FieldMissing),
            (vec![("nhs_number", "")], Code::NhsMissing),
            (vec![("nhs_number", "9990010006")], Code::NhsCheckDigit),
            (vec![("accessed_at", "")], Code::Timestamp),
            (vec![("accessed_at", "22/11/2026 07:00")], Code::Timestamp),
            (
                vec![("accessed_at", "2026-11-22T11:30:00Z")],
                Code::Timestamp,
            ),
            (vec![("site_ods_code", "RXA01")], Code::SiteCode),
            (vec![("site_ods_code", "")], Code::SiteCode),
            (vec![("setting", "THEATRE")], Code::Setting),
            (vec![("unscheduled", "maybe")], Code::FieldFormat),
            (vec![("user_name", "")], Code::FieldMissing),
            (vec![("user_role", "")], Code::FieldMissing),
        ] {
            let (e, codes) = check(&fields);
            assert_eq!(codes, [code], "{fields:?}");
            assert!(e.is_none());
        }
        assert!(
            check(&[("accessed_at", "2026-11-22T10:59:00Z")])
                .1
                .is_empty(),
            "within the hour of skew"
        );
        assert!(!check(&[("unscheduled", "n")]).0.unwrap().unscheduled);
    }

    #[test]
    fn status_rules() {
        let rules = StatusRules {
            allow_test_numbers: true,
        };
        let raw = |fields: &[(&str, &str)]| {
            let mut values = vec![None; crate::formats::NHS_STATUS.columns.len()];
            for (k, v) in fields {
                values[crate::formats::NHS_STATUS
                    .columns
                    .iter()
                    .position(|c| c == k)
                    .unwrap()] = Some(v.to_string());
            }
            RawRecord {
                line: 3,
                values,
                malformed: None,
            }
        };
        let (c, p) = rules.check(&raw(&[
            ("nhs_number", "9990010013"),
            ("status", "superseded"),
            ("replacement_nhs_number", "9990010110"),
            ("effective_date", "2026-11-21"),
        ]));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.unwrap().status, "SUPERSEDED");
        let codes = |fields: &[(&str, &str)]| {
            rules
                .check(&raw(fields))
                .1
                .iter()
                .map(|p| p.code)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            codes(&[
                ("nhs_number", "9990010013"),
                ("status", "GONE"),
                ("effective_date", "2026-11-21")
            ]),
            [Code::FieldFormat]
        );
        assert_eq!(
            codes(&[
                ("nhs_number", "9990010013"),
                ("status", "INACTIVE"),
                ("replacement_nhs_number", "9990010110"),
                ("effective_date", "2026-11-21")
            ]),
            [Code::FieldFormat]
        );
        assert_eq!(
            codes(&[
                ("nhs_number", "9990010013"),
                ("status", "SUPERSEDED"),
                ("replacement_nhs_number", "9990010013"),
                ("effective_date", "2026-11-21")
            ]),
            [Code::FieldFormat]
        );
        assert_eq!(
            codes(&[
                ("nhs_number", "9990010013"),
                ("status", "INACTIVE"),
                ("effective_date", "21-11-2026")
            ]),
            [Code::DateFormat]
        );
        assert_eq!(
            codes(&[("status", "INACTIVE"), ("effective_date", "2026-11-21")]),
            [Code::NhsMissing]
        );
    }
}
