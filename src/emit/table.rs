//! One writer for every outbound format, in either syntax: a metadata line, a
//! header row and rows (CSV), or a root element with attributes and `Record`
//! elements (XML, §2.1).

use std::io::{self, Write};

use quick_xml::escape::escape;

use crate::config::Format;
use crate::formats::{camel, metadata_line, pascal, Spec};

pub(super) const NAMESPACE: &str = "urn:cpis-hub:v1";

/// Writes one document row by row.
pub(crate) struct TableWriter<'w> {
    format: &'static Spec,
    out: Out<'w>,
}

enum Out<'w> {
    Csv(Box<csv::Writer<&'w mut dyn Write>>),
    Xml(&'w mut dyn Write),
}

impl<'w> TableWriter<'w> {
    /// Writes the metadata and (CSV) the header row, and returns the writer of rows.
    pub(crate) fn begin(
        out: &'w mut dyn Write,
        format: &'static Spec,
        syntax: Format,
        metadata: &[(&str, String)],
    ) -> io::Result<Self> {
        Self::head(out, format, syntax, metadata)?;
        Ok(Self::body(out, format, syntax))
    }

    /// Writes only the head of a document: the metadata line and header row (CSV),
    /// or the declaration and the root's start tag (XML).
    pub(crate) fn head(
        out: &mut dyn Write,
        format: &'static Spec,
        syntax: Format,
        metadata: &[(&str, String)],
    ) -> io::Result<()> {
        match syntax {
            Format::Csv => {
                out.write_all(metadata_line(format.name, metadata).as_bytes())?;
                out.write_all(b"\n")?;
                let mut csv = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(out);
                csv.write_record(format.columns)?;
                csv.flush()
            }
            Format::Xml => {
                write!(
                    out,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{} xmlns=\"{NAMESPACE}\"",
                    format.root
                )?;
                for (k, v) in metadata {
                    write!(out, " {}=\"{}\"", camel(k), escape(v.as_str()))?;
                }
                out.write_all(b">\n")
            }
        }
    }

    /// A writer of rows only (what follows [`TableWriter::head`]): a body rendered once
    /// can follow many heads.
    pub(crate) fn body(out: &'w mut dyn Write, format: &'static Spec, syntax: Format) -> Self {
        let out = match syntax {
            Format::Csv => Out::Csv(Box::new(
                csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .buffer_capacity(64 * 1024)
                    .from_writer(out),
            )),
            Format::Xml => Out::Xml(out),
        };
        TableWriter { format, out }
    }

    /// Writes one row; `values` follow the format's columns.
    pub(crate) fn row(&mut self, values: &[&str]) -> io::Result<()> {
        debug_assert_eq!(values.len(), self.format.columns.len());
        match &mut self.out {
            Out::Csv(csv) => Ok(csv.write_record(values)?),
            Out::Xml(out) => {
                out.write_all(b"  <Record>")?;
                for (column, value) in self.format.columns.iter().zip(values) {
                    if !value.is_empty() {
                        let tag = pascal(column);
                        write!(out, "<{tag}>{}</{tag}>", escape(*value))?;
                    }
                }
                out.write_all(b"</Record>\n")
            }
        }
    }

    /// Closes the document.
    pub(crate) fn finish(self) -> io::Result<()> {
        match self.out {
            Out::Csv(mut csv) => csv.flush(),
            Out::Xml(out) => writeln!(out, "</{}>", self.format.root),
        }
    }
}
