//! Reader tests: both syntaxes, the awkward corners, and that no input panics.

use super::*;
use crate::formats::EXTRACT;
use crate::model::Code;
use proptest::prelude::*;

fn read(data: &[u8]) -> Result<(Prelude, Vec<Item>), FileProblem> {
    match DocReader::open(std::io::Cursor::new(data.to_vec()), &EXTRACT) {
        Ok((reader, prelude)) => Ok((prelude, reader.collect())),
        Err(Stop::Content(p)) => Err(p),
        Err(Stop::Io(e)) => panic!("reading from memory failed: {e}"),
    }
}

fn records(items: &[Item]) -> Vec<&RawRecord> {
    items
        .iter()
        .filter_map(|i| {
            if let Item::Record(r) = i {
                Some(r)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn csv_lines_numbers_quotes_and_unknown_columns() {
    let data = b"#cpis-extract v1 authority=LA1 records=2\r\nLOCAL_ID,Nhs_Number,plan_type,extra\r\n\"A, \"\"1\"\"\",999 001 0005 ,CPP,x\r\n\r\n\"multi\nline\",9990010013,LAC,y\r\n";
    let (prelude, items) = read(data).unwrap();
    assert_eq!(prelude.metadata.get("authority"), Some("LA1"));
    assert_eq!(prelude.warnings[0].code, Code::UnknownColumn);
    let rs = records(&items);
    assert_eq!(rs.len(), 2);
    assert_eq!(
        (rs[0].line, rs[0].get(1), rs[0].get(2)),
        (3, Some("A, \"1\""), Some("999 001 0005"))
    );
    assert_eq!(rs[1].line, 5, "a blank line is skipped but counted");
    assert_eq!(rs[1].get(1), Some("multi\nline"));
}

#[test]
fn csv_field_count_mismatch_is_a_record_problem() {
    let (_, items) = read(b"#cpis-extract v1\nlocal_id,plan_type\nA,CPP,extra\nB,LAC\n").unwrap();
    let rs = records(&items);
    assert!(rs[0].malformed.is_some());
    assert!(rs[1].malformed.is_none());
}

#[test]
fn csv_prelude_problems() {
    assert_eq!(read(b"local_id\nA\n").unwrap_err().code, Code::Metadata);
    assert_eq!(
        read(b"#cpis-attendance v1\nevent_id\n").unwrap_err().code,
        Code::Metadata
    );
    assert_eq!(
        read(b"#cpis-extract v2\nlocal_id\n").unwrap_err().code,
        Code::Metadata
    );
    assert_eq!(
        read(b"#cpis-extract v1\nlocal_id,LOCAL_ID\n")
            .unwrap_err()
            .code,
        Code::Header
    );
    assert_eq!(read(b"#cpis-extract v1\n").unwrap_err().code, Code::Header);
    assert_eq!(
        read(b"#cpis-extract v1 a=\xe9\n").unwrap_err().code,
        Code::Encoding
    );
}

#[test]
fn overlong_line_stops_reading() {
    let mut data = b"#cpis-extract v1\nlocal_id\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
    let (_, items) = read(&data).unwrap();
    assert!(matches!(items.last(), Some(Item::Fatal(p)) if p.code == Code::LineTooLong));
}

#[test]
fn xml_records_entities_and_unknown_elements() {
    let data = br#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<CpisExtract xmlns="urn:cpis-hub:v1" authority="LA1" extractedAt="2026-11-21T01:30:00Z" records="2">
  <Record><LocalId>A &amp; B</LocalId><PlanType>CPP</PlanType><Shoe>9</Shoe></Record>
  <Record><LocalId><![CDATA[C<D]]></LocalId><PlanType/></Record>
</CpisExtract>"#;
    let (prelude, items) = read(data).unwrap();
    assert_eq!(
        prelude.metadata.get("extracted_at"),
        Some("2026-11-21T01:30:00Z")
    );
    let rs = records(&items);
    assert_eq!((rs[0].line, rs[0].get(1)), (1, Some("A & B")));
    assert_eq!(
        (rs[1].line, rs[1].get(1), rs[1].get(3)),
        (2, Some("C<D"), None)
    );
    assert!(items.iter().any(
        |i| matches!(i, Item::Warning(p) if p.code == Code::UnknownColumn && p.field == "shoe")
    ));
}

#[test]
fn xml_refusals() {
    let doctype = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><CpisExtract xmlns="urn:cpis-hub:v1"/>"#;
    assert_eq!(read(doctype).unwrap_err().code, Code::XmlDoctype);
    let wrong_ns = br#"<CpisExtract xmlns="urn:other"></CpisExtract>"#;
    assert_eq!(read(wrong_ns).unwrap_err().code, Code::Metadata);
    let latin =
        br#"<?xml version="1.0" encoding="ISO-8859-1"?><CpisExtract xmlns="urn:cpis-hub:v1"/>"#;
    assert_eq!(read(latin).unwrap_err().code, Code::Encoding);
    let entity = br#"<CpisExtract xmlns="urn:cpis-hub:v1"><Record><LocalId>&nope;</LocalId></Record></CpisExtract>"#;
    let (_, items) = read(entity).unwrap();
    assert!(matches!(items.last(), Some(Item::Fatal(p)) if p.code == Code::XmlMalformed));
    let cut = br#"<CpisExtract xmlns="urn:cpis-hub:v1"><Record><LocalId>A</LocalId></Record>"#;
    let (_, items) = read(cut).unwrap();
    assert!(
        matches!(items.last(), Some(Item::Fatal(p)) if p.code == Code::XmlMalformed && p.message.contains("truncated"))
    );
}

#[test]
fn xml_nested_column_is_a_record_problem_but_deep_nesting_is_fatal() {
    let nested = br#"<CpisExtract xmlns="urn:cpis-hub:v1"><Record><LocalId><b>x</b></LocalId></Record><Record><LocalId>B</LocalId></Record></CpisExtract>"#;
    let (_, items) = read(nested).unwrap();
    let rs = records(&items);
    assert!(rs[0].malformed.is_some() && rs[1].malformed.is_none());
    let deep = br#"<CpisExtract xmlns="urn:cpis-hub:v1"><Record><Team><a><b><c><d><e><f>x</f></e></d></c></b></a></Team></Record></CpisExtract>"#;
    let (_, items) = read(deep).unwrap();
    assert!(matches!(items.last(), Some(Item::Fatal(p)) if p.message.contains("deeper")));
}

proptest! {
    /// No byte string makes a reader panic or loop.
    #[test]
    fn readers_never_panic(prefix in prop_oneof![Just(b"#cpis-extract v1 records=1\nlocal_id,plan_type\n".to_vec()), Just(b"<CpisExtract xmlns=\"urn:cpis-hub:v1\">".to_vec()), Just(Vec::new())],
                           body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut data = prefix;
        data.extend(body);
        if let Ok((_, items)) = read(&data) {
            prop_assert!(items.len() <= data.len() + 1);
        }
    }
}

/// A source that fails (the file system, not the content) is an error of the reader,
/// never a receipt row.
#[test]
fn a_failing_source_is_an_error_not_a_problem() {
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
            let text = b"#cpis-extract v1 authority=LA204 type=FULL extracted_at=2026-11-21T01:00:00Z records=1\nlocal_id,nhs_number,plan_type,start_date\n";
            let n = text.len().min(buf.len());
            buf[..n].copy_from_slice(&text[..n]);
            self.0 -= 1;
            Ok(n)
        }
    }
    assert!(matches!(
        DocReader::open(Failing(0), &EXTRACT),
        Err(Stop::Io(_))
    ));
    let (reader, _) = DocReader::open(Failing(1), &EXTRACT).unwrap();
    let items: Vec<Item> = reader.collect();
    assert!(
        matches!(items.last(), Some(Item::Io(e)) if e.raw_os_error() == Some(libc::EIO)),
        "{items:?}"
    );
}
