//! Borrowed views of JSON text: object keys that borrow from the page when they hold no
//! escapes, and a JSON value's raw text classified into a [`Scalar`] without building a
//! `serde_json::Value`. This is what keeps the hot path free of per-record trees.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::cell::Scalar;

/// Deserializes an object key, borrowing it from the input when it has no escapes.
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The members of a JSON object in document order, values left as raw text.
pub(crate) fn object_entries(json: &str) -> serde_json::Result<Vec<(Cow<'_, str>, &RawValue)>> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some(key) = map.next_key_seed(KeySeed)? {
                entries.push((key, map.next_value()?));
            }
            Ok(entries)
        }
    }
    serde_json::Deserializer::from_str(json).deserialize_map(Entries)
}

/// The elements of a JSON array, as raw text.
pub(crate) fn array_elements(json: &str) -> serde_json::Result<Vec<&RawValue>> {
    serde_json::from_str(json)
}

/// Classifies the raw text of one valid JSON value. Strings are unescaped only when they
/// hold an escape; numbers keep their literal text.
pub(crate) fn scalar_of(raw: &str) -> Scalar<'_> {
    match raw.as_bytes().first() {
        Some(b'n') => Scalar::Null,
        Some(b't') => Scalar::Bool(true),
        Some(b'f') => Scalar::Bool(false),
        Some(b'"') => Scalar::String(unquote(raw)),
        Some(b'{' | b'[') => Scalar::Nested(raw),
        _ => Scalar::Number(raw),
    }
}

fn unquote(raw: &str) -> Cow<'_, str> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if !inner.as_bytes().contains(&b'\\') {
        return Cow::Borrowed(inner);
    }
    match serde_json::from_str::<String>(raw) {
        Ok(unescaped) => Cow::Owned(unescaped),
        Err(_) => Cow::Borrowed(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_from_raw_text() {
        assert_eq!(scalar_of("null"), Scalar::Null);
        assert_eq!(scalar_of("true"), Scalar::Bool(true));
        assert_eq!(scalar_of("false"), Scalar::Bool(false));
        assert_eq!(scalar_of("-1.50e3"), Scalar::Number("-1.50e3"));
        assert_eq!(
            scalar_of(r#""plain""#),
            Scalar::String(Cow::Borrowed("plain"))
        );
        assert_eq!(
            scalar_of(r#""a\"b\u00e9""#),
            Scalar::String(Cow::Owned("a\"bé".into()))
        );
        assert_eq!(scalar_of("[1, 2]"), Scalar::Nested("[1, 2]"));
    }

    #[test]
    fn entries_borrow_plain_keys_and_keep_order() {
        let entries = object_entries(r#"{"b": 1, "a\n": [2], "b": 3}"#).unwrap();
        let shown: Vec<(&str, &str, bool)> = entries
            .iter()
            .map(|(k, v)| (k.as_ref(), v.get(), matches!(k, Cow::Borrowed(_))))
            .collect();
        assert_eq!(
            shown,
            vec![("b", "1", true), ("a\n", "[2]", false), ("b", "3", true)]
        );
    }
}
