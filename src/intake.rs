//! Intake: finds the inbound messages that are ready in a mailbox's `in/` folder
//! (SPEC §1.2) and the entries that must be refused.
//!
//! Owns no state: every scan looks at the folder afresh (through a [`Dir`] handle:
//! `lstat` of each entry). Must never read a file's content (beyond the size), never
//! follow a symbolic link, and never use `--now`: readiness is judged on the real
//! clock and the file's modification time. What a scan says of an entry is a hint:
//! the entry may be swapped before it is opened, so the pipeline checks it again on
//! the open descriptor.

use crate::model::Code;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use crate::fsutil::{Dir, Info, Kind};

/// Longest file name accepted, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 200;

/// A message that can be processed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ready {
    /// `NAME.csv` / `NAME.xml`.
    Plain { name: OsString, size: u64 },
    /// `NAME.dat` + `NAME.ctl`.
    Mesh {
        dat: OsString,
        ctl: OsString,
        size: u64,
    },
    /// An entry to move to `failed/` with a receipt carrying `code`.
    Refused {
        name: OsString,
        code: Code,
        message: String,
    },
}

impl Ready {
    /// The name the receipt's `source` carries and the ledger keeps.
    pub(crate) fn name(&self) -> &OsString {
        match self {
            Ready::Plain { name, .. } | Ready::Refused { name, .. } => name,
            Ready::Mesh { dat, .. } => dat,
        }
    }
}

/// One ready item with the time used to order arrivals.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub item: Ready,
    pub arrived: SystemTime,
}

/// Why a name is refused, if it is.
fn name_problem(name: &[u8]) -> Option<String> {
    if name.len() > MAX_NAME_BYTES {
        return Some(format!(
            "the file name is {} bytes long; the limit is {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if name.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return Some("the file name holds control characters".into());
    }
    if name.contains(&b'\\') {
        return Some("the file name holds a path separator".into());
    }
    if std::str::from_utf8(name).is_err() {
        return Some("the file name is not UTF-8".into());
    }
    None
}

/// Names a sender uses while writing: never touched.
pub(crate) fn is_temporary(name: &[u8]) -> bool {
    name.starts_with(b".") || name.ends_with(b".tmp") || name.ends_with(b".part")
}

fn extension(name: &[u8]) -> Option<String> {
    let dot = name.iter().rposition(|b| *b == b'.')?;
    Some(String::from_utf8_lossy(&name[dot + 1..]).to_ascii_lowercase())
}

/// The name's stem (before its last dot).
fn stem(name: &[u8]) -> Option<&[u8]> {
    Some(&name[..name.iter().rposition(|b| *b == b'.')?])
}

/// Settings of a scan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub settle: Duration,
    pub max_file_bytes: u64,
}

/// What a scan found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Ready items, oldest arrival first.
    pub found: Vec<Found>,
    /// When the soonest entry still settling will be ready (to wake up then).
    pub wake_at: Option<SystemTime>,
}

/// Lists what is ready in `dir`, oldest arrival first. Entries still being written
/// (not settled, `.dat` without `.ctl`, temporary names) are left alone.
pub(crate) fn scan(dir: &Dir, rules: Rules, real_now: SystemTime) -> std::io::Result<Scan> {
    let names = dir.entries()?;
    let mut scanner = Scanner {
        names: &names,
        rules,
        now: real_now,
        wake_at: None,
    };
    let mut found: Vec<Found> = names
        .iter()
        .filter(|(name, _)| !is_temporary(name.as_bytes()))
        .filter_map(|(name, meta)| scanner.classify(name, meta))
        .collect();
    found.sort_by(|a, b| {
        a.arrived
            .cmp(&b.arrived)
            .then_with(|| a.item.name().cmp(b.item.name()))
    });
    Ok(Scan {
        found,
        wake_at: scanner.wake_at,
    })
}

/// Why an entry that is not a regular file is refused.
fn kind_refusal(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Symlink => Some("a symbolic link is not accepted in in/; it was not followed"),
        Kind::Dir => Some("a folder is not accepted in in/: send files only"),
        Kind::Other => {
            Some("only regular files are accepted in in/ (this is a FIFO, socket or device)")
        }
        Kind::File => None,
    }
}

/// One listing being classified: the entries, the rules, and the earliest time a
/// settling file will be ready.
struct Scanner<'a> {
    names: &'a [(OsString, Info)],
    rules: Rules,
    now: SystemTime,
    wake_at: Option<SystemTime>,
}

impl<'a> Scanner<'a> {
    /// Whether the entry has been still for `settle`; if not, asks to be woken then.
    fn settled(&mut self, m: &Info) -> bool {
        let ready = self
            .now
            .duration_since(m.modified)
            .map(|age| age >= self.rules.settle)
            .unwrap_or(false);
        if !ready {
            let at = m.modified + self.rules.settle;
            self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
        }
        ready
    }

    /// A MESH .dat beside a .ctl: the same stem, the extension in any case (X.DAT +
    /// X.CTL, as some clients write them).
    fn dat_beside(&self, ctl: &[u8]) -> Option<&'a (OsString, Info)> {
        let wanted = stem(ctl)?;
        self.names.iter().find(|(n, _)| {
            let n = n.as_bytes();
            stem(n) == Some(wanted) && extension(n).as_deref() == Some("dat")
        })
    }

    /// What one entry is: ready, refused, or (`None`) not yet anything.
    fn classify(&mut self, name: &OsString, meta: &Info) -> Option<Found> {
        let bytes = name.as_bytes();
        let refuse = |code: Code, message: String| Found {
            item: Ready::Refused {
                name: name.clone(),
                code,
                message,
            },
            arrived: meta.modified,
        };
        if let Some(why) = kind_refusal(meta.kind) {
            return Some(refuse(Code::Name, why.into()));
        }
        if let Some(why) = name_problem(bytes) {
            return self.settled(meta).then(|| refuse(Code::Name, why));
        }
        match extension(bytes).as_deref() {
            Some("csv") | Some("xml") => {
                if !self.settled(meta) {
                    None
                } else if meta.size > self.rules.max_file_bytes {
                    Some(refuse(
                        Code::TooLarge,
                        format!(
                            "the file is {} bytes; the limit is {} (hub.max_file_bytes)",
                            meta.size, self.rules.max_file_bytes
                        ),
                    ))
                } else {
                    Some(Found {
                        item: Ready::Plain {
                            name: name.clone(),
                            size: meta.size,
                        },
                        arrived: meta.modified,
                    })
                }
            }
            Some("ctl") => match self.dat_beside(bytes) {
                Some((dat, dat_meta)) if dat_meta.kind == Kind::File => Some(Found {
                    item: Ready::Mesh {
                        dat: dat.clone(),
                        ctl: name.clone(),
                        size: dat_meta.size,
                    },
                    arrived: meta.modified,
                }),
                Some(_) => None, // the .dat entry is refused on its own
                None => self.settled(meta).then(|| {
                    refuse(
                        Code::DatMissing,
                        format!("{} has no .dat beside it", String::from_utf8_lossy(bytes)),
                    )
                }),
            },
            Some("dat") => None, // waits for its .ctl
            _ => self.settled(meta).then(|| {
                refuse(
                    Code::Name,
                    "only .csv, .xml, or MESH .dat + .ctl pairs are accepted".into(),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scan(dir: &std::path::Path, rules: Rules, now: SystemTime) -> std::io::Result<Scan> {
        super::scan(&Dir::open(dir).unwrap(), rules, now)
    }

    fn rules() -> Rules {
        Rules {
            settle: Duration::ZERO,
            max_file_bytes: 100,
        }
    }

    fn names(found: &[Found]) -> Vec<String> {
        found
            .iter()
            .map(|f| match &f.item {
                Ready::Plain { name, .. } => format!("plain:{}", name.to_string_lossy()),
                Ready::Mesh { dat, .. } => format!("mesh:{}", dat.to_string_lossy()),
                Ready::Refused { name, code, .. } => format!("{code}:{}", name.to_string_lossy()),
            })
            .collect()
    }

    #[test]
    fn classifies_every_kind_of_entry() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "a.csv",
            "b.XML",
            "c.csv.part",
            "d.tmp",
            ".e.csv",
            "f.txt",
            "g.dat",
            "h.dat",
            "h.ctl",
            "i.ctl",
            "J.DAT",
            "J.CTL",
        ] {
            fs::write(d.join(name), b"x").unwrap();
        }
        fs::write(d.join("big.csv"), vec![b'x'; 101]).unwrap();
        fs::create_dir(d.join("folder")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            d.join("fifo.csv"),
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("link.csv")).unwrap();
        let now = SystemTime::now() + Duration::from_secs(5);
        let mut got = names(&scan(d, rules(), now).unwrap().found);
        got.sort();
        assert_eq!(
            got,
            vec![
                "DAT_MISSING:i.ctl",
                "NAME:f.txt",
                "NAME:fifo.csv",
                "NAME:folder",
                "NAME:link.csv",
                "TOO_LARGE:big.csv",
                "mesh:J.DAT",
                "mesh:h.dat",
                "plain:a.csv",
                "plain:b.XML",
            ]
        );
    }

    #[test]
    fn unsettled_plain_file_waits() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), b"x").unwrap();
        // "Now" is the file's own time plus 59 s: a test on the real clock would
        // depend on how the clock and the file system's times agree.
        let written = fs::metadata(dir.path().join("a.csv"))
            .unwrap()
            .modified()
            .unwrap();
        let r = Rules {
            settle: Duration::from_secs(60),
            max_file_bytes: 100,
        };
        let s = scan(dir.path(), r, written + Duration::from_secs(59)).unwrap();
        assert!(s.found.is_empty());
        assert_eq!(
            s.wake_at,
            Some(written + Duration::from_secs(60)),
            "a settling file asks to be woken when it is ready"
        );
        let s = scan(dir.path(), r, written + Duration::from_secs(60)).unwrap();
        assert_eq!(names(&s.found), ["plain:a.csv"]);
    }

    #[test]
    fn odd_names_are_refused() {
        assert!(name_problem(&[b'a'; 201]).is_some());
        assert!(name_problem(b"a\nb.csv").is_some());
        assert!(name_problem(b"a\\b.csv").is_some());
        assert!(name_problem(b"caf\xc3\xa9 100%.csv").is_none());
    }
}
