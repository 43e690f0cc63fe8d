//! NHS numbers: parsing the written forms, the Modulus 11 check digit, the 999
//! test range, and masking for logs.
//!
//! Owns no state. Must never log or format an NHS number in full except through
//! [`NhsNumber::as_str`] for outbound files and the database.

use std::fmt;

/// A syntactically valid NHS number (ten digits, correct Modulus 11 check digit).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NhsNumber([u8; 10]);

/// Why a written NHS number is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NhsError {
    /// Not ten digits (after removing the allowed separators).
    Format,
    /// Ten digits, but the check digit is wrong (or no check digit can be valid).
    CheckDigit,
}

/// The Modulus 11 check digit of nine digits, or `None` when no digit can be valid
/// (the remainder gives 10).
pub(crate) fn check_digit(first_nine: &[u8; 9]) -> Option<u8> {
    let total: u32 = first_nine
        .iter()
        .zip((2..=10).rev())
        .map(|(digit, weight)| u32::from(*digit) * weight)
        .sum();
    match 11 - total % 11 {
        11 => Some(0),
        10 => None,
        check => Some(check as u8),
    }
}

impl NhsNumber {
    /// Parses `DDDDDDDDDD`, `DDD DDD DDDD` or `DDD-DDD-DDDD` (surrounding white space
    /// allowed). Separators must sit at the 3-3-4 positions and be used consistently.
    pub(crate) fn parse(text: &str) -> Result<NhsNumber, NhsError> {
        let text = text.trim();
        let bytes = text.as_bytes();
        let mut digits = [0u8; 10];
        match bytes.len() {
            10 => digits.copy_from_slice(bytes),
            12 if bytes[3] == bytes[7] && (bytes[3] == b' ' || bytes[3] == b'-') => {
                digits[..3].copy_from_slice(&bytes[0..3]);
                digits[3..6].copy_from_slice(&bytes[4..7]);
                digits[6..].copy_from_slice(&bytes[8..12]);
            }
            _ => return Err(NhsError::Format),
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(NhsError::Format);
        }
        let mut out = [0u8; 10];
        for (slot, digit) in out.iter_mut().zip(&digits) {
            *slot = digit - b'0';
        }
        let mut nine = [0u8; 9];
        nine.copy_from_slice(&out[..9]);
        match check_digit(&nine) {
            Some(check) if check == out[9] => Ok(NhsNumber(out)),
            _ => Err(NhsError::CheckDigit),
        }
    }

    /// True for numbers in the 999 test range (never issued to a real person).
    pub(crate) fn is_test_number(&self) -> bool {
        self.0[..3] == [9, 9, 9]
    }

    /// The ten digits, no separators: the only form written to files and the database.
    pub(crate) fn as_string(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// The ten digits as ASCII, no separators.
    pub(crate) fn ascii(&self) -> [u8; 10] {
        self.0.map(|d| b'0' + d)
    }

    /// `*** *** 5919`: the only form allowed in logs.
    pub(crate) fn masked(&self) -> String {
        format!("*** *** {}", &self.as_string()[6..])
    }
}

impl fmt::Debug for NhsNumber {
    /// Debug output is masked too, so a stray `{:?}` never leaks a number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NhsNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with_check(nine: u32) -> Option<String> {
        let s = format!("{nine:09}");
        let mut d = [0u8; 9];
        for (i, b) in s.bytes().enumerate() {
            d[i] = b - b'0';
        }
        check_digit(&d).map(|c| format!("{s}{c}"))
    }

    #[test]
    fn known_valid_numbers() {
        for n in [
            "9990000018",
            "9990000026",
            "9434765919",
            "943 476 5919",
            "943-476-5919",
        ] {
            assert!(NhsNumber::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn wrong_check_digit_and_formats() {
        assert_eq!(NhsNumber::parse("9434765918"), Err(NhsError::CheckDigit));
        for bad in [
            "",
            "943476591",
            "94347659190",
            "943 476-5919",
            "9434 76 5919",
            "94347659a9",
            "943  4765919",
        ] {
            assert_eq!(NhsNumber::parse(bad), Err(NhsError::Format), "{bad:?}");
        }
    }

    #[test]
    fn masked_shows_last_four_only() {
        let n = NhsNumber::parse("9434765919").unwrap();
        assert_eq!(n.masked(), "*** *** 5919");
        assert_eq!(format!("{n:?}"), "NhsNumber(*** *** 5919)");
    }

    proptest! {
        #[test]
        fn every_computed_check_digit_is_accepted_in_every_written_form(nine in 0u32..1_000_000_000) {
            if let Some(n) = with_check(nine) {
                let parsed = NhsNumber::parse(&n).unwrap();
                prop_assert_eq!(parsed.as_string(), n.clone());
                let spaced = format!("{} {} {}", &n[..3], &n[3..6], &n[6..]);
                let dashed = format!("{}-{}-{}", &n[..3], &n[3..6], &n[6..]);
                prop_assert_eq!(NhsNumber::parse(&spaced), Ok(parsed));
                prop_assert_eq!(NhsNumber::parse(&dashed), Ok(parsed));
            }
        }

        #[test]
        fn any_other_last_digit_is_a_check_digit_error(nine in 0u32..1_000_000_000, last in 0u8..10) {
            let s = format!("{nine:09}{last}");
            let good = with_check(nine);
            if good.as_deref() != Some(s.as_str()) {
                prop_assert_eq!(NhsNumber::parse(&s), Err(NhsError::CheckDigit));
            }
        }

        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,20}") {
            let _ = NhsNumber::parse(&s);
        }
    }
}
