//! Reading the CSV metadata line (`#cpis-extract v1 key=value ...`, SPEC §2.1).

use crate::formats::percent_decode;

/// The metadata of a document, whichever syntax it came in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Metadata {
    /// Format name, e.g. `cpis-extract` (XML root names are mapped to this form).
    pub format: String,
    pub version: String,
    /// snake_case keys, decoded values, in file order.
    pub pairs: Vec<(String, String)>,
}

impl Metadata {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }
}

/// Parses a metadata line (BOM and line end already removed).
pub(crate) fn parse_line(line: &str) -> Result<Metadata, String> {
    let rest = line
        .strip_prefix('#')
        .ok_or("line 1 is not a metadata line: it must start with '#', e.g. '#cpis-extract v1 authority=LA204 ...'")?;
    let mut tokens = rest.split([' ', '\t']).filter(|t| !t.is_empty());
    let format = tokens
        .next()
        .ok_or("the metadata line names no format")?
        .to_string();
    let version = tokens.next().unwrap_or("").to_string();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for token in tokens {
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| format!("metadata token {token:?} is not key=value"))?;
        let value = percent_decode(value).ok_or_else(|| {
            format!("metadata value of {key} has a broken %XX sequence or is not UTF-8")
        })?;
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(format!("metadata key {key} appears twice"));
        }
        pairs.push((key.to_string(), value));
    }
    Ok(Metadata {
        format,
        version,
        pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_example() {
        let m = parse_line("#cpis-extract v1 authority=LA204 type=FULL extracted_at=2026-11-21T01:30:00Z sequence=1042 records=640").unwrap();
        assert_eq!(m.format, "cpis-extract");
        assert_eq!(m.version, "v1");
        assert_eq!(m.get("records"), Some("640"));
        assert_eq!(m.get("missing"), None);
    }

    #[test]
    fn refuses_broken_lines() {
        assert!(parse_line("cpis-extract v1").is_err());
        assert!(parse_line("#cpis-extract v1 records").is_err());
        assert!(parse_line("#cpis-extract v1 a=1 a=2").is_err());
        assert!(parse_line("#cpis-extract v1 a=%4").is_err());
        assert!(parse_line("#cpis-extract v1 a=%FF").is_err());
    }
}
