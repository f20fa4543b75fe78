//! Canonical JSON: the one byte string that is signed for a JSON value.
//!
//! Signer and verifier must hash the same bytes, so signed objects are written in a single canonical form:
//! object keys sorted by Unicode code point (byte order of their UTF-8), no insignificant whitespace,
//! strings escaped as `serde_json` escapes them (`\"`, `\\`, the short escapes `\b \f \n \r \t`, other
//! control characters as `\u00XX`, everything else raw UTF-8), and numbers only as integers in
//! `[-(2^53-1), 2^53-1]` (floats are refused: their text form is not portable). Keys are sorted here,
//! explicitly, so the result does not depend on whether `serde_json`'s `preserve_order` feature is on.
//!
//! Foreign JSON that is going to be verified is read with [`from_strict_slice`] (or the equivalent
//! [`StrictValue`] deserializer), which also refuses duplicate object keys, so two parsers can never
//! disagree about what was signed.

use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ProtoError;

/// The largest integer canonical JSON carries, `2^53 - 1` (the smallest is its negation).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Writes `value` as canonical JSON.
pub fn canonical_json(value: &Value) -> Result<String, ProtoError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

/// Serializes `value` with serde and writes it as canonical JSON.
pub fn to_canonical_string<T: Serialize + ?Sized>(value: &T) -> Result<String, ProtoError> {
    let v = serde_json::to_value(value).map_err(|e| ProtoError::NotCanonical(e.to_string()))?;
    canonical_json(&v)
}

/// Parses JSON text strictly: duplicate object keys, floats and integers outside ±(2^53−1) are errors.
pub fn from_strict_slice(bytes: &[u8]) -> Result<Value, ProtoError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue::deserialize(&mut de)?;
    de.end()?;
    Ok(v.0)
}

fn check_integer(i: i128) -> Result<(), ProtoError> {
    if i.abs() > i128::from(MAX_SAFE_INTEGER) {
        return Err(ProtoError::NotCanonical(format!("integer {i} is outside ±(2^53-1)")));
    }
    Ok(())
}

fn write_value(out: &mut String, value: &Value) -> Result<(), ProtoError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let i = if let Some(i) = n.as_i64() {
                i128::from(i)
            } else if let Some(u) = n.as_u64() {
                i128::from(u)
            } else {
                return Err(ProtoError::NotCanonical("floating-point numbers are not allowed".into()));
            };
            check_integer(i)?;
            // Writing to a String cannot fail.
            let _ = write!(out, "{i}");
        }
        Value::String(s) => write_string(out, s)?,
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) -> Result<(), ProtoError> {
    let quoted = serde_json::to_string(s).map_err(|e| ProtoError::NotCanonical(e.to_string()))?;
    out.push_str(&quoted);
    Ok(())
}

fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), ProtoError> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // `str`'s order is byte order of UTF-8, which is code-point order.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (n, (k, v)) in entries.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_string(out, k)?;
        out.push(':');
        write_value(out, v)?;
    }
    out.push('}');
    Ok(())
}

/// A JSON value read strictly: no duplicate keys, no floats, integers within ±(2^53−1).
///
/// Use it as a field type (or through [`from_strict_slice`]) wherever foreign JSON will be verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> DeserializeSeed<'de> for StrictVisitor {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("canonical JSON (integers only, no duplicate keys)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        check_integer(i128::from(v)).map_err(E::custom)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        check_integer(i128::from(v)).map_err(E::custom)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Value, E> {
        Err(E::custom("floating-point numbers are not allowed"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictVisitor)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?} in object")));
            }
            let value = access.next_value_seed(StrictVisitor)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": 1, "a": [true, null, {"z": "x", "y": -2}], "": "e", "é": 0, "Z": 0});
        assert_eq!(canonical_json(&v).unwrap(), r#"{"":"e","Z":0,"a":[true,null,{"y":-2,"z":"x"}],"b":1,"é":0}"#);
    }

    #[test]
    fn code_point_order_not_utf16_order() {
        // U+FF61 sorts before U+1F600 by code point, but after it in UTF-16 code units.
        let v = json!({"\u{1F600}": 1, "\u{FF61}": 2});
        assert_eq!(canonical_json(&v).unwrap(), "{\"\u{FF61}\":2,\"\u{1F600}\":1}");
    }

    #[test]
    fn escapes() {
        let v = json!({"s": "q\"b\\n\n\u{1}/é\u{7f}"});
        assert_eq!(canonical_json(&v).unwrap(), "{\"s\":\"q\\\"b\\\\n\\n\\u0001/é\u{7f}\"}");
    }

    #[test]
    fn integer_range() {
        assert!(canonical_json(&json!(MAX_SAFE_INTEGER)).is_ok());
        assert!(canonical_json(&json!(-MAX_SAFE_INTEGER)).is_ok());
        assert!(canonical_json(&json!(MAX_SAFE_INTEGER + 1)).is_err());
        assert!(canonical_json(&json!(-MAX_SAFE_INTEGER - 1)).is_err());
        assert!(canonical_json(&json!(u64::MAX)).is_err());
        assert!(canonical_json(&json!(1.5)).is_err());
        assert!(canonical_json(&json!(1.0)).is_err());
        let e = to_canonical_string(&json!({"a": [0.1]})).unwrap_err();
        assert_eq!(e.code(), "not_canonical");
    }

    #[test]
    fn strict_parse() {
        assert_eq!(
            from_strict_slice(br#"{"a": 1, "b": [1, "x", null]}"#).unwrap(),
            json!({"a": 1, "b": [1, "x", null]})
        );
        for bad in [
            &br#"{"a": 1, "a": 2}"#[..],
            br#"{"x": {"a": 1, "a": 1}}"#,
            br#"[1.0]"#,
            br#"[1e3]"#,
            br#"[9007199254740992]"#,
            br#"[-9007199254740992]"#,
            br#"{"a": 1} x"#,
            br#"{"a": "\ud800"}"#,
            b"",
        ] {
            assert!(from_strict_slice(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((".{0,6}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn stable_under_key_reordering(v in arb_json()) {
            let c1 = canonical_json(&v).unwrap();
            // Rebuild every object with its keys in reverse insertion order.
            fn reorder(v: &Value) -> Value {
                match v {
                    Value::Object(m) => {
                        let mut entries: Vec<_> = m.iter().map(|(k, v)| (k.clone(), reorder(v))).collect();
                        entries.reverse();
                        Value::Object(entries.into_iter().collect())
                    }
                    Value::Array(a) => Value::Array(a.iter().map(reorder).collect()),
                    other => other.clone(),
                }
            }
            prop_assert_eq!(&canonical_json(&reorder(&v)).unwrap(), &c1);
            // Canonical output re-parses (strictly) to the same value and is a fixed point.
            let back = from_strict_slice(c1.as_bytes()).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(canonical_json(&back).unwrap(), c1.clone());
            // And it agrees with serde_json's compact writer up to key order.
            prop_assert_eq!(serde_json::from_str::<Value>(&c1).unwrap(), v);
        }
    }
}
