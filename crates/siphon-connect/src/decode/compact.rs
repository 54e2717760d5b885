//! Canonical JSON text for JSON columns: the same value must be stored as the same text
//! whatever whitespace the server put around it, so comparisons, change detection and
//! dedup by record hash see equal values as equal. Only insignificant whitespace is
//! removed; members, escapes and number spellings are kept exactly as sent.

use std::borrow::Cow;

/// `json` without the whitespace outside its strings. Borrows when there is none (the
/// common case for machine-written JSON). The input must be valid JSON text.
pub(crate) fn compact_json(json: &str) -> Cow<'_, str> {
    // Valid JSON has no raw control characters, so a text without any byte <= b' ' has no
    // whitespace at all; the minimum is a branch-free (vectorizable) scan.
    if json.bytes().fold(u8::MAX, u8::min) > b' ' {
        return Cow::Borrowed(json);
    }
    match first_insignificant_whitespace(json.as_bytes()) {
        None => Cow::Borrowed(json),
        Some(at) => Cow::Owned(strip_from(json, at)),
    }
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

fn first_insignificant_whitespace(bytes: &[u8]) -> Option<usize> {
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if is_json_whitespace(b) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Copies `json` dropping whitespace outside strings, starting at `from`, a known
/// whitespace byte outside any string. Only ASCII bytes are dropped, so every slice
/// boundary is a char boundary.
fn strip_from(json: &str, from: usize) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    out.push_str(&json[..from]);
    let mut in_string = false;
    let mut start = from;
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if is_json_whitespace(b) {
            out.push_str(&json[start..i]);
            start = i + 1;
        }
        i += 1;
    }
    out.push_str(json.get(start..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_text_is_borrowed() {
        let text = r#"{"a":[1,2,{"b":"x y"}],"c":null}"#;
        assert!(matches!(compact_json(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn strips_whitespace_outside_strings_only() {
        let text = "{ \"a\" : [ 1 ,\n\t2 ] ,\r\n \"b c\" : \"d \\\" e\" }";
        assert_eq!(compact_json(text), r#"{"a":[1,2],"b c":"d \" e"}"#);
        assert_eq!(compact_json("[ \"\\\\\" , \"é  ü\" ]"), r#"["\\","é  ü"]"#);
    }
}
