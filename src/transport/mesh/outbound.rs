//! Outbound, at least once and never silently doubled (§9): each file the hub wrote
//! in a `mesh_api` partner's `out/` is recorded as being sent, sent (in chunks above
//! `chunk_bytes`, each a gzip member of its own), its MESH message id recorded, and
//! then moved to `out/sent/`. A send is repeated only when its outcome is unknown
//! (recorded as being sent, no message id), under the same file name and
//! `Mex-LocalID`; a file the server refused goes to `out/refused/` and is shown by
//! `status` (put back in `out/` by an operator, it is sent anew).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use flate2::write::GzEncoder;
use tracing::{error, info, warn};

use super::{Client, MeshError};
use crate::clock::Clock;
use crate::config::{Config, Framing, Partner};
use crate::formats::Kind;
use crate::fsutil::{self, Dir};
use crate::index::{self, mesh::Outbound, Index};
use crate::model::MeshOutState;

/// Where chunks are compressed before they are sent: below the root, the hub's own.
const STAGING_FOLDER: &str = ".mesh-staging";

/// A file to send: its data file (and its `.ctl`, which moves with it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting {
    data: String,
    ctl: Option<String>,
    /// The §4 file name (`Mex-FileName`).
    file_name: String,
    kind: Kind,
    /// `KIND_SEQUENCE` (`Mex-LocalID`).
    local_id: String,
}

/// `KIND_MAILBOX_STAMP_SEQUENCE.ext` (§4; `.dat` under MESH framing): the kind and
/// the sequence.
fn parse_name(name: &str) -> Option<(Kind, &str)> {
    let stem = name.rsplit_once('.')?.0;
    let mut parts = stem.split('_');
    let kind = Kind::parse(parts.next()?)?;
    let seq = parts.nth(2)?;
    (parts.next().is_none() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
        .then_some((kind, seq))
}

/// The files waiting in `out/`, by name: plain files, or `.dat`s whose `.ctl` is
/// written (MESH framing). Only names the hub gives (§4).
fn waiting(names: &[String], partner: &Partner) -> Vec<Waiting> {
    let mut found = Vec::new();
    for name in names {
        if name.ends_with(".ctl") {
            continue;
        }
        let Some((kind, seq)) = parse_name(name) else {
            continue;
        };
        let (ctl, file_name) = if partner.framing == Framing::Mesh {
            let Some(stem) = name.strip_suffix(".dat") else {
                continue;
            };
            let ctl = format!("{stem}.ctl");
            if !names.contains(&ctl) {
                continue; // its .ctl is not written yet
            }
            (Some(ctl), format!("{stem}.{}", partner.format.as_str()))
        } else {
            (None, name.clone())
        };
        found.push(Waiting {
            data: name.clone(),
            ctl,
            file_name,
            kind,
            local_id: format!("{}_{seq}", kind.as_str()),
        });
    }
    found
}

/// What a send round did: the names sent, and the names the server refused.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub sent: Vec<String>,
    pub refused: Vec<String>,
}

/// Sends what waits in every `mesh_api` partner's `out/`.
pub(crate) fn send_all(
    client: &Client,
    config: &Config,
    index: &mut Index,
) -> Result<Sent, MeshError> {
    let mut done = Sent::default();
    for partner in config.partners.iter().filter(|p| p.mesh_api) {
        send_partner(client, config, index, partner, &mut done)?;
    }
    Ok(done)
}

fn local(what: &'static str, path: std::path::PathBuf) -> impl FnOnce(io::Error) -> MeshError {
    move |source| MeshError::Local { what, path, source }
}

fn send_partner(
    client: &Client,
    config: &Config,
    index: &mut Index,
    partner: &Partner,
    done: &mut Sent,
) -> Result<(), MeshError> {
    let out_path = config.folder(&partner.mailbox, "out");
    let root =
        crate::transport::open_root(config).map_err(local("opening", config.hub.root.clone()))?;
    let out_dir = match crate::transport::folder(&root, &partner.mailbox, "out") {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(local("opening", out_path)(e)),
    };
    let names =
        crate::transport::waiting_files(&out_dir).map_err(local("listing", out_path.clone()))?;
    for w in waiting(&names, partner) {
        let mut row =
            index::mesh::outbound(index.db(), &partner.mailbox, &w.data)?.unwrap_or(Outbound {
                mailbox: partner.mailbox.clone(),
                file: w.data.clone(),
                local_id: w.local_id.clone(),
                message_id: None,
                chunks: 1,
                state: MeshOutState::Sending,
                attempts: 0,
                error: None,
            });
        if row.state == MeshOutState::Refused {
            // Refused files go to out/refused/: one back in out/ was put there by an
            // operator to be sent again.
            row.state = MeshOutState::Sending;
            row.attempts = 0;
            row.message_id = None;
        }
        if row.state != MeshOutState::Sent {
            let (file, info) = out_dir
                .open_read(&w.data)
                .map_err(local("opening", out_path.join(&w.data)))?;
            if info.kind != fsutil::Kind::File || info.links != 1 || info.uid != fsutil::euid() {
                warn!(event = "mesh_not_sent", mailbox = %partner.mailbox, file = %w.data, "not a file the hub wrote (a link, another owner, or more than one name): left in out/");
                continue;
            }
            let mut send = Send {
                client,
                config,
                index: &mut *index,
                partner,
                root: &root,
            };
            match send.file(&w, file, info.size, &mut row) {
                Ok(()) => {}
                Err(e @ MeshError::Http { .. }) if !e.is_transient() => {
                    // Refused (not a secret, not the server's load): never retried blindly.
                    error!(event = "mesh_refused", mailbox = %partner.mailbox, file = %w.data, error = %e, "the MESH server refused this file: see `status`");
                    row.state = MeshOutState::Refused;
                    row.error = Some(e.to_string());
                    let at = Clock::real().rfc3339();
                    index.write(|tx| index::mesh::set_outbound(tx, &row, &at))?;
                    move_pair(&root, partner, &out_dir, &w, "out/refused")?;
                    done.refused.push(w.data.clone());
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        // Sent and recorded: the file (and its .ctl after it) moves to out/sent/.
        let sent_dir = crate::transport::create_folder(&root, &partner.mailbox, "out/sent")
            .map_err(local("creating", out_path.join("sent")))?;
        for name in std::iter::once(&w.data).chain(w.ctl.iter()) {
            out_dir
                .rename(name, &sent_dir, name)
                .map_err(local("moving", out_path.join(name)))?;
        }
        sent_dir
            .sync()
            .map_err(local("syncing", out_path.join("sent")))?;
        out_dir.sync().map_err(local("syncing", out_path.clone()))?;
        info!(event = "mesh_sent", mailbox = %partner.mailbox, file = %w.data, message_id = row.message_id.as_deref().unwrap_or(""));
        done.sent.push(w.data.clone());
    }
    Ok(())
}

/// Moves a file (and its `.ctl` after it) from `out/` to `folder` (`out/sent`,
/// `out/refused`), durably.
fn move_pair(
    root: &Dir,
    partner: &Partner,
    out_dir: &Dir,
    w: &Waiting,
    folder: &str,
) -> Result<(), MeshError> {
    let to = crate::transport::create_folder(root, &partner.mailbox, folder).map_err(local(
        "creating",
        root.path().join(&partner.mailbox).join(folder),
    ))?;
    for name in std::iter::once(&w.data).chain(w.ctl.iter()) {
        out_dir
            .rename(name, &to, name)
            .map_err(local("moving", out_dir.path().join(name)))?;
    }
    to.sync()
        .map_err(local("syncing", to.path().to_path_buf()))?;
    out_dir
        .sync()
        .map_err(local("syncing", out_dir.path().to_path_buf()))
}

/// The raw bytes of each chunk, so that its gzip member (deflate's worst case:
/// 5 bytes per 16 KiB stored block, plus the gzip header and trailer) stays within
/// `chunk_bytes`.
fn raw_chunk_bytes(chunk_bytes: u64) -> u64 {
    let room = chunk_bytes.saturating_sub(64);
    room - room / 1024 - 16
}

struct Send<'a> {
    client: &'a Client,
    config: &'a Config,
    index: &'a mut Index,
    partner: &'a Partner,
    root: &'a Dir,
}

impl Send<'_> {
    fn record(&mut self, row: &Outbound) -> Result<(), MeshError> {
        let at = Clock::real().rfc3339();
        self.index
            .write(|tx| index::mesh::set_outbound(tx, row, &at))?;
        Ok(())
    }

    /// Sends one file: the first request (or the rest of its chunks, when a crash
    /// came after the first), recording each step before the next.
    fn file(
        &mut self,
        w: &Waiting,
        mut file: File,
        size: u64,
        row: &mut Outbound,
    ) -> Result<(), MeshError> {
        let chunk_bytes = self.client.settings().chunk_bytes;
        let (raw, chunks) = if size > chunk_bytes {
            let raw = raw_chunk_bytes(chunk_bytes);
            (raw, size.div_ceil(raw) as u32)
        } else {
            (size.max(1), 1)
        };
        if row.state == MeshOutState::Sending && row.attempts > 0 {
            // A send began and its answer was never recorded: ask the server's
            // outbox whether it arrived before sending it again.
            if let Some((id, status)) = self
                .client
                .find_sent(&self.partner.mailbox, &row.local_id)?
            {
                info!(event = "mesh_send_found", mailbox = %self.partner.mailbox, file = %w.data, message_id = %id, "the previous send arrived: recorded, not sent again");
                row.message_id = Some(id);
                row.chunks = chunks;
                row.state = if status.eq_ignore_ascii_case("uploading") {
                    MeshOutState::Uploading
                } else {
                    MeshOutState::Sent
                };
                self.record(row)?;
            } else {
                warn!(event = "mesh_resend", mailbox = %self.partner.mailbox, file = %w.data, local_id = %row.local_id, "the outcome of the previous send is unknown: sent again under the same name and Mex-LocalID");
            }
        }
        if row.state == MeshOutState::Sending {
            row.attempts += 1;
            row.chunks = chunks;
            row.error = None;
            self.record(row)?;
            let body = self.body(&mut file, size, raw, 1, chunks)?;
            let id = self.client.send_first(self.partner, w, body, chunks)?;
            crate::fault::point("mesh_after_send");
            row.message_id = Some(id);
            row.state = if chunks > 1 {
                MeshOutState::Uploading
            } else {
                MeshOutState::Sent
            };
            self.record(row)?;
        }
        if row.state == MeshOutState::Uploading {
            let id = row.message_id.clone().unwrap_or_default();
            for n in 2..=row.chunks {
                let body = self.body(&mut file, size, raw, n, row.chunks)?;
                self.client.send_chunk(&id, body, n, row.chunks)?;
            }
            row.state = MeshOutState::Sent;
            self.record(row)?;
        }
        Ok(())
    }

    /// The body of chunk `n` of `total`: the whole file (one request, as written),
    /// or that chunk's bytes as one gzip member, staged in an unnamed file.
    fn body(
        &self,
        file: &mut File,
        size: u64,
        raw: u64,
        n: u32,
        total: u32,
    ) -> Result<Body, MeshError> {
        let path = self.config.folder(&self.partner.mailbox, "out");
        if total == 1 {
            let copy = file.try_clone().map_err(local("reading", path))?;
            return Ok(Body {
                file: copy,
                len: size,
                gzip: false,
            });
        }
        let staging_path = self.config.hub.root.join(STAGING_FOLDER);
        let staging = self
            .root
            .create_dir(STAGING_FOLDER, 0o700)
            .map_err(local("creating", staging_path.clone()))?;
        let mut staged = tempfile::tempfile_in(staging.path())
            .map_err(local("staging in", staging_path.clone()))?;
        let start = raw * u64::from(n - 1);
        file.seek(SeekFrom::Start(start))
            .map_err(local("reading", path.clone()))?;
        let mut encoder = GzEncoder::new(&mut staged, flate2::Compression::fast());
        let copied = io::copy(&mut file.take(raw.min(size - start)), &mut encoder)
            .map_err(local("compressing", path.clone()))?;
        encoder
            .finish()
            .and_then(|w| w.flush())
            .map_err(local("compressing", staging_path.clone()))?;
        let len = staged
            .seek(SeekFrom::End(0))
            .map_err(local("staging in", staging_path.clone()))?;
        staged
            .seek(SeekFrom::Start(0))
            .map_err(local("staging in", staging_path))?;
        let limit = self.client.settings().chunk_bytes;
        if len > limit || copied == 0 {
            return Err(MeshError::Protocol {
                what: format!("chunk {n} of {total}"),
                detail: format!("{len} bytes compressed, over chunk_bytes {limit}"),
            });
        }
        Ok(Body {
            file: staged,
            len,
            gzip: true,
        })
    }
}

/// A request body streamed from a file.
pub(super) struct Body {
    file: File,
    len: u64,
    gzip: bool,
}

impl Client {
    /// A message the hub sent to `recipient` with this `Mex-LocalID`, as the server's
    /// outbox lists it (the last 30 days): its id and status. `None` when it is not
    /// there, or the server cannot list its outbox (then the outcome stays unknown).
    fn find_sent(
        &self,
        recipient: &str,
        local_id: &str,
    ) -> Result<Option<(String, String)>, MeshError> {
        let mut path = format!("/messageexchange/{}/outbox/rich", self.mailbox);
        for _ in 0..50 {
            let response = match self.call("outbox listing", || {
                Ok(self.request(reqwest::Method::GET, &path))
            }) {
                Ok(r) => r,
                Err(MeshError::Http { status, .. }) if status < 500 && status != 429 => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            let value = super::json_body(response, "outbox listing")?;
            let found = value
                .get("messages")
                .and_then(|m| m.as_array())
                .into_iter()
                .flatten()
                .find(|m| {
                    m.get("local_id").and_then(|v| v.as_str()) == Some(local_id)
                        && m.get("recipient")
                            .and_then(|v| v.as_str())
                            .is_some_and(|r| r.eq_ignore_ascii_case(recipient))
                        && m.get("message_type").and_then(|v| v.as_str()) != Some("REPORT")
                });
            if let Some(m) = found {
                let id = m.get("message_id").and_then(|v| v.as_str()).unwrap_or("");
                if super::usable_id(id) {
                    let status = m.get("status").and_then(|v| v.as_str()).unwrap_or("");
                    return Ok(Some((id.to_string(), status.to_string())));
                }
            }
            match value.pointer("/links/next").and_then(|n| n.as_str()) {
                Some(next) if next.starts_with('/') => path = next.to_string(),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The first request of a message (`POST .../outbox`): its MESH message id.
    fn send_first(
        &self,
        partner: &Partner,
        w: &Waiting,
        body: Body,
        chunks: u32,
    ) -> Result<String, MeshError> {
        let request = || {
            let mut request = self
                .request(
                    reqwest::Method::POST,
                    &format!("/messageexchange/{}/outbox", self.mailbox),
                )
                .header("Mex-From", &self.mailbox)
                .header("Mex-To", &partner.mailbox)
                .header("Mex-WorkflowID", partner.outbound_workflow(w.kind))
                .header("Mex-FileName", &w.file_name)
                .header("Mex-LocalID", &w.local_id)
                .header("Mex-Subject", w.kind.as_str())
                .header("Mex-Content-Type", content_type(&w.file_name));
            if chunks > 1 {
                request = request
                    .header("Mex-Chunk-Range", format!("1:{chunks}"))
                    .header("Mex-Content-Compressed", "Y");
            }
            with_body(request, &body)
        };
        let response = self.call("send", request)?;
        let value = super::json_body(response, "send")?;
        value
            .get("message_id")
            .or_else(|| value.get("messageID"))
            .and_then(|v| v.as_str())
            .filter(|id| super::usable_id(id))
            .map(str::to_string)
            .ok_or_else(|| MeshError::Network {
                what: "send".into(),
                detail: "the answer names no usable message_id".into(),
                maybe_sent: true,
            })
    }

    /// Chunk `n` (2..) of a message (`POST .../outbox/{id}/{n}`). A chunk the server
    /// took already (the message is complete: 423) is done.
    fn send_chunk(&self, id: &str, body: Body, n: u32, total: u32) -> Result<(), MeshError> {
        let request = || {
            let request = self
                .request(
                    reqwest::Method::POST,
                    &format!("/messageexchange/{}/outbox/{id}/{n}", self.mailbox),
                )
                .header("Mex-Chunk-Range", format!("{n}:{total}"));
            with_body(request, &body)
        };
        match self.call(&format!("send of chunk {n}"), request) {
            Ok(_) => Ok(()),
            Err(MeshError::Http { status: 423, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The request with the body streamed from its file's start (each try anew).
fn with_body(
    request: reqwest::blocking::RequestBuilder,
    body: &Body,
) -> Result<reqwest::blocking::RequestBuilder, MeshError> {
    let mut file = body.file.try_clone().map_err(|source| MeshError::Local {
        what: "reopening",
        path: "the file being sent".into(),
        source,
    })?;
    file.seek(SeekFrom::Start(0))
        .map_err(|source| MeshError::Local {
            what: "rewinding",
            path: "the file being sent".into(),
            source,
        })?;
    let request = request
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", body.len.to_string());
    let request = if body.gzip {
        request.header("Content-Encoding", "gzip")
    } else {
        request
    };
    Ok(request.body(reqwest::blocking::Body::sized(file, body.len)))
}

fn content_type(file_name: &str) -> &'static str {
    if file_name.ends_with(".xml") {
        "application/xml"
    } else {
        "text/csv"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_the_kind_and_the_local_id() {
        assert_eq!(
            parse_name("RECEIPT_X26LA101_20261202T100000Z_000007.csv"),
            Some((Kind::Receipt, "000007"))
        );
        assert_eq!(
            parse_name("ALERTS_X26RXA01_20261202T100000Z_000012.dat"),
            Some((Kind::Alerts, "000012"))
        );
        for other in [
            "notes.txt",
            "RECEIPT_X26LA101_000007.csv",
            "BOGUS_X26LA101_20261202T100000Z_000007.csv",
            "RECEIPT_X26LA101_20261202T100000Z_00000x.csv",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_chunk_compressed_whatever_its_content_stays_within_chunk_bytes() {
        // Random bytes do not compress: the worst case for the gzip member's size.
        let mut state = 0x9e3779b97f4a7c15u64;
        for chunk_bytes in [1024u64, 4096, 65_536, 1_000_000] {
            let raw = raw_chunk_bytes(chunk_bytes);
            let data: Vec<u8> = (0..raw)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&data).unwrap();
            let member = gz.finish().unwrap();
            assert!(
                member.len() as u64 <= chunk_bytes,
                "{} > {chunk_bytes}",
                member.len()
            );
        }
    }
}
