//! The MESH API transport (SPEC §9) against a real MESH API server: mesh-sandbox
//! (NHS England's test server), started by `tests/mesh/meshctl.py` on 127.0.0.1 for
//! each test, plain HTTP or mutual TLS with a test CA the test makes. The partners
//! are played by meshctl's own small MESH client. The sandbox is lenient (it takes a
//! replayed token, it never checks the timestamp): the tests read its request log
//! and check what the hub sent, not only what the sandbox tolerated.
//!
//! The sandbox runs from the venv `$MESH_SANDBOX_VENV` (default `/tmp/msb-venv`),
//! which `.ci/run` makes. Without it these tests skip, except under `CI`, where they
//! fail.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::harness::*;

const HUB: &str = "X26HUB01";
const STRANGER: &str = "X26ZZZ01";

fn meshctl() -> PathBuf {
    project_dir().join("tests/mesh/meshctl.py")
}

fn venv() -> PathBuf {
    std::env::var_os("MESH_SANDBOX_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("msb-venv"))
}

/// One mesh-sandbox, stopped when dropped.
struct Sandbox {
    dir: PathBuf,
    state: serde_json::Value,
}

impl Sandbox {
    /// Starts a sandbox with the hub's mailbox, the test hub's partners and a
    /// stranger; None (skipped) when the venv is missing outside CI.
    fn start(hub: &Hub, tls: bool) -> Option<Sandbox> {
        Sandbox::start_without(hub, tls, &[])
    }

    /// Like [`Sandbox::start`], these mailboxes not registered with the server.
    fn start_without(hub: &Hub, tls: bool, missing: &[&str]) -> Option<Sandbox> {
        if !venv().join("bin/python").exists() {
            skip(&format!(
                "no mesh-sandbox venv at {} (.ci/run makes it)",
                venv().display()
            ));
            return None;
        }
        let dir = hub.path().join("sandbox");
        let mut cmd = Command::new("python3");
        cmd.arg(meshctl()).arg("start").arg(&dir);
        for m in [
            "X26HUB01:hub",
            "X26LA204:authority",
            "X26LA317:authority",
            "X26R0A01:site",
            "X26R0B01:site",
            "X26PDS01:demographics",
            "X26ZZZ01:stranger",
        ] {
            if missing.iter().any(|x| m.starts_with(x)) {
                continue;
            }
            cmd.arg("--mailbox").arg(m);
        }
        if tls {
            cmd.arg("--tls");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "sandbox did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let state = serde_json::from_slice(&out.stdout).unwrap();
        Some(Sandbox { dir, state })
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(meshctl())
            .arg(args[0])
            .arg(&self.dir)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "meshctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn url(&self) -> &str {
        self.state["url"].as_str().unwrap()
    }

    fn shared_key(&self) -> &str {
        self.state["shared_key"].as_str().unwrap()
    }

    fn password(&self, mailbox: &str) -> &str {
        self.state["passwords"][mailbox].as_str().unwrap()
    }

    fn tls_file(&self, name: &str) -> PathBuf {
        Path::new(self.state["tls_dir"].as_str().unwrap()).join(name)
    }

    /// LA204 sends the hub a FULL extract of one child (C-1); its MESH message id.
    fn send_one_child(&self) -> String {
        let data = extract("FULL", "2026-11-22T02:00:00Z", &[child("C-1", 1)]);
        self.send("X26LA204", "CPISHUB_EXTRACT", "n.csv", &data, &[])
    }

    /// A partner sends `data` to the hub; its MESH message id.
    fn send(&self, from: &str, workflow: &str, name: &str, data: &[u8], extra: &[&str]) -> String {
        let file = self.dir.join(format!("send-{name}"));
        fs::write(&file, data).unwrap();
        let mut args = vec![
            "send",
            from,
            HUB,
            workflow,
            file.to_str().unwrap(),
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        self.ctl(&args).trim().to_string()
    }

    fn inbox(&self, mailbox: &str) -> Vec<String> {
        self.ctl(&["inbox", mailbox])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Downloads (without acknowledging) a message: its headers and payload.
    fn get(&self, mailbox: &str, id: &str) -> (serde_json::Value, Vec<u8>) {
        let out = self.dir.join(format!("got-{id}"));
        let headers = self.ctl(&["get", mailbox, id, out.to_str().unwrap()]);
        (
            serde_json::from_str(&headers).unwrap(),
            fs::read(out).unwrap(),
        )
    }

    /// Every message waiting for a partner: (headers, payload).
    fn received(&self, mailbox: &str) -> Vec<(serde_json::Value, Vec<u8>)> {
        self.inbox(mailbox)
            .iter()
            .map(|id| self.get(mailbox, id))
            .collect()
    }

    fn status(&self, id: &str) -> String {
        self.ctl(&["status", id]).trim().to_string()
    }

    /// The sandbox's log of every request, one JSON object each.
    fn requests(&self) -> Vec<serde_json::Value> {
        self.ctl(&["requests"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The requests the hub made (its mailbox in the Authorization).
    fn hub_requests(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r["headers"]["authorization"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(&format!("NHSMESH {HUB}:")))
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("python3")
            .arg(meshctl())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

fn secret(hub: &Hub, name: &str, text: &str) -> PathBuf {
    let path = hub.path().join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Points the hub at the sandbox: a `[mesh]` table (`options` added to it) and
/// `mesh_api = true` on these partners.
fn configure(hub: &mut Hub, sandbox: &Sandbox, partners: &[&str], options: &str) {
    let password = secret(
        hub,
        "mesh-password",
        &format!("{}\n", sandbox.password(HUB)),
    );
    let key = secret(hub, "mesh-shared-key", sandbox.shared_key());
    let tls = if sandbox.state["tls"].as_bool() == Some(true) {
        format!(
            "client_cert = {:?}\nclient_key = {:?}\nca_bundle = {:?}\n",
            sandbox.tls_file("hub.pem"),
            sandbox.tls_file("hub.key"),
            sandbox.tls_file("ca.pem")
        )
    } else {
        String::new()
    };
    hub.extra_tables = format!(
        "[mesh]\nurl = {:?}\npassword_file = {password:?}\nshared_key_file = {key:?}\n{tls}poll_every = \"1s\"\ntimeout = \"30s\"\n{options}\n",
        sandbox.url()
    );
    hub.write_config();
    let mut text = fs::read_to_string(hub.config()).unwrap();
    for p in partners {
        let line = format!("mailbox = \"{p}\"\n");
        assert!(text.contains(&line), "{p} is no partner of the test hub");
        text = text.replace(&line, &format!("{line}mesh_api = true\n"));
    }
    fs::write(hub.config(), text).unwrap();
}

/// A hub whose LA204 (and `others`) talk to it over MESH; None when skipped.
fn mesh_hub(partners: &[&str], options: &str, tls: bool) -> Option<(Hub, Sandbox)> {
    let mut hub = Hub::new();
    let sandbox = Sandbox::start(&hub, tls)?;
    configure(&mut hub, &sandbox, partners, options);
    Some((hub, sandbox))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn status_json(hub: &Hub) -> serde_json::Value {
    let out = hub.run(&["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn header<'a>(h: &'a serde_json::Value, name: &str) -> &'a str {
    h[name].as_str().unwrap_or("")
}

/// Every token the hub sent: `NHSMESH MAILBOX:NONCE:COUNT:TIMESTAMP:HMAC` with the
/// HMAC right for the hub's password and the shared key, a timestamp within minutes
/// of the real clock, and a nonce never used twice.
fn assert_tokens_are_right(sandbox: &Sandbox) {
    let requests = sandbox.hub_requests();
    assert!(!requests.is_empty(), "the hub made no request");
    let mut nonces = std::collections::HashSet::new();
    let now = chrono::Utc::now();
    for r in &requests {
        let auth = r["headers"]["authorization"].as_str().unwrap();
        let parts: Vec<&str> = auth["NHSMESH ".len()..].split(':').collect();
        assert_eq!(parts.len(), 5, "{auth}");
        let (mailbox, nonce, count, stamp, mac) =
            (parts[0], parts[1], parts[2], parts[3], parts[4]);
        assert_eq!(mailbox, HUB);
        assert!(
            nonces.insert(nonce.to_string()),
            "a nonce used twice: {nonce}"
        );
        assert!(count.parse::<u32>().is_ok(), "count {count}");
        let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M")
            .unwrap_or_else(|e| panic!("timestamp {stamp}: {e}"))
            .and_utc();
        assert!(
            (now - at).num_minutes().abs() <= 10,
            "timestamp {stamp} is not the real clock (UTC)"
        );
        let mut expected = Hmac::<Sha256>::new_from_slice(sandbox.shared_key().as_bytes()).unwrap();
        expected.update(
            format!(
                "{mailbox}:{nonce}:{count}:{}:{stamp}",
                sandbox.password(HUB)
            )
            .as_bytes(),
        );
        let hex: String = expected
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(mac, hex, "the HMAC of {auth}");
        assert_eq!(
            r["headers"]["accept"].as_str(),
            Some("application/vnd.mesh.v2+json"),
            "Accept of {}",
            r["path"]
        );
    }
}

fn extract_bytes(rows: &[String]) -> Vec<u8> {
    extract("FULL", "2026-11-22T02:00:00Z", rows)
}

#[test]
fn extract_over_mesh_is_applied_and_its_receipt_comes_back_through_mesh() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    let id = sandbox.send(
        "X26LA204",
        "CPISHUB_EXTRACT",
        "nightly.csv",
        &extract_bytes(&[child("C-1", 1), child("C-2", 2)]),
        &["--local-id", "NIGHTLY_1"],
    );
    hub.process(0);
    assert_eq!(sandbox.status(&id), "acknowledged");
    assert!(sandbox.inbox(HUB).is_empty());
    // Placed as a MESH pair named by the message id, processed like any other.
    let archived = fs::read_dir(hub.folder("X26LA204", "archive"))
        .unwrap()
        .flatten()
        .flat_map(|d| fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    assert!(
        archived.contains(&format!("{id}.dat")) && archived.contains(&format!("{id}.ctl")),
        "{archived:?}"
    );
    let got = sandbox.received("X26LA204");
    assert_eq!(got.len(), 1, "one receipt");
    let (h, payload) = &got[0];
    assert_eq!(header(h, "mex-workflowid"), "CPISHUB_EXTRACT_ACK");
    assert_eq!(header(h, "mex-from"), HUB);
    let name = header(h, "mex-filename");
    assert!(
        name.starts_with("RECEIPT_X26LA204_") && name.ends_with(".csv"),
        "{name}"
    );
    let seq = &name[name.len() - 10..name.len() - 4];
    assert_eq!(header(h, "mex-localid"), format!("RECEIPT_{seq}"));
    let r = Doc::parse(name, payload);
    assert_eq!((r.meta("status"), r.meta("applied")), ("ACCEPTED", "2"));
    // The file went on to out/sent/, byte for byte what was delivered.
    assert!(hub.names("X26LA204", "out").iter().all(|n| n == "sent"));
    assert_eq!(
        &fs::read(hub.folder("X26LA204", "out/sent").join(name)).unwrap(),
        payload
    );
    let status = status_json(&hub);
    assert!(
        status["mesh"]["last_poll"].is_string() && status["mesh"]["last_handshake"].is_string()
    );
    let partner = &status["mesh"]["partners"][0];
    assert_eq!(partner["mailbox"], "X26LA204");
    assert!(
        partner["last_in"].is_string() && partner["last_out"].is_string(),
        "{partner}"
    );
    // What the hub sent, not only what the sandbox took: tokens, one POST per file,
    // the handshake's headers.
    assert_tokens_are_right(&sandbox);
    let requests = sandbox.hub_requests();
    let handshake = requests
        .iter()
        .find(|r| r["method"] == "POST" && r["path"] == format!("/messageexchange/{HUB}"))
        .expect("a handshake");
    assert!(handshake["headers"]["mex-clientversion"]
        .as_str()
        .unwrap()
        .starts_with("cpis-hub/"));
    let posts = requests
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/outbox"))
        .count();
    assert_eq!(posts, 1, "the receipt was sent once");
}

#[test]
fn attendance_over_mesh_sends_access_notifications_over_mesh() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204", "X26R0A01"], "", false) else {
        return;
    };
    sandbox.send(
        "X26LA204",
        "CPISHUB_EXTRACT",
        "nightly.csv",
        &fixture("extract_full.csv"),
        &[],
    );
    hub.process(0);
    sandbox.send(
        "X26R0A01",
        "CPISHUB_ATTEND",
        "att.csv",
        &fixture("attendance.csv"),
        &[],
    );
    hub.process(0);
    let access: Vec<_> = sandbox
        .received("X26LA204")
        .into_iter()
        .filter(|(h, _)| header(h, "mex-workflowid") == "CPISHUB_ACCESS")
        .collect();
    assert_eq!(access.len(), 1, "one ACCESS file for LA204");
    let doc = Doc::parse(header(&access[0].0, "mex-filename"), &access[0].1);
    assert_eq!((doc.meta("authority"), doc.meta("records")), ("LA204", "2"));
    assert!(header(&access[0].0, "mex-localid").starts_with("ACCESS_"));
    let site: Vec<_> = sandbox.received("X26R0A01");
    assert_eq!(site.len(), 1);
    assert_eq!(header(&site[0].0, "mex-workflowid"), "CPISHUB_ATTEND_ACK");
}

#[test]
fn a_full_alert_extract_above_chunk_bytes_goes_in_gzip_chunks_and_arrives_whole() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204", "X26R0B01"], "chunk_bytes = 1024", false)
    else {
        return;
    };
    let rows: Vec<String> = (0..60)
        .map(|i| child(&format!("C-{i:03}"), i + 1))
        .collect();
    sandbox.send(
        "X26LA204",
        "CPISHUB_EXTRACT",
        "nightly.csv",
        &extract_bytes(&rows),
        &[],
    );
    hub.process(0);
    let out = hub.run(&["process", "--emit", "alerts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let alerts: Vec<_> = sandbox
        .received("X26R0B01")
        .into_iter()
        .filter(|(h, _)| header(h, "mex-workflowid") == "CPISHUB_ALERTS")
        .collect();
    assert!(!alerts.is_empty(), "no alert extract reached R0B");
    let (h, payload) = alerts.last().unwrap();
    let name = header(h, "mex-filename");
    let sent = fs::read(hub.folder("X26R0B01", "out/sent").join(name)).unwrap();
    assert!(
        sent.len() > 3 * 1024,
        "the test needs a file of several chunks ({} bytes)",
        sent.len()
    );
    assert_eq!(
        payload, &sent,
        "the chunks join into the file, byte for byte"
    );
    let chunks: usize = header(h, "chunks").parse().unwrap();
    assert!(chunks >= 2, "sent in one piece");
    // Every request body at most chunk_bytes, every chunk a gzip member of its own.
    let posts: Vec<_> = sandbox
        .hub_requests()
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap().contains("/outbox"))
        .filter(|r| r["headers"]["mex-chunk-range"].is_string())
        .collect();
    assert!(posts.len() >= chunks);
    for r in &posts {
        assert!(
            r["bytes"].as_u64().unwrap() <= 1024,
            "a body of {} bytes",
            r["bytes"]
        );
        assert_eq!(r["headers"]["content-encoding"], "gzip");
    }
}

#[test]
fn a_compressed_chunked_inbound_message_is_applied_decompressed() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    let rows: Vec<String> = (0..40)
        .map(|i| child(&format!("Z-{i:03}"), i + 1))
        .collect();
    let id = sandbox.send(
        "X26LA204",
        "CPISHUB_EXTRACT",
        "nightly.csv",
        &extract_bytes(&rows),
        &["--gzip", "--chunk-bytes", "300"],
    );
    hub.process(0);
    assert_eq!(sandbox.status(&id), "acknowledged");
    let got = sandbox.received("X26LA204");
    let r = Doc::parse(header(&got[0].0, "mex-filename"), &got[0].1);
    assert_eq!((r.meta("status"), r.meta("applied")), ("ACCEPTED", "40"));
}

#[test]
fn a_big_message_each_way_streams_through_bounded_memory() {
    let Some((hub, sandbox)) = mesh_hub(&["X26R0B01"], "chunk_bytes = 8000000", false) else {
        return;
    };
    const SIZE: usize = 70_000_000; // more than 64 MiB: held whole, it would fail
    let mut big = Vec::with_capacity(SIZE + 100);
    let mut i = 0u64;
    while big.len() < SIZE {
        big.extend_from_slice(
            format!(
                "A{i:012},{},CPP,ACTIVE,2026-01-10,,LA204\n",
                nhs((i % 100_000) as u32)
            )
            .as_bytes(),
        );
        i += 1;
    }
    // In: 70 MB in 8 MB chunks from a sender that is no partner (kept, not applied).
    let id = sandbox.send(
        STRANGER,
        "CPISHUB_EXTRACT",
        "big.csv",
        &big,
        &["--chunk-bytes", "8000000"],
    );
    // Out: a 70 MB file waiting for a site.
    let name = "ALERTS_X26R0B01_20261122T100000Z_000001.csv";
    fs::create_dir_all(hub.folder("X26R0B01", "out")).unwrap();
    let path = hub.folder("X26R0B01", "out").join(name);
    fs::write(&path, &big).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let (code, rss_kib) = process_measured(&hub);
    assert_eq!(code, 0);
    assert!(
        rss_kib < 64 * 1024,
        "peak RSS {} MiB for 70 MB each way",
        rss_kib / 1024
    );
    let kept = hub.path().join(format!("mailboxes/.mesh-unknown/{id}.dat"));
    assert_eq!(fs::read(kept).unwrap(), big, "received whole");
    let got = sandbox.received("X26R0B01");
    assert_eq!(got.len(), 1);
    assert!(got[0].1 == big, "sent whole");
}

#[test]
fn a_wrong_workflow_id_gets_a_workflow_receipt() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    sandbox.send(
        "X26LA204",
        "CPISHUB_NHS_STATUS",
        "nightly.csv",
        &extract_bytes(&[child("C-1", 1)]),
        &[],
    );
    hub.process(1); // a REJECTED message makes `process` exit 1 (§7)
    let got = sandbox.received("X26LA204");
    assert_eq!(got.len(), 1);
    let r = Doc::parse(header(&got[0].0, "mex-filename"), &got[0].1);
    assert_eq!(r.meta("status"), "REJECTED");
    assert_eq!(r.codes(), ["WORKFLOW"]);
    assert!(hub.sql("SELECT count(*) FROM records")[0][0] == "0");
}

#[test]
fn messages_from_unknown_or_non_mesh_senders_are_kept_never_applied() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    let stranger = sandbox.send(
        STRANGER,
        "CPISHUB_EXTRACT",
        "x.csv",
        &extract_bytes(&[child("C-1", 1)]),
        &[],
    );
    // LA317 is a partner, but not reached over the MESH API.
    let la317 = sandbox.send(
        "X26LA317",
        "CPISHUB_EXTRACT",
        "y.csv",
        &la317(&extract_bytes(&[child("K-1", 2)])),
        &[],
    );
    hub.process(0);
    for id in [&stranger, &la317] {
        assert_eq!(sandbox.status(id), "acknowledged");
    }
    let kept = hub.path().join("mailboxes/.mesh-unknown");
    let mode = fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    for id in [&stranger, &la317] {
        let dat = kept.join(format!("{id}.dat"));
        assert_eq!(
            fs::metadata(&dat).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(kept.join(format!("{id}.headers.json")).exists());
    }
    assert_eq!(hub.sql("SELECT count(*) FROM records")[0][0], "0");
    assert_eq!(hub.sql("SELECT count(*) FROM messages")[0][0], "0");
    assert_eq!(status_json(&hub)["mesh"]["unknown_senders"], 2);
    assert!(sandbox.inbox(STRANGER).is_empty() && sandbox.inbox("X26LA317").is_empty());
    let shown = hub.run(&["status"]);
    assert!(
        text(&shown).contains("kept from unknown senders (under .mesh-unknown/): 2"),
        "{}",
        text(&shown)
    );
}

#[test]
fn an_injected_report_is_tied_to_its_file_and_shown_by_status() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    sandbox.send_one_child();
    hub.process(0);
    let receipt_id = sandbox.inbox("X26LA204")[0].clone();
    let (h, _) = sandbox.get("X26LA204", &receipt_id);
    let file = header(&h, "mex-filename").to_string();
    let report = sandbox
        .ctl(&[
            "report",
            HUB,
            &receipt_id,
            "CPISHUB_EXTRACT_ACK",
            "15",
            "Bad CP-IS file",
        ])
        .trim()
        .to_string();
    hub.process(0);
    assert_eq!(sandbox.status(&report), "acknowledged");
    let undelivered = &status_json(&hub)["mesh"]["undelivered"];
    assert_eq!(undelivered.as_array().unwrap().len(), 1, "{undelivered}");
    let u = &undelivered[0];
    assert_eq!(
        (
            u["partner"].as_str(),
            u["file"].as_str(),
            u["message_id"].as_str(),
            u["code"].as_str(),
            u["description"].as_str()
        ),
        (
            Some("X26LA204"),
            Some(file.as_str()),
            Some(receipt_id.as_str()),
            Some("15"),
            Some("Bad CP-IS file")
        )
    );
    let shown = text(&hub.run(&["status"]));
    assert!(
        shown.contains("undelivered outbound files: 1") && shown.contains(&file),
        "{shown}"
    );
    // Listed again (as if the acknowledgement was lost): recorded once.
    hub.process(0);
    assert_eq!(
        status_json(&hub)["mesh"]["undelivered"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_refused_file_goes_to_out_refused_is_shown_and_the_others_go_on() {
    let mut hub = Hub::new();
    // The demographics feed's mailbox is unknown to the MESH server: a send to it is
    // refused (417).
    let Some(sandbox) = Sandbox::start_without(&hub, false, &["X26PDS01"]) else {
        return;
    };
    configure(&mut hub, &sandbox, &["X26LA204", "X26PDS01"], "");
    hub.drop("X26PDS01", "status.csv", &fixture("nhs_status.csv"));
    sandbox.send_one_child();
    let out = hub.run(&["process"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused transfer failed: {}",
        text(&out)
    );
    assert!(text(&out).contains("refused"), "{}", text(&out));
    assert_eq!(
        sandbox.received("X26LA204").len(),
        1,
        "LA204's receipt went"
    );
    let refused = hub.names("X26PDS01", "out/refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let undelivered = &status_json(&hub)["mesh"]["undelivered"];
    assert_eq!(undelivered[0]["code"], "refused", "{undelivered}");
    assert_eq!(undelivered[0]["file"].as_str(), Some(refused[0].as_str()));
    assert!(
        undelivered[0]["description"]
            .as_str()
            .unwrap()
            .contains("417"),
        "{undelivered}"
    );
    // Not tried again by later passes.
    let posts = |s: &Sandbox| {
        s.hub_requests()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/outbox"))
            .count()
    };
    let before = posts(&sandbox);
    hub.process(0);
    assert_eq!(posts(&sandbox), before);
    // Put back by an operator: sent anew (and refused again here).
    fs::rename(
        hub.folder("X26PDS01", "out/refused").join(&refused[0]),
        hub.folder("X26PDS01", "out").join(&refused[0]),
    )
    .unwrap();
    hub.process(1);
    assert_eq!(posts(&sandbox), before + 1);
    assert_eq!(hub.names("X26PDS01", "out/refused"), refused);
}

#[test]
fn a_crash_between_download_and_acknowledge_loses_nothing_and_applies_once() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    for (fault, n) in [("mesh_after_download", 1), ("mesh_before_ack", 2)] {
        let id = sandbox.send(
            "X26LA204",
            "CPISHUB_EXTRACT",
            &format!("n{n}.csv"),
            &extract(
                "DELTA",
                &format!("2026-11-22T0{n}:00:00Z"),
                &[child(&format!("C-{n}"), n)],
            ),
            &[],
        );
        let out = hub.run_env(&["process"], &[("CPIS_HUB_FAULT", fault)]);
        assert_ne!(
            out.status.code(),
            Some(0),
            "the fault {fault} did not fire: {}",
            text(&out)
        );
        assert_ne!(
            sandbox.status(&id),
            "acknowledged",
            "acknowledged before {fault}"
        );
        assert!(sandbox.inbox(HUB).contains(&id));
        hub.process(0);
        assert_eq!(sandbox.status(&id), "acknowledged");
        assert!(sandbox.inbox(HUB).is_empty());
        // The next pass finds nothing more to do.
        hub.process(0);
    }
    let receipts: Vec<_> = sandbox.received("X26LA204");
    assert_eq!(receipts.len(), 2, "one receipt per message, none twice");
    assert_eq!(hub.sql("SELECT count(*) FROM records")[0][0], "2");
    assert_eq!(hub.sql("SELECT count(*) FROM messages")[0][0], "2");
}

#[test]
fn a_crash_between_send_and_record_is_found_in_the_outbox_and_not_sent_twice() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    sandbox.send_one_child();
    let out = hub.run_env(&["process"], &[("CPIS_HUB_FAULT", "mesh_after_send")]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let waiting = hub.names("X26LA204", "out");
    assert!(
        waiting.iter().any(|n| n.starts_with("RECEIPT_")),
        "the receipt left out/ before it was recorded: {waiting:?}"
    );
    hub.process(0);
    // The send's answer was lost with the process; the server's outbox says it arrived.
    let got = sandbox.received("X26LA204");
    assert_eq!(got.len(), 1, "sent twice");
    assert!(sandbox
        .hub_requests()
        .iter()
        .any(|r| r["method"] == "GET" && r["path"].as_str().unwrap().ends_with("/outbox/rich")));
    assert!(hub.names("X26LA204", "out").iter().all(|n| n == "sent"));
    let sent_id = hub.sql("SELECT message_id FROM mesh_outbound")[0][0].clone();
    assert_eq!(
        sent_id,
        sandbox.inbox("X26LA204")[0],
        "the id recorded is the message's"
    );
    // Nothing more is sent by later passes.
    hub.process(0);
    assert_eq!(sandbox.inbox("X26LA204").len(), 1);
}

#[test]
fn a_send_whose_outcome_stays_unknown_is_sent_again_under_the_same_name_and_local_id() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    sandbox.send_one_child();
    let out = hub.run_env(&["process"], &[("CPIS_HUB_FAULT", "mesh_after_send")]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    // The server's outbox cannot tell any more whether the send arrived.
    sandbox.ctl(&["reset", HUB]);
    hub.process(0);
    let got = sandbox.received("X26LA204");
    assert_eq!(got.len(), 2, "the outcome was unknown: sent again");
    let same = |key: &str| header(&got[0].0, key) == header(&got[1].0, key);
    assert!(
        same("mex-filename") && same("mex-localid"),
        "{:?}",
        got.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    assert_eq!(got[0].1, got[1].1);
    assert!(hub.names("X26LA204", "out").iter().all(|n| n == "sent"));
    hub.process(0);
    assert_eq!(sandbox.inbox("X26LA204").len(), 2, "sent a third time");
}

#[test]
fn a_wrong_shared_key_fails_clearly_without_printing_a_secret_and_loses_nothing() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    let id = sandbox.send_one_child();
    secret(&hub, "mesh-shared-key", "SK-wrong-key-0001");
    let out = hub.run(&["process"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("MESH authentication failed") && said.contains("shared_key_file"),
        "{said}"
    );
    assert!(
        !said.contains("SK-wrong-key-0001") && !said.contains(sandbox.password(HUB)),
        "a secret was printed"
    );
    assert_ne!(sandbox.status(&id), "acknowledged");
    // One refused request, not a retry storm.
    assert_eq!(sandbox.hub_requests().len(), 1);
    secret(&hub, "mesh-shared-key", sandbox.shared_key());
    hub.process(0);
    assert_eq!(sandbox.status(&id), "acknowledged");
    assert_eq!(sandbox.received("X26LA204").len(), 1);
}

#[test]
fn mutual_tls_works_and_an_untrusted_server_certificate_is_refused() {
    let Some((mut hub, sandbox)) = mesh_hub(&["X26LA204"], "", true) else {
        return;
    };
    let id = sandbox.send_one_child();
    // A CA of the same name that did not sign the server's certificate.
    let other = sandbox.tls_file("other/ca.pem");
    let good = fs::read_to_string(hub.config()).unwrap();
    let ca = format!("ca_bundle = {:?}", sandbox.tls_file("ca.pem"));
    fs::write(
        hub.config(),
        good.replace(&ca, &format!("ca_bundle = {other:?}")),
    )
    .unwrap();
    let out = hub.run(&["process"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("not trusted by [mesh] ca_bundle"), "{said}");
    assert_ne!(sandbox.status(&id), "acknowledged");
    assert!(
        sandbox.hub_requests().is_empty(),
        "a request went to an untrusted server"
    );
    fs::write(hub.config(), &good).unwrap();
    hub.process(0);
    assert_eq!(sandbox.status(&id), "acknowledged");
    assert_eq!(sandbox.received("X26LA204").len(), 1);
    assert_tokens_are_right(&sandbox);
    hub.extra_tables.clear(); // (the config on disk is the test's own from here)
}

#[test]
fn the_daemon_polls_and_sends_without_a_pass_being_asked() {
    let Some((hub, sandbox)) = mesh_hub(&["X26LA204"], "", false) else {
        return;
    };
    let daemon = Daemon::start(&hub, &[]);
    let id = sandbox.send_one_child();
    assert!(
        wait_for(30, || sandbox.inbox("X26LA204").len() == 1),
        "no receipt over MESH from the daemon: {}",
        daemon.output()
    );
    // (the sandbox records an acknowledgement in a background task)
    assert!(wait_for(10, || sandbox.status(&id) == "acknowledged"));
    assert_eq!(daemon.terminate(), Some(0));
    let handshakes = sandbox
        .hub_requests()
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == format!("/messageexchange/{HUB}"))
        .count();
    assert_eq!(
        handshakes, 1,
        "one handshake when run starts (the next one in 24 h)"
    );
    assert_tokens_are_right(&sandbox);
}

#[test]
fn mesh_config_errors_name_their_key() {
    let mut hub = Hub::new();
    let open = secret(&hub, "pw", "secret");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
    let key = secret(&hub, "key", "k");
    let cases = [
        (format!("url = \"http://127.0.0.1:1\"\npassword_file = {open:?}\nshared_key_file = {key:?}\n"), "mesh.password_file"),
        (format!("url = \"http://mesh.example.nhs.uk\"\npassword_file = {key:?}\nshared_key_file = {key:?}\n"), "mesh.url"),
        (format!("url = \"https://127.0.0.1:1\"\npassword_file = {key:?}\nshared_key_file = {key:?}\n"), "mesh.ca_bundle"),
        (format!("url = \"http://127.0.0.1:1\"\npassword_file = {key:?}\nshared_key_file = {key:?}\nchunk_bytes = 100000001\n"), "mesh.chunk_bytes"),
    ];
    for (table, key_named) in cases {
        hub.extra_tables = format!("[mesh]\n{table}");
        hub.write_config();
        let out = hub.run(&["process"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(key_named),
            "{key_named}: {}",
            text(&out)
        );
    }
    // mesh_api without [mesh].
    hub.extra_tables.clear();
    hub.write_config();
    let t = fs::read_to_string(hub.config()).unwrap().replace(
        "mailbox = \"X26LA204\"\n",
        "mailbox = \"X26LA204\"\nmesh_api = true\n",
    );
    fs::write(hub.config(), t).unwrap();
    let out = hub.run(&["process"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("authority[1].mesh_api"),
        "{}",
        text(&out)
    );
}
