//! Intake and framing: names, refusals, MESH pairs, compression (SPEC §1.2, §1.3).

use std::fs;
use std::io::Write;

use crate::harness::*;

fn ctl(workflow: &str, from: &str, compress: &str, encrypted: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?><DTSControl><MessageType>Data</MessageType><WorkflowId>{workflow}</WorkflowId><From_DTS>{from}</From_DTS><To_DTS>X26HUB01</To_DTS><Compress>{compress}</Compress><Encrypted>{encrypted}</Encrypted></DTSControl>"
    )
    .into_bytes()
}

#[test]
fn gzip_dat_is_accepted_when_compress_is_y() {
    let hub = Hub::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&la317(&fixture("extract_full.csv"))).unwrap();
    let dat = gz.finish().unwrap();
    hub.drop_mesh(
        "X26LA317",
        "MSG1",
        &dat,
        &ctl("CPISHUB_EXTRACT", "x26la317", "Y", "N"),
    );
    hub.process(0);
    assert_eq!(hub.names("X26LA317", "in"), Vec::<String>::new());
    let archived = hub.names("X26LA317", "archive");
    assert_eq!(archived, ["2026-11-22"]);
    assert_eq!(
        fs::read_dir(hub.folder("X26LA317", "archive/2026-11-22"))
            .unwrap()
            .count(),
        2,
        ".ctl moves with its .dat"
    );
    let receipt = hub.out("X26LA317", "RECEIPT");
    assert!(
        String::from_utf8_lossy(&receipt[0].1).contains("status=\"ACCEPTED\""),
        "{}",
        String::from_utf8_lossy(&receipt[0].1)
    );
}

#[test]
fn a_bomb_past_the_size_limit_is_rejected_too_large() {
    let hub = Hub::with("max_file_bytes = 4096");
    let mut big = la317(&fixture("extract_full.csv"));
    big.extend(std::iter::repeat_n(b'\n', 100_000));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&big).unwrap();
    let dat = gz.finish().unwrap();
    assert!(dat.len() < 4096);
    hub.drop_mesh(
        "X26LA317",
        "BOMB",
        &dat,
        &ctl("CPISHUB_EXTRACT", "X26LA317", "Y", "N"),
    );
    hub.process(1);
    let receipt = String::from_utf8(hub.out("X26LA317", "RECEIPT")[0].1.clone()).unwrap();
    assert!(
        receipt.contains("<Code>TOO_LARGE</Code>") && receipt.contains("status=\"REJECTED\""),
        "{receipt}"
    );
}

#[test]
fn ctl_checks_reject_the_whole_message() {
    for (ctl_bytes, code) in [
        (ctl("CPISHUB_ATTEND", "X26LA317", "N", "N"), "WORKFLOW"),
        (
            ctl("CPISHUB_EXTRACT", "X26LA204", "N", "N"),
            "PARTNER_MISMATCH",
        ),
        (ctl("CPISHUB_EXTRACT", "X26LA317", "N", "Y"), "ENCRYPTED"),
        (b"<nonsense".to_vec(), "XML_MALFORMED"),
    ] {
        let hub = Hub::new();
        hub.drop_mesh(
            "X26LA317",
            "M",
            &la317(&fixture("extract_full.csv")),
            &ctl_bytes,
        );
        hub.process(1);
        let receipt = String::from_utf8(hub.out("X26LA317", "RECEIPT")[0].1.clone()).unwrap();
        assert!(
            receipt.contains(&format!("<Code>{code}</Code>")),
            "{code}: {receipt}"
        );
        assert_eq!(
            hub.names("X26LA317", "failed")
                .iter()
                .filter(|n| n.starts_with("M."))
                .count(),
            2,
            "{code}: pair in failed/"
        );
    }
}

#[test]
fn ctl_without_dat_is_dat_missing_and_dat_without_ctl_waits() {
    let hub = Hub::new();
    let dir = hub.folder("X26LA317", "in");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("LONE.ctl"),
        ctl("CPISHUB_EXTRACT", "X26LA317", "N", "N"),
    )
    .unwrap();
    settle(&dir.join("LONE.ctl"));
    fs::write(dir.join("WAIT.dat"), la317(&fixture("extract_full.csv"))).unwrap();
    settle(&dir.join("WAIT.dat"));
    hub.process(1);
    assert_eq!(hub.names("X26LA317", "in"), ["WAIT.dat"]);
    let receipt = String::from_utf8(hub.out("X26LA317", "RECEIPT")[0].1.clone()).unwrap();
    assert!(receipt.contains("<Code>DAT_MISSING</Code>"), "{receipt}");
}

#[test]
fn symlinks_folders_and_odd_names_go_to_failed_unfollowed() {
    let hub = Hub::new();
    let dir = hub.folder("X26LA204", "in");
    fs::create_dir_all(&dir).unwrap();
    let secret = hub.path().join("secret.csv");
    fs::write(&secret, fixture("extract_full.csv")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("link.csv")).unwrap();
    fs::create_dir(dir.join("folder.csv")).unwrap();
    hub.drop("X26LA204", "bad\x07name.csv", b"x");
    hub.process(1);
    assert!(hub.names("X26LA204", "in").is_empty());
    let failed = hub.names("X26LA204", "failed");
    assert!(
        failed.contains(&"link.csv".to_string()) && failed.contains(&"folder.csv".to_string()),
        "{failed:?}"
    );
    assert!(
        fs::symlink_metadata(hub.folder("X26LA204", "failed").join("link.csv"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read(&secret).unwrap(),
        fixture("extract_full.csv"),
        "the link's target was touched"
    );
    let receipts = hub.out("X26LA204", "RECEIPT");
    assert_eq!(receipts.len(), 3);
    assert!(receipts
        .iter()
        .all(|(_, d)| String::from_utf8_lossy(d).contains("status=REJECTED")));
    assert!(
        hub.holdings("X26LA204").rows.is_empty(),
        "the link was followed"
    );
}

#[test]
fn doctype_and_truncated_files_are_rejected_whole() {
    let hub = Hub::new();
    hub.drop("X26LA204", "doctype.xml", &fixture("extract_doctype.xml"));
    hub.drop("X26LA204", "short.csv", &fixture("extract_truncated.csv"));
    hub.drop(
        "X26LA204",
        "nocol.csv",
        &fixture("extract_missing_column.csv"),
    );
    hub.process(1);
    assert!(hub
        .receipt("X26LA204", "doctype.xml")
        .codes()
        .contains(&"XML_DOCTYPE".to_string()));
    let short = hub.receipt("X26LA204", "short.csv");
    assert!(short.codes().contains(&"RECORD_COUNT".to_string()));
    assert_eq!(short.meta("records"), "2");
    let nocol = hub.receipt("X26LA204", "nocol.csv");
    assert_eq!(field(nocol.row("code", "HEADER"), "field"), "plan_type");
    assert!(hub.holdings("X26LA204").rows.is_empty());
}

#[test]
fn truncated_xml_and_deep_xml_are_malformed() {
    let hub = Hub::new();
    let full = String::from_utf8(fixture("extract_full.xml")).unwrap();
    let cut = &full[..full.len() - 40];
    hub.drop("X26LA204", "cut.xml", cut.as_bytes());
    let deep = full.replacen(
        "<Team>Children's Services, North</Team>",
        "<Team><a><b><c><d><e><f>x</f></e></d></c></b></a></Team>",
        1,
    );
    hub.drop("X26LA204", "deep.xml", deep.as_bytes());
    hub.process(1);
    for name in ["cut.xml", "deep.xml"] {
        let r = hub.receipt("X26LA204", name);
        assert_eq!(r.meta("status"), "REJECTED");
        assert!(
            r.codes().contains(&"XML_MALFORMED".to_string()),
            "{name}: {}",
            r.text
        );
    }
}

#[test]
fn bom_crlf_and_quoting_are_read() {
    let hub = Hub::new();
    let text = String::from_utf8(fixture("extract_full.csv"))
        .unwrap()
        .replace('\n', "\r\n");
    let mut data = b"\xEF\xBB\xBF".to_vec();
    data.extend_from_slice(text.as_bytes());
    hub.drop("X26LA204", "bom.csv", &data);
    hub.process(0);
    let r = hub.receipt("X26LA204", "bom.csv");
    assert_eq!((r.meta("status"), r.meta("applied")), ("ACCEPTED", "4"));
}

#[test]
fn latin1_file_is_rejected_encoding() {
    let hub = Hub::new();
    let mut data = extract("DELTA", "2026-11-21T01:00:00Z", &[child("E1", 1)]);
    let pos = data.len() - 3;
    data.splice(pos..pos, [b'\xE9']);
    hub.drop("X26LA204", "latin.csv", &data);
    hub.process(1);
    assert!(hub
        .receipt("X26LA204", "latin.csv")
        .codes()
        .contains(&"ENCODING".to_string()));
}

#[test]
fn a_second_process_is_refused_while_the_lock_is_held() {
    let hub = Hub::new();
    hub.process(0);
    let _held = cpis_hub::Lock::acquire(&hub.path().join("db/cpis-hub.sqlite3.lock")).unwrap();
    let out = hub.run(&["process"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another cpis-hub process"));
    assert_eq!(
        hub.run(&["quarantine", "list"]).status.code(),
        Some(0),
        "operator commands still work"
    );
}

#[test]
fn an_oversized_mesh_dat_is_refused_with_its_ctl() {
    let hub = Hub::with("max_file_bytes = 100");
    hub.drop_mesh(
        "X26LA317",
        "BIG",
        &la317(&fixture("extract_full.csv")),
        &ctl("CPISHUB_EXTRACT", "X26LA317", "N", "N"),
    );
    hub.process(1);
    assert_eq!(
        hub.names("X26LA317", "failed")
            .iter()
            .filter(|n| n.starts_with("BIG."))
            .count(),
        2
    );
    let receipt = String::from_utf8(hub.out("X26LA317", "RECEIPT")[0].1.clone()).unwrap();
    assert!(receipt.contains("<Code>TOO_LARGE</Code>"), "{receipt}");
}

#[test]
fn stale_compares_instants_not_text() {
    let hub = Hub::new();
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("DELTA", "2026-11-21T01:30:00.700Z", &[child("P1", 1)]),
    );
    hub.process(0);
    // Half a second older, and written with an offset: STALE.
    hub.drop(
        "X26LA204",
        "b.csv",
        &extract("DELTA", "2026-11-21T02:30:00.200+01:00", &[child("P2", 2)]),
    );
    hub.process(1);
    assert_eq!(hub.receipt("X26LA204", "b.csv").meta("status"), "STALE");
}

#[test]
fn a_local_mesh_pair_with_upper_case_extensions_is_one_message() {
    // Regression: X.DAT + X.CTL ended as DAT_MISSING, the .DAT waiting forever.
    let hub = Hub::new();
    hub.drop_la317_mesh("M1");
    let inbox = hub.folder("X26LA317", "in");
    fs::rename(inbox.join("M1.dat"), inbox.join("M1.DAT")).unwrap();
    fs::rename(inbox.join("M1.ctl"), inbox.join("M1.CTL")).unwrap();
    hub.process(0);
    assert!(hub.names("X26LA317", "in").is_empty());
    assert_eq!(
        hub.sql("SELECT group_concat(status), group_concat(name) FROM messages"),
        [vec!["ACCEPTED".to_string(), "M1.DAT".to_string()]]
    );
}
