//! `validate FILE`: the receipt a file would get, nothing changed.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use super::warn_line;
use crate::clock::Clock;
use crate::config::{Config, Format};
use crate::emit::render::{problem_row, ReceiptHead};
use crate::emit::TableWriter;
use crate::formats;
use crate::index::{self, Index};
use crate::pipeline;

/// Opens the index for reading: the database if it exists, else an empty one.
pub(super) fn read_index(config: &Config) -> anyhow::Result<index::ReadOnly> {
    Ok(match Index::open_read_only(&config.hub.database)? {
        Some(index) => index,
        None => index::ReadOnly::empty()?,
    })
}

pub(super) fn run(
    config: &Config,
    file: &Path,
    partner: Option<&str>,
    xml: bool,
    now: Clock,
) -> anyhow::Result<i32> {
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    let partner = match partner {
        Some(mailbox) => Some(
            config
                .partner(mailbox)
                .with_context(|| format!("--partner {mailbox} is not a configured mailbox"))?,
        ),
        None => pipeline::partner_of_file(config, file),
    };
    let index = read_index(config)?;
    let v = pipeline::validate_file(config, index.db(), file, partner, now)?;
    let sequence = match partner {
        Some(p) => {
            index::views::next_sequence_preview(index.db(), &p.mailbox, formats::Kind::Receipt)?
        }
        None => 1,
    };
    let source = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let created_at = now.rfc3339();
    let head = ReceiptHead {
        partner: (v.partner_key.0, &v.partner_key.1),
        source: &source,
        sha256: &v.sha256,
        status: v.status.as_str(),
        counts: v.counts,
        sequence,
        created_at: &created_at,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let syntax = if xml { Format::Xml } else { Format::Csv };
    let mut table = TableWriter::begin(&mut out, &formats::RECEIPT, syntax, &head.metadata())?;
    for p in &v.problems {
        problem_row(&mut table, p)?;
    }
    table.finish()?;
    out.flush()?;
    if let Some(m) = &v.earlier {
        // Said beside the receipt, which stays what the partner would be sent.
        warn_line(format_args!(
            "DUPLICATE: the same content was received from {} as {} at {} (message {}, {})",
            m.mailbox,
            String::from_utf8_lossy(&m.name),
            m.received_at,
            m.id,
            m.status
        ));
    }
    Ok(if v.status == pipeline::extract::Status::Accepted {
        0
    } else {
        1
    })
}
