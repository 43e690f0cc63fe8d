//! A hub in a temporary folder: config, mailboxes, the real binary, and readers
//! of what it writes. Every test gets its own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The binary under test: the one cargo built, or `$CPIS_HUB_TEST_BIN` (to run the
/// regression tests against an older build and see them fail).
pub(crate) fn bin() -> PathBuf {
    std::env::var_os("CPIS_HUB_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cpis-hub")))
}
pub(crate) const NOW: &str = "2026-11-22T10:00:00Z";

pub(crate) fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    fs::read(project_dir().join("fixtures").join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub(crate) struct Hub {
    pub dir: tempfile::TempDir,
    pub now: String,
    pub extra_hub: String,
    /// Tables appended to the config (e.g. `[[sftp]]` entries).
    pub extra_tables: String,
}

impl Hub {
    pub(crate) fn new() -> Hub {
        Hub::with("")
    }

    /// A hub whose `[hub]` table gets `extra` lines.
    pub(crate) fn with(extra: &str) -> Hub {
        Hub::with_config(extra, "")
    }

    /// A hub with `extra_hub` lines in `[hub]` and `tables` after the partners.
    pub(crate) fn with_config(extra_hub: &str, tables: &str) -> Hub {
        let hub = Hub {
            dir: tempfile::tempdir().unwrap(),
            now: NOW.to_string(),
            extra_hub: extra_hub.to_string(),
            extra_tables: tables.to_string(),
        };
        hub.write_config();
        hub
    }

    pub(crate) fn write_config(&self) {
        let text = format!(
            r#"[hub]
mailbox = "X26HUB01"
root = "mailboxes"
database = "db/cpis-hub.sqlite3"
settle = "0s"
allow_test_nhs_numbers = true
{extra}

[[authority]]
code = "LA204"
name = "Example Borough Council"
mailbox = "X26LA204"
office_hours_phone = "020 7946 0000"
out_of_hours_phone = "020 7946 0999"
email = "cpis@example.gov.uk"

[[authority]]
code = "LA317"
name = "Example County Council"
mailbox = "X26LA317"
format = "xml"
framing = "mesh"

[[site]]
code = "R0A"
name = "Example University Hospitals NHS FT"
mailbox = "X26R0A01"
site_codes = ["R0A02", "R0A66"]

[[site]]
code = "R0B"
name = "Example Ambulance Service NHS Trust"
mailbox = "X26R0B01"
site_codes = ["R0B01"]
alerts = "full"
format = "xml"

[demographics]
mailbox = "X26PDS01"

{tables}
"#,
            extra = self.extra_hub,
            tables = self.extra_tables
        );
        fs::write(self.config(), text).unwrap();
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.path().join("cpis-hub.toml")
    }

    pub(crate) fn folder(&self, mailbox: &str, folder: &str) -> PathBuf {
        self.path().join("mailboxes").join(mailbox).join(folder)
    }

    pub(crate) fn database(&self) -> PathBuf {
        self.path().join("db/cpis-hub.sqlite3")
    }

    /// Runs `cpis-hub --config C --now NOW ARGS` with optional extra environment.
    pub(crate) fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.arg("--config")
            .arg(self.config())
            .arg("--now")
            .arg(&self.now)
            .args(args)
            .current_dir(self.path());
        cmd.env_remove("CPIS_HUB_FAULT")
            .env_remove("CPIS_HUB_CONFIG")
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// `process`, asserting the exit code.
    pub(crate) fn process(&self, expect: i32) -> Output {
        let out = self.run(&["process"]);
        assert_eq!(
            out.status.code(),
            Some(expect),
            "process: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Drops a plain file the way senders do: write NAME.part, settle, rename.
    pub(crate) fn drop(&self, mailbox: &str, name: &str, data: &[u8]) {
        let dir = self.folder(mailbox, "in");
        fs::create_dir_all(&dir).unwrap();
        let part = dir.join(format!("{name}.part"));
        fs::write(&part, data).unwrap();
        settle(&part);
        fs::rename(&part, dir.join(name)).unwrap();
    }

    /// Drops a MESH pair: NAME.dat first, then NAME.ctl.
    pub(crate) fn drop_mesh(&self, mailbox: &str, stem: &str, dat: &[u8], ctl: &[u8]) {
        let dir = self.folder(mailbox, "in");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{stem}.dat")), dat).unwrap();
        settle(&dir.join(format!("{stem}.dat")));
        fs::write(dir.join(format!("{stem}.ctl")), ctl).unwrap();
        settle(&dir.join(format!("{stem}.ctl")));
    }

    /// Drops the MESH example (`fixtures/mesh/LA317MSG0001.*`) into LA317's `in/`.
    pub(crate) fn drop_la317_mesh(&self, stem: &str) {
        self.drop_mesh(
            "X26LA317",
            stem,
            &fixture("mesh/LA317MSG0001.dat"),
            &fixture("mesh/LA317MSG0001.ctl"),
        );
    }

    /// Names in a mailbox folder, sorted.
    pub(crate) fn names(&self, mailbox: &str, folder: &str) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.folder(mailbox, folder)) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Outbound files of a kind in out/ (data files only), oldest sequence first.
    pub(crate) fn out(&self, mailbox: &str, kind: &str) -> Vec<(String, Vec<u8>)> {
        self.names(mailbox, "out")
            .into_iter()
            .filter(|n| {
                n.starts_with(&format!("{kind}_")) && !n.ends_with(".ctl") && !n.starts_with('.')
            })
            .map(|n| {
                let data = fs::read(self.folder(mailbox, "out").join(&n)).unwrap();
                (n, data)
            })
            .collect()
    }

    /// The single receipt whose source is `name`.
    pub(crate) fn receipt(&self, mailbox: &str, name: &str) -> Doc {
        let found: Vec<Doc> = self
            .out(mailbox, "RECEIPT")
            .into_iter()
            .map(|(n, d)| Doc::parse(&n, &d))
            .filter(|d| d.meta("source") == name)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "receipts for {name}: {:?}",
            self.names(mailbox, "out")
        );
        found.into_iter().next().unwrap()
    }

    /// A fresh HOLDINGS file for an authority mailbox (runs process --emit holdings):
    /// the one that run wrote, whatever the names of earlier ones.
    pub(crate) fn holdings(&self, mailbox: &str) -> Doc {
        let before: Vec<String> = self
            .out(mailbox, "HOLDINGS")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let out = self.run(&["process", "--emit", "holdings"]);
        assert!(
            out.status.code().is_some_and(|c| c < 2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut new: Vec<(String, Vec<u8>)> = self
            .out(mailbox, "HOLDINGS")
            .into_iter()
            .filter(|(n, _)| !before.contains(n))
            .collect();
        assert_eq!(
            new.len(),
            1,
            "one HOLDINGS file from this run: {new:?}",
            new = new.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        let (name, data) = new.pop().unwrap();
        Doc::parse(&name, &data)
    }

    pub(crate) fn sql(&self, query: &str) -> Vec<Vec<String>> {
        let conn = rusqlite::Connection::open(self.database()).unwrap();
        let mut stmt = conn.prepare(query).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                })
                .collect())
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }
}

/// Sets a file's modification time ten minutes back (readiness uses the real clock).
pub(crate) fn settle(path: &Path) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
}

/// A parsed CSV outbound document (metadata, header, rows).
#[derive(Debug)]
pub(crate) struct Doc {
    pub text: String,
    pub meta: Vec<(String, String)>,
    pub rows: Vec<Vec<(String, String)>>,
}

impl Doc {
    pub(crate) fn parse(name: &str, data: &[u8]) -> Doc {
        let text = String::from_utf8(data.to_vec()).unwrap();
        let (first, body) = text.split_once('\n').unwrap();
        let meta = first
            .trim_start_matches('#')
            .split(' ')
            .skip(2)
            .map(|t| {
                let (k, v) = t.split_once('=').unwrap();
                (k.to_string(), cpis_hub::percent_decode(v).unwrap())
            })
            .collect();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(body.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_string)
            .collect();
        let rows = reader
            .records()
            .map(|r| {
                header
                    .iter()
                    .cloned()
                    .zip(r.unwrap().iter().map(str::to_string))
                    .collect()
            })
            .collect();
        let _ = name;
        Doc { text, meta, rows }
    }

    pub(crate) fn meta(&self, key: &str) -> &str {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub(crate) fn codes(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|r| field(r, "code").to_string())
            .collect()
    }

    /// The row whose column `key` is `value`.
    pub(crate) fn row(&self, key: &str, value: &str) -> &Vec<(String, String)> {
        self.rows
            .iter()
            .find(|r| field(r, key) == value)
            .unwrap_or_else(|| panic!("no row with {key}={value} in {}", self.text))
    }
}

pub(crate) fn field<'r>(row: &'r [(String, String)], key: &str) -> &'r str {
    row.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Valid 999-range NHS numbers, distinct per call.
pub(crate) fn nhs(n: u32) -> String {
    let mut body = 999_100_000 + n * 3;
    loop {
        let digits: Vec<u32> = format!("{body:09}")
            .bytes()
            .map(|b| u32::from(b - b'0'))
            .collect();
        let total: u32 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = 11 - total % 11;
        if check != 10 {
            return format!("{body}{}", if check == 11 { 0 } else { check });
        }
        body += 1;
    }
}

/// A CSV extract for LA204 with one CPP child per local id.
pub(crate) fn extract(kind: &str, extracted_at: &str, rows: &[String]) -> Vec<u8> {
    let mut text = format!(
        "#cpis-extract v1 authority=LA204 type={kind} extracted_at={extracted_at} records={}\n",
        rows.len()
    );
    text.push_str("action,local_id,nhs_number,plan_type,date_of_birth,start_date,end_date\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    text.into_bytes()
}

/// An UPSERT line for a CPP child.
pub(crate) fn child(local_id: &str, n: u32) -> String {
    format!("UPSERT,{local_id},{},CPP,2016-04-01,2026-01-10,", nhs(n))
}

/// Compares output with `fixtures/golden/NAME`; `UPDATE_GOLDEN=1` rewrites the file
/// after a deliberate format change (review the diff before committing).
pub(crate) fn check(name: &str, actual: &[u8]) {
    let path = project_dir().join("fixtures/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read(&path)
        .unwrap_or_else(|e| panic!("golden file {name}: {e} (UPDATE_GOLDEN=1 writes it)"));
    assert!(
        expected == actual,
        "{name} differs from the golden file:\n--- expected\n{}\n--- actual\n{}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}

/// A daemon (`run`) on a hub, its log in a file, killed if a test ends without
/// stopping it.
pub(crate) struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(hub: &Hub, env: &[(&str, &str)]) -> Daemon {
        let log = hub.path().join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let log_file = fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin());
        // The business clock is the test's (`--now`, moving on from the start), so the
        // schedule and every date the daemon writes are the same on any day.
        cmd.arg("--config")
            .arg(hub.config())
            .arg("--now")
            .arg(&hub.now)
            .arg("run")
            .current_dir(hub.path());
        cmd.env_remove("CPIS_HUB_FAULT")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let d = Daemon { child, log };
        assert!(
            wait_for(10, || d.output().contains("daemon_started")),
            "daemon did not start: {}",
            d.output()
        );
        d
    }

    pub(crate) fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then the exit code (None if it did not stop within 20 s).
    pub(crate) fn terminate(mut self) -> Option<i32> {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    pub(crate) fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms for up to `seconds`.
pub(crate) fn wait_for(seconds: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Runs `cpis-hub process` and returns its exit code and its own peak resident
/// memory in KiB. Measured from a small python3 parent: a child's `ru_maxrss`
/// includes the image it was forked from, and this test process is large when other
/// tests run beside it.
pub(crate) fn process_measured(hub: &Hub) -> (i32, i64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(MEASURE)
        .arg(bin())
        .arg("--config")
        .arg(hub.config())
        .arg("--now")
        .arg(&hub.now)
        .arg("process")
        .current_dir(hub.path())
        .env_remove("CPIS_HUB_FAULT")
        .env("RUST_LOG", "warn")
        .output()
        .expect("python3 runs the measured process");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(|f| f.parse::<i64>().unwrap());
    (fields.next().unwrap() as i32, fields.next().unwrap())
}

/// LA204's fixture as LA317 sent it (the same file, another authority's header).
pub(crate) fn la317(data: &[u8]) -> Vec<u8> {
    String::from_utf8(data.to_vec())
        .unwrap()
        .replace("authority=LA204", "authority=LA317")
        .into_bytes()
}

/// A test that needs what this machine lacks (a server, a tool, root). Outside CI it
/// is skipped with a line saying why; under `CI` it fails, because CI must run every
/// test that proves a promise against a real server or tool.
pub(crate) fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this test, but {why}"
    );
    eprintln!("skipped: {why}");
}
