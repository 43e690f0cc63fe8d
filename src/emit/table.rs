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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::INACTIVE;

    fn render(syntax: Format) -> String {
        let mut out = Vec::new();
        let metadata = [("mailbox", "X26LA204".to_string()), ("count", "2".into())];
        let mut t = TableWriter::begin(&mut out, &INACTIVE, syntax, &metadata).unwrap();
        t.row(&["C1", "9990000018", "CPP", "INACTIVE", "", "2026-11-20"])
            .unwrap();
        t.row(&[
            "C,2",
            "9990000026",
            "LAC",
            "SUPERSEDED",
            "9990000034",
            "<&>",
        ])
        .unwrap();
        t.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_is_the_metadata_line_the_header_and_quoted_rows() {
        assert_eq!(
            render(Format::Csv),
            "#cpis-inactive v1 mailbox=X26LA204 count=2\n\
             local_id,nhs_number,plan_type,status,replacement_nhs_number,effective_date\n\
             C1,9990000018,CPP,INACTIVE,,2026-11-20\n\
             \"C,2\",9990000026,LAC,SUPERSEDED,9990000034,<&>\n"
        );
    }

    #[test]
    fn xml_has_the_metadata_as_attributes_escaped_values_and_no_empty_elements() {
        assert_eq!(
            render(Format::Xml),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <CpisInactive xmlns=\"urn:cpis-hub:v1\" mailbox=\"X26LA204\" count=\"2\">\n  \
             <Record><LocalId>C1</LocalId><NhsNumber>9990000018</NhsNumber><PlanType>CPP</PlanType><Status>INACTIVE</Status><EffectiveDate>2026-11-20</EffectiveDate></Record>\n  \
             <Record><LocalId>C,2</LocalId><NhsNumber>9990000026</NhsNumber><PlanType>LAC</PlanType><Status>SUPERSEDED</Status><ReplacementNhsNumber>9990000034</ReplacementNhsNumber><EffectiveDate>&lt;&amp;&gt;</EffectiveDate></Record>\n\
             </CpisInactive>\n"
        );
    }
}
