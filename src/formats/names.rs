//! The names of columns and metadata keys in their three spellings: snake_case
//! (CSV, and the hub's own), PascalCase (XML elements) and camelCase (XML
//! attributes), SPEC §2.1.

/// `nhs_number` -> `NhsNumber`
pub(crate) fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `extractedAt` / `NhsNumber` -> `extracted_at` / `nhs_number`
pub(crate) fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower_or_digit = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower_or_digit {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower_or_digit = false;
        } else {
            out.push(c);
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// `extracted_at` -> `extractedAt`
pub(crate) fn camel(snake: &str) -> String {
    let p = pascal(snake);
    let mut chars = p.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_between_cases() {
        assert_eq!(pascal("out_of_hours_phone"), "OutOfHoursPhone");
        assert_eq!(snake("OutOfHoursPhone"), "out_of_hours_phone");
        assert_eq!(camel("extracted_at"), "extractedAt");
        assert_eq!(snake("extractedAt"), "extracted_at");
    }
}
