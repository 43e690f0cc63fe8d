//! Inbound, exactly once (§9): each message in the hub's MESH inbox is downloaded
//! (every chunk, streamed to disk, gzip removed), made durable under temporary names
//! in its partner's `in/`, recorded, placed as a MESH pair named by its message id,
//! and only then acknowledged. A message listed again is only finished (placed,
//! acknowledged), never taken twice. REPORTs are tied to the file the hub sent;
//! messages from senders that are not `mesh_api` partners are kept for the operator.

use std::io::{self, BufWriter, Read, Write};

use flate2::read::MultiGzDecoder;
use tracing::{info, warn};

use super::{header, usable_id, Client, MeshError};
use crate::clock::Clock;
use crate::config::{Config, Partner};
use crate::fsutil::Dir;
use crate::index::{self, mesh::Inbound, Index};
use crate::model::{MeshInKind, MeshInState};

/// Where messages from unknown senders are kept (§9), below the mailbox root.
pub(crate) const UNKNOWN_FOLDER: &str = ".mesh-unknown";

/// What one poll took.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// Message ids placed in a partner's `in/`.
    pub placed: Vec<String>,
    pub kept: usize,
    pub reports: usize,
}

/// The temporary names of a message's pair while it is written (intake ignores
/// names starting with `.`).
fn temp_names(id: &str) -> (String, String) {
    (
        format!(".{id}.dat.mesh-part"),
        format!(".{id}.ctl.mesh-part"),
    )
}

/// Takes everything in the hub's MESH inbox: first what a crash left half done,
/// then every listed message, listing again at once while a page was full.
pub(crate) fn poll(
    client: &Client,
    config: &Config,
    index: &mut Index,
    now: &Clock,
) -> Result<Taken, MeshError> {
    let mut taken = Taken::default();
    let mut take = Take {
        client,
        config,
        index,
        now,
    };
    for row in index::mesh::unacknowledged(take.index.db())? {
        take.finish(row)?;
    }
    for _ in 0..100 {
        let (ids, full) = client.inbox()?;
        for id in &ids {
            take.one(id, &mut taken)?;
        }
        if !full {
            break;
        }
    }
    Ok(taken)
}

struct Take<'a> {
    client: &'a Client,
    config: &'a Config,
    index: &'a mut Index,
    now: &'a Clock,
}

impl Take<'_> {
    fn record(&mut self, row: &Inbound, bytes: u64) -> Result<(), MeshError> {
        let at = self.now.rfc3339();
        self.index
            .write(|tx| index::mesh::set_inbound(tx, row, bytes, &at))?;
        Ok(())
    }

    /// Takes one listed message (or only finishes it, if it is recorded already).
    fn one(&mut self, id: &str, taken: &mut Taken) -> Result<(), MeshError> {
        if !usable_id(id) {
            warn!(event = "mesh_unusable_id", "a message id in the MESH inbox is not a safe file name: left there for the operator");
            return Ok(());
        }
        if let Some(row) = index::mesh::inbound(self.index.db(), id)? {
            // Listed again: a crash (or a lost acknowledgement) came after it was
            // recorded. Never taken twice: only finished.
            return self.finish(row);
        }
        let first = self.client.chunk(id, 1)?;
        let kind = header(&first, "mex-messagetype").to_ascii_uppercase();
        if kind == "REPORT" {
            taken.reports += 1;
            return self.report(id, &first);
        }
        let sender = header(&first, "mex-from").to_ascii_uppercase();
        match self.config.partner(&sender).filter(|p| p.mesh_api) {
            Some(partner) => {
                self.place(id, partner, first)?;
                taken.placed.push(id.to_string());
            }
            None => {
                self.keep(id, &sender, first)?;
                taken.kept += 1;
            }
        }
        Ok(())
    }

    /// Finishes a recorded message: placed (if a crash left it under temporary
    /// names), then acknowledged.
    fn finish(&mut self, mut row: Inbound) -> Result<(), MeshError> {
        if row.state == MeshInState::Fetched {
            let mailbox = row.mailbox.clone().unwrap_or_default();
            let in_dir = in_folder(self.config, &mailbox)?;
            let (dat_tmp, ctl_tmp) = temp_names(&row.message_id);
            let complete = in_dir.stat(&dat_tmp).ok().flatten().is_some()
                && in_dir.stat(&ctl_tmp).ok().flatten().is_some();
            let dat = format!("{}.dat", row.message_id);
            let already = in_dir
                .stat(format!("{}.ctl", row.message_id))
                .ok()
                .flatten()
                .is_some()
                || index::mesh::taken_by_pipeline(self.index.db(), &mailbox, &dat)?;
            if complete {
                publish(&in_dir, &row.message_id)?;
            } else if !already {
                // Its temporary copy is gone and it never reached in/: download again.
                let first = self.client.chunk(&row.message_id, 1)?;
                let partner = self
                    .config
                    .partner(&mailbox)
                    .filter(|p| p.mesh_api)
                    .ok_or_else(|| MeshError::Protocol {
                        what: "recovery".into(),
                        detail: format!("{mailbox} is no longer a mesh_api partner"),
                    })?;
                return self.place(&row.message_id, partner, first);
            }
            row.state = MeshInState::Placed;
            self.record(&row, 0)?;
        }
        if row.state == MeshInState::Placed {
            self.client.ack(&row.message_id)?;
            row.state = MeshInState::Acked;
            self.record(&row, 0)?;
        } else {
            // Recorded as acknowledged, yet listed: the acknowledgement was lost.
            self.client.ack(&row.message_id)?;
        }
        Ok(())
    }

    /// A message from a `mesh_api` partner: downloaded into its `in/` under
    /// temporary names, recorded, placed, acknowledged.
    fn place(
        &mut self,
        id: &str,
        partner: &Partner,
        first: reqwest::blocking::Response,
    ) -> Result<(), MeshError> {
        let in_dir = in_folder(self.config, &partner.mailbox)?;
        let (dat_tmp, ctl_tmp) = temp_names(id);
        let ctl = control_file(&first, id, &self.config.hub.mailbox);
        let limit = self.config.hub.max_file_bytes.saturating_add(1);
        let bytes = match self.download(id, first, &in_dir, &dat_tmp, limit) {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = in_dir.remove_file(&dat_tmp);
                return Err(e);
            }
        };
        write_file(&in_dir, &ctl_tmp, ctl.as_bytes())?;
        in_dir.sync().map_err(local("syncing", &in_dir))?;
        let mut row = Inbound {
            message_id: id.to_string(),
            sender: Some(partner.mailbox.clone()),
            mailbox: Some(partner.mailbox.clone()),
            kind: MeshInKind::Data,
            state: MeshInState::Fetched,
        };
        self.record(&row, bytes)?;
        crate::fault::point("mesh_after_download");
        publish(&in_dir, id)?;
        row.state = MeshInState::Placed;
        self.record(&row, bytes)?;
        info!(event = "mesh_received", mailbox = %partner.mailbox, message_id = %id, bytes);
        crate::fault::point("mesh_before_ack");
        self.client.ack(id)?;
        row.state = MeshInState::Acked;
        self.record(&row, bytes)
    }

    /// Streams every chunk of a message into `dir/name` (created anew), gzip
    /// removed, at most `limit` bytes kept (a larger message is rejected whole by
    /// the pass, §1.2). Returns the bytes written.
    fn download(
        &self,
        id: &str,
        first: reqwest::blocking::Response,
        dir: &Dir,
        name: &str,
        limit: u64,
    ) -> Result<u64, MeshError> {
        if dir.stat(name).ok().flatten().is_some() {
            dir.remove_file(name).map_err(local("removing", dir))?;
        }
        let file = dir
            .create_new(name, 0o600)
            .map_err(local("creating", dir))?;
        let total = chunk_total(&first)?;
        let compressed = header(&first, "mex-content-compressed").eq_ignore_ascii_case("Y");
        // The chunks, one stream (a transport gzip removed per response).
        let client = self.client;
        let id_owned = id.to_string();
        let mut pending = Some(first);
        let mut next = 2u32;
        let mut failure: Option<MeshError> = None;
        let chunks = std::iter::from_fn(|| {
            let response = match pending.take() {
                Some(r) => r,
                None if next <= total => {
                    let n = next;
                    next += 1;
                    match client.chunk(&id_owned, n) {
                        Ok(r) => r,
                        Err(e) => {
                            failure = Some(e);
                            return None;
                        }
                    }
                }
                None => return None,
            };
            let gzip = header(&response, "content-encoding").eq_ignore_ascii_case("gzip");
            let reader: Box<dyn Read> = if gzip {
                Box::new(MultiGzDecoder::new(response))
            } else {
                Box::new(response)
            };
            Some(reader)
        });
        let mut joined = Chained::new(chunks);
        let mut head = [0u8; 2];
        let got = read_full(&mut joined, &mut head).map_err(network(id))?;
        let prefix = io::Cursor::new(head[..got].to_vec());
        let body: Box<dyn Read + '_> = if compressed && got == 2 && head == [0x1f, 0x8b] {
            // The sender compressed the content itself (Mex-Content-Compressed): the
            // chunks join into one gzip stream (or one member per chunk).
            Box::new(MultiGzDecoder::new(prefix.chain(joined)))
        } else {
            Box::new(prefix.chain(joined))
        };
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let mut body = body.take(limit);
        let copied = io::copy(&mut body, &mut out);
        drop(body);
        if let Some(e) = failure {
            return Err(e);
        }
        let written = copied.map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidInput || e.kind() == io::ErrorKind::InvalidData {
                MeshError::Protocol {
                    what: format!("download of {id}"),
                    detail: format!("the content is not valid gzip: {e}"),
                }
            } else {
                network(id)(e)
            }
        })?;
        let file = out
            .into_inner()
            .map_err(|e| local("writing", dir)(e.into_error()))?;
        file.sync_all().map_err(local("syncing", dir))?;
        Ok(written)
    }

    /// A REPORT: recorded with the outbound file it names, then acknowledged.
    fn report(
        &mut self,
        id: &str,
        response: &reqwest::blocking::Response,
    ) -> Result<(), MeshError> {
        let linked = header(response, "mex-linkedmsgid").to_string();
        let sent = if linked.is_empty() {
            None
        } else {
            index::mesh::outbound_by_message(self.index.db(), &linked)?
        };
        let report = index::mesh::Report {
            report_id: id.to_string(),
            linked_id: (!linked.is_empty()).then(|| linked.clone()),
            mailbox: sent.as_ref().map(|o| o.mailbox.clone()),
            file: sent.as_ref().map(|o| o.file.clone()),
            code: header(response, "mex-statuscode").to_string(),
            description: header(response, "mex-statusdescription").to_string(),
            event: header(response, "mex-statusevent").to_string(),
            at: self.now.rfc3339(),
        };
        let row = Inbound {
            message_id: id.to_string(),
            sender: None,
            mailbox: report.mailbox.clone(),
            kind: MeshInKind::Report,
            state: MeshInState::Placed,
        };
        let at = self.now.rfc3339();
        self.index.write(|tx| {
            index::mesh::add_report(tx, &report)?;
            index::mesh::set_inbound(tx, &row, 0, &at)
        })?;
        warn!(event = "mesh_report", report_id = %id, linked_message_id = %linked,
              mailbox = report.mailbox.as_deref().unwrap_or("?"), file = report.file.as_deref().unwrap_or("?"),
              code = %report.code, description = %report.description, "an outbound message was not delivered: see `status`");
        self.finish(row)
    }

    /// Data from an unknown or non-`mesh_api` sender: kept under
    /// `<root>/.mesh-unknown/` (0700, files 0600), never applied; acknowledged.
    fn keep(
        &mut self,
        id: &str,
        sender: &str,
        first: reqwest::blocking::Response,
    ) -> Result<(), MeshError> {
        let root = crate::transport::open_root(self.config).map_err(|source| MeshError::Local {
            what: "opening",
            path: self.config.hub.root.clone(),
            source,
        })?;
        let dir = root
            .create_dir(UNKNOWN_FOLDER, 0o700)
            .map_err(|source| MeshError::Local {
                what: "creating",
                path: self.config.hub.root.join(UNKNOWN_FOLDER),
                source,
            })?;
        let headers = mex_headers(&first);
        let (dat_tmp, ctl_tmp) = temp_names(id);
        let limit = self.config.hub.max_file_bytes.saturating_add(1);
        let bytes = self.download(id, first, &dir, &dat_tmp, limit)?;
        write_file(&dir, &ctl_tmp, headers.as_bytes())?;
        dir.rename(&dat_tmp, &dir, format!("{id}.dat"))
            .map_err(local("renaming", &dir))?;
        dir.rename(&ctl_tmp, &dir, format!("{id}.headers.json"))
            .map_err(local("renaming", &dir))?;
        dir.sync().map_err(local("syncing", &dir))?;
        let row = Inbound {
            message_id: id.to_string(),
            sender: (!sender.is_empty()).then(|| sender.to_string()),
            mailbox: None,
            kind: MeshInKind::Kept,
            state: MeshInState::Placed,
        };
        self.record(&row, bytes)?;
        warn!(event = "mesh_unknown_sender", sender = %sender, message_id = %id,
              "a message from a sender that is not a mesh_api partner: kept under .mesh-unknown/, not applied");
        self.finish(row)
    }
}

/// The partner's `in/` (created when missing).
fn in_folder(config: &Config, mailbox: &str) -> Result<Dir, MeshError> {
    crate::transport::open_root(config)
        .and_then(|root| crate::transport::create_folder(&root, mailbox, "in"))
        .map_err(|source| MeshError::Local {
            what: "opening",
            path: config.folder(mailbox, "in"),
            source,
        })
}

/// Renames the pair into place: the `.dat` first, then the `.ctl` that makes it
/// ready (§1.2); then the folder is synced.
fn publish(in_dir: &Dir, id: &str) -> Result<(), MeshError> {
    let (dat_tmp, ctl_tmp) = temp_names(id);
    in_dir
        .rename(&dat_tmp, in_dir, format!("{id}.dat"))
        .map_err(local("placing", in_dir))?;
    in_dir
        .rename(&ctl_tmp, in_dir, format!("{id}.ctl"))
        .map_err(local("placing", in_dir))?;
    in_dir.sync().map_err(local("syncing", in_dir))
}

/// Writes a small file anew, durably.
fn write_file(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), MeshError> {
    if dir.stat(name).ok().flatten().is_some() {
        dir.remove_file(name).map_err(local("removing", dir))?;
    }
    let mut f = dir
        .create_new(name, 0o600)
        .map_err(local("creating", dir))?;
    f.write_all(bytes).map_err(local("writing", dir))?;
    f.sync_all().map_err(local("syncing", dir))
}

/// The number of chunks of a message (`Mex-Chunk-Range: 1:N`, else
/// `Mex-Total-Chunks`, else one).
fn chunk_total(first: &reqwest::blocking::Response) -> Result<u32, MeshError> {
    let range = header(first, "mex-chunk-range");
    let total = match range.split_once(':') {
        Some((_, n)) => n.trim().parse::<u32>().ok(),
        None => header(first, "mex-total-chunks").parse::<u32>().ok(),
    }
    .unwrap_or(1)
    .max(1);
    if total > 10_000 {
        return Err(MeshError::Protocol {
            what: "download".into(),
            detail: format!("{total} chunks is more than any message the hub accepts"),
        });
    }
    Ok(total)
}

/// The `.ctl` of a message placed in `in/` (§1.3), from its `Mex-*` headers:
/// `DTSId` = the MESH message id, `Compress` = `N` (the `.dat` is written
/// decompressed). Values are escaped; none is patient data.
fn control_file(first: &reqwest::blocking::Response, id: &str, hub: &str) -> String {
    let esc = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect::<String>()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let to = header(first, "mex-to");
    let encrypted = if header(first, "mex-content-encrypted").eq_ignore_ascii_case("Y") {
        "Y"
    } else {
        "N"
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DTSControl>\n  <Version>1.0</Version>\n  <AddressType>DTS</AddressType>\n  <MessageType>Data</MessageType>\n  <WorkflowId>{}</WorkflowId>\n  <To_DTS>{}</To_DTS>\n  <From_DTS>{}</From_DTS>\n  <Subject>{}</Subject>\n  <LocalId>{}</LocalId>\n  <DTSId>{}</DTSId>\n  <Compress>N</Compress>\n  <AllowChunking>Y</AllowChunking>\n  <Encrypted>{encrypted}</Encrypted>\n</DTSControl>\n",
        esc(header(first, "mex-workflowid")),
        esc(if to.is_empty() { hub } else { to }),
        esc(header(first, "mex-from")),
        esc(header(first, "mex-subject")),
        esc(header(first, "mex-localid")),
        esc(id),
    )
}

/// The `Mex-*` headers of a kept message, as JSON (for the operator).
fn mex_headers(first: &reqwest::blocking::Response) -> String {
    let map: serde_json::Map<String, serde_json::Value> = first
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("mex-"))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.into())))
        .collect();
    serde_json::to_string_pretty(&map).unwrap_or_default()
}

fn local(what: &'static str, dir: &Dir) -> impl FnOnce(io::Error) -> MeshError {
    let path = dir.path().to_path_buf();
    move |source| MeshError::Local { what, path, source }
}

fn network(id: &str) -> impl FnOnce(io::Error) -> MeshError + '_ {
    move |e| MeshError::Network {
        what: format!("download of {id}"),
        detail: e.to_string(),
        maybe_sent: true,
    }
}

/// Reads until `buf` is full or the stream ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Readers read one after another, each opened only when the previous one ends.
struct Chained<I: Iterator<Item = Box<dyn Read>>> {
    rest: I,
    current: Option<Box<dyn Read>>,
}

impl<I: Iterator<Item = Box<dyn Read>>> Chained<I> {
    fn new(mut rest: I) -> Self {
        let current = rest.next();
        Chained { rest, current }
    }
}

impl<I: Iterator<Item = Box<dyn Read>>> Read for Chained<I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(r) = self.current.as_mut() {
            let n = r.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.current = self.rest.next();
        }
        Ok(0)
    }
}
