//! Every input is bounded (SPEC §6.5): whatever a file holds within
//! `hub.max_file_bytes`, the hub's memory stays within its budget, its time grows
//! with the size only, a receipt lists a bounded number of problems, and a file that
//! cannot be decoded is answered at once.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::harness::*;

/// The peak memory budget of any one file above the idle process (and the idle
/// process is a few MiB).
const BUDGET_MIB: i64 = 64;

fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(part).unwrap();
        out.extend(e.finish().unwrap());
    }
    out
}

/// The MESH example made LA204's (its receipts are CSV): the data...
fn dat() -> Vec<u8> {
    String::from_utf8(fixture("mesh/LA317MSG0001.dat"))
        .unwrap()
        .replace("authority=LA317", "authority=LA204")
        .into_bytes()
}

/// ...and its control file, with `Compress` set.
fn ctl(compress: bool) -> Vec<u8> {
    String::from_utf8(fixture("mesh/LA317MSG0001.ctl"))
        .unwrap()
        .replace("X26LA317", "X26LA204")
        .replace(
            "<Compress>N</Compress>",
            if compress {
                "<Compress>Y</Compress>"
            } else {
                "<Compress>N</Compress>"
            },
        )
        .into_bytes()
}

fn receipt_of(hub: &Hub, mailbox: &str) -> Doc {
    let all = hub.out(mailbox, "RECEIPT");
    assert_eq!(
        all.len(),
        1,
        "{:?}",
        all.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    Doc::parse(&all[0].0, &all[0].1)
}

#[test]
fn a_gzip_of_blank_lines_is_refused_in_bounded_memory() {
    let hub = Hub::new();
    let mut plain = b"#cpis-extract v1 authority=LA204 type=FULL extracted_at=2026-11-21T01:30:00Z records=1\nlocal_id,nhs_number,plan_type,start_date\n".to_vec();
    plain.extend(std::iter::repeat_n(b'\n', 100 << 20));
    plain.extend(format!("L1,{},UCPP,2026-01-01\n", nhs(1)).as_bytes());
    hub.drop_mesh("X26LA204", "M1", &gzip(&[&plain]), &ctl(true));
    let (code, peak_kib) = process_measured(&hub);
    assert_eq!(code, 1);
    let r = receipt_of(&hub, "X26LA204");
    assert_eq!(
        (r.meta("status"), r.codes()),
        ("REJECTED", vec!["LINE_TOO_LONG".to_string()])
    );
    assert!(
        peak_kib / 1024 < BUDGET_MIB,
        "peak RSS {} MiB",
        peak_kib / 1024
    );
}

#[test]
fn a_truncated_gzip_is_answered_at_once_with_a_receipt() {
    let hub = Hub::new();
    let whole = gzip(&[&dat()]);
    hub.drop_mesh("X26LA204", "M1", &whole[..whole.len() / 2], &ctl(true));
    hub.process(1);
    let r = receipt_of(&hub, "X26LA204");
    assert_eq!(
        (r.meta("status"), r.codes()),
        ("REJECTED", vec!["COMPRESSION".to_string()]),
        "{}",
        r.text
    );
    assert!(
        hub.names("X26LA204", "in").is_empty(),
        "not left to be retried forever"
    );
    assert!(hub
        .names("X26LA204", "failed")
        .contains(&"M1.dat".to_string()));
    hub.process(0);
}

#[test]
fn every_member_of_a_multi_member_gzip_is_read() {
    let hub = Hub::new();
    let text = dat();
    let cut = text.len() / 2;
    let cut = cut + text[cut..].iter().position(|b| *b == b'\n').unwrap() + 1;
    hub.drop_mesh(
        "X26LA204",
        "M1",
        &gzip(&[&text[..cut], &text[cut..]]),
        &ctl(true),
    );
    hub.process(0);
    let r = receipt_of(&hub, "X26LA204");
    assert_eq!(
        (r.meta("status"), r.meta("records"), r.meta("applied")),
        ("ACCEPTED", "4", "4")
    );
}

#[test]
fn a_ctl_that_names_its_sender_twice_is_refused() {
    // An empty From_DTS, then another partner's: never read in anybody's favour.
    let hub = Hub::new();
    let ctl = String::from_utf8(ctl(false)).unwrap().replace(
        "<From_DTS>X26LA204</From_DTS>",
        "<From_DTS></From_DTS><From_DTS>X26LA317</From_DTS>",
    );
    hub.drop_mesh("X26LA204", "M1", &dat(), ctl.as_bytes());
    hub.process(1);
    let r = receipt_of(&hub, "X26LA204");
    assert_eq!(
        (r.meta("status"), r.codes()),
        ("REJECTED", vec!["XML_MALFORMED".to_string()])
    );
    assert!(r.text.contains("repeats"), "{}", r.text);
    assert_eq!(
        hub.sql("SELECT COUNT(*) FROM records"),
        [vec!["0".to_string()]]
    );
}

#[test]
fn a_root_with_a_hundred_thousand_attributes_is_refused_at_once() {
    let hub = Hub::new();
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<CpisExtract xmlns=\"urn:cpis-hub:v1\" authority=\"LA204\" type=\"FULL\" extractedAt=\"2026-11-21T01:30:00Z\" records=\"0\"");
    for i in 0..100_000u32 {
        xml.push_str(&format!(" b{i:x}=\"\""));
    }
    xml.push_str("></CpisExtract>\n");
    hub.drop("X26LA204", "wide.xml", xml.as_bytes());
    hub.process(1);
    let r = hub.receipt("X26LA204", "wide.xml");
    assert_eq!(
        (r.meta("status"), r.codes()),
        ("REJECTED", vec!["METADATA".to_string()])
    );
    assert!(r.text.contains("more than 64 attributes"), "{}", r.text);
}

#[test]
fn distinct_unknown_elements_make_a_bounded_receipt_in_bounded_memory() {
    let hub = Hub::new();
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<CpisExtract xmlns=\"urn:cpis-hub:v1\" authority=\"LA204\" type=\"FULL\" extractedAt=\"2026-11-21T01:30:00Z\" records=\"1\">\n");
    for i in 0..1_000_000u32 {
        xml.push_str(&format!("<U{i:07}/>"));
        if i % 100 == 0 {
            xml.push('\n');
        }
    }
    xml.push_str(&format!("<Record><LocalId>L1</LocalId><NhsNumber>{}</NhsNumber><PlanType>UCPP</PlanType><StartDate>2026-01-01</StartDate>", nhs(1)));
    for i in 0..200_000u32 {
        xml.push_str(&format!("<C{i:07}>x</C{i:07}>"));
    }
    xml.push_str("</Record>\n</CpisExtract>\n");
    hub.drop("X26LA204", "odd.xml", xml.as_bytes());
    let (code, peak_kib) = process_measured(&hub);
    assert_eq!(code, 0);
    let (name, bytes) = hub.out("X26LA204", "RECEIPT").pop().unwrap();
    let r = Doc::parse(&name, &bytes);
    assert_eq!((r.meta("status"), r.meta("applied")), ("ACCEPTED", "1"));
    assert!(
        bytes.len() < 64 * 1024,
        "a receipt of {} bytes",
        bytes.len()
    );
    assert!(
        r.text.contains("more unknown elements were ignored"),
        "{}",
        r.text
    );
    assert!(
        peak_kib / 1024 < BUDGET_MIB,
        "peak RSS {} MiB",
        peak_kib / 1024
    );
}

#[test]
fn a_receipt_lists_at_most_a_thousand_problems_of_a_code_and_counts_the_rest() {
    let hub = Hub::new();
    let rows: Vec<String> = (0..2500)
        .map(|i| format!("UPSERT,L{i},9990000001,CPP,2016-04-01,2026-01-10,"))
        .chain((0..3).map(|i| child(&format!("G{i}"), i)))
        .collect();
    hub.drop(
        "X26LA204",
        "bad.csv",
        &extract("DELTA", "2026-11-21T01:00:00Z", &rows),
    );
    hub.process(1);
    let r = hub.receipt("X26LA204", "bad.csv");
    assert_eq!((r.meta("status"), r.meta("rejected")), ("REJECTED", "2500"));
    let listed = r.codes().iter().filter(|c| *c == "NHS_CHECK_DIGIT").count();
    assert_eq!(listed, 1001, "1000 listed and one row for the rest");
    let rest = r
        .rows
        .iter()
        .find(|row| field(row, "line").is_empty() && field(row, "code") == "NHS_CHECK_DIGIT")
        .expect("a row for the problems not listed");
    assert!(field(rest, "message").contains("1500 more"), "{rest:?}");
}
