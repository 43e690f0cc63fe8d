//! Readers of inbound documents: the CSV and XML forms of every SPEC format
//! (§2.1), and the MESH control file (§1.3). Streaming: one record in memory at a
//! time, whatever the file size.
//!
//! Owns no state beyond the reader it wraps. Must never do I/O beyond that reader,
//! never panic on input, and never stop a whole file for one bad record: a record's
//! structural problem is returned with the record; only problems that make the rest
//! of the file unreadable end the stream.

mod csv_doc;
pub(crate) mod ctl;
pub(crate) mod limits;
pub(crate) mod meta;
mod xml_doc;

use crate::formats::Spec;
use crate::model::Code;
use std::io::{BufRead, BufReader, Read};

pub(crate) use meta::Metadata;

/// Longest physical line (CSV) or run of bytes between XML tags we read.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;
/// Deepest XML nesting accepted (§2.1).
pub(crate) const MAX_XML_DEPTH: usize = 8;

/// A problem that concerns the whole file (empty `line` in a receipt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileProblem {
    pub code: Code,
    pub field: String,
    pub message: String,
}

impl FileProblem {
    pub(crate) fn new(code: Code, field: impl Into<String>, message: impl Into<String>) -> Self {
        FileProblem {
            code,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One record as read: trimmed values (empty = absent) in the format's column order.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawRecord {
    /// CSV: the physical line the record starts on. XML: the record's position from 1.
    pub line: u64,
    pub values: Vec<Option<String>>,
    /// A structural problem of this record (wrong field count, nested element...).
    pub malformed: Option<String>,
}

impl RawRecord {
    pub(crate) fn get(&self, index: usize) -> Option<&str> {
        self.values.get(index).and_then(|v| v.as_deref())
    }
}

/// What the reader yields after the prelude.
#[derive(Debug)]
pub(crate) enum Item {
    Record(RawRecord),
    /// A non-fatal file-level warning met while reading (e.g. an unknown XML element).
    Warning(FileProblem),
    /// The rest of the file cannot be read (its content); the stream ends after this.
    Fatal(FileProblem),
    /// Reading the source failed (the file system, not the content): an error, not a
    /// receipt row; the stream ends after this.
    Io(std::io::Error),
}

/// Why reading stopped: the file's content (a receipt problem), or its source.
#[derive(Debug)]
pub(crate) enum Stop {
    Content(FileProblem),
    Io(std::io::Error),
}

impl From<FileProblem> for Stop {
    fn from(p: FileProblem) -> Stop {
        Stop::Content(p)
    }
}

impl Stop {
    /// An I/O error met while reading: the content's fault when a guard says so (a
    /// line too long, a bad gzip...), else the source's.
    pub(crate) fn from_io(e: std::io::Error) -> Stop {
        match limits::classify(&e) {
            Some((code, message)) => Stop::Content(FileProblem::new(code, "", message)),
            None => Stop::Io(e),
        }
    }

    /// The item that ends a stream.
    pub(crate) fn item(self) -> Item {
        match self {
            Stop::Content(p) => Item::Fatal(p),
            Stop::Io(e) => Item::Io(e),
        }
    }
}

/// `Err` of a content problem, for functions that stop with [`Stop`].
fn fail<T>(p: FileProblem) -> Result<T, Stop> {
    Err(Stop::Content(p))
}

/// What is known before the first record.
#[derive(Debug, Clone)]
pub(crate) struct Prelude {
    pub metadata: Metadata,
    /// For CSV: whether the header names each column of the format. For XML: all true
    /// (elements are optional per record).
    pub present: Vec<bool>,
    /// File-level warnings found in the prelude (unknown columns).
    pub warnings: Vec<FileProblem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Csv,
    Xml,
}

/// A streaming document reader (CSV or XML, told apart by the first byte after an
/// optional BOM and white space).
pub(crate) struct DocReader<R: Read> {
    inner: Inner<R>,
    done: bool,
}

enum Inner<R: Read> {
    Csv(csv_doc::CsvDoc<R>),
    Xml(xml_doc::XmlDoc<R>),
}

/// Skips a UTF-8 BOM and tells whether the content is XML.
fn sniff<R: BufRead>(reader: &mut R) -> std::io::Result<(bool, Syntax)> {
    let mut bom = false;
    {
        let buf = reader.fill_buf()?;
        if buf.starts_with(b"\xEF\xBB\xBF") {
            bom = true;
        }
    }
    if bom {
        reader.consume(3);
    }
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((bom, Syntax::Csv));
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let xml = buf[i] == b'<';
                return Ok((bom, if xml { Syntax::Xml } else { Syntax::Csv }));
            }
            None => {
                // All white space so far: keep it for CSV? A document starting with
                // blank lines is not a metadata line either way; drop it.
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

impl<R: Read> DocReader<R> {
    /// Reads the prelude (metadata and, for CSV, the header row). An `Err` stops
    /// reading before any record: a file-level problem, or the source failing.
    pub(crate) fn open(source: R, spec: &'static Spec) -> Result<(Self, Prelude), Stop> {
        let mut reader = BufReader::with_capacity(64 * 1024, source);
        let (_bom, syntax) = sniff(&mut reader).map_err(Stop::from_io)?;
        match syntax {
            Syntax::Csv => {
                let (doc, prelude) = csv_doc::CsvDoc::open(reader, spec)?;
                Ok((
                    DocReader {
                        inner: Inner::Csv(doc),
                        done: false,
                    },
                    prelude,
                ))
            }
            Syntax::Xml => {
                let (doc, prelude) = xml_doc::XmlDoc::open(reader, spec)?;
                Ok((
                    DocReader {
                        inner: Inner::Xml(doc),
                        done: false,
                    },
                    prelude,
                ))
            }
        }
    }
}

impl<R: Read> Iterator for DocReader<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Csv(doc) => doc.next_item(),
            Inner::Xml(doc) => doc.next_item(),
        };
        if matches!(item, None | Some(Item::Fatal(_)) | Some(Item::Io(_))) {
            self.done = true;
        }
        item
    }
}

#[cfg(test)]
mod tests;
