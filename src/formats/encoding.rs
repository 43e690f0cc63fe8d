//! The metadata line of a CSV document and the percent encoding of its values
//! (SPEC §2.1), written here and read back by `parse::meta`.

/// Percent-encodes a metadata value: space, `%`, `=`, control characters and every
/// non-ASCII byte become `%XX`.
pub(crate) fn percent_encode(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if b == b' ' || b == b'%' || b == b'=' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Decodes `%XX` sequences; `None` on a broken sequence or a result that is not UTF-8.
pub fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Writes a metadata line (without line end).
pub(crate) fn metadata_line(format: &str, pairs: &[(&str, String)]) -> String {
    let mut line = format!("#{format} v1");
    for (k, v) in pairs {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(&percent_encode(v.as_bytes()));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_awkward_values() {
        let name = "nightly extract=100% café\t.csv";
        let enc = percent_encode(name.as_bytes());
        assert!(!enc.contains([' ', '=', '\t']) && enc.is_ascii(), "{enc}");
        assert_eq!(percent_decode(&enc).as_deref(), Some(name));
    }

    #[test]
    fn a_metadata_line_encodes_its_values() {
        let line = metadata_line("cpis-receipt", &[("source", "a b=c.csv".to_string())]);
        assert_eq!(line, "#cpis-receipt v1 source=a%20b%3Dc.csv");
    }
}
