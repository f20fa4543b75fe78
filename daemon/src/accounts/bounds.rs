//! Bounds on everything users may store or ask a list for, in one place (README "Bounds" lists
//! them). A value beyond its bound is refused with 422 naming the field (`too_long`, `too_many`),
//! before anything is read or written, so a refused request changes nothing.
//!
//! Why bounds at all: every list request scans, filters and sorts the stored views, so the size of
//! what one user may store is also the cost of every list request of every user. The numbers are
//! ones a real deployment can live with (Arvados' own columns are `varchar(255)` for names and
//! classes; SMTP allows 254 bytes of address), and together they keep one object well under
//! the request body limit.
//!
//! Characters are Unicode scalar values (what a person counts); sizes in bytes are UTF-8, and for
//! JSON values (properties, prefs, filter operands) bytes of their compact serialization.

use super::error::{Error, Result};
use serde_json::{Map, Value};

/// A request body ([`MAX_BODY`](crate::http::params::MAX_BODY) is this).
pub const MAX_REQUEST_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `name` of groups, collections, links and SSH keys.
pub const MAX_NAME_CHARS: usize = 255;
/// `description` of groups and collections.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// `manifest_text` of collections: half the request body limit, so that a manifest at the bound
/// still fits in a request with JSON escaping and the other attributes.
pub const MAX_MANIFEST_TEXT_BYTES: usize = MAX_REQUEST_BODY_BYTES / 2;
/// `link_class` of links.
pub const MAX_LINK_CLASS_CHARS: usize = 255;
/// `key_type` of SSH keys.
pub const MAX_KEY_TYPE_CHARS: usize = 64;
/// `public_key` of SSH keys (a 16384-bit RSA key with a long comment is under 3 KiB).
pub const MAX_PUBLIC_KEY_BYTES: usize = 16 * 1024;
/// `properties` of groups, collections and links, and a user's `prefs`, serialized.
pub const MAX_PROPERTIES_BYTES: usize = 64 * 1024;
/// One key of `properties` or `prefs`.
pub const MAX_PROPERTY_KEY_CHARS: usize = 255;
/// One value of `properties` or `prefs`, serialized.
pub const MAX_PROPERTY_VALUE_BYTES: usize = 16 * 1024;
/// A user's `email` (RFC 5321's limit on an address).
pub const MAX_EMAIL_BYTES: usize = 254;
/// A user's `username`.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Bytes of a login name as typed (trimmed): a username or an email, so no longer than an email.
/// Its counters in the login throttle are keyed by it (on PostgreSQL, rows of the store).
pub const MAX_LOGIN_BYTES: usize = MAX_EMAIL_BYTES;
/// A user's `first_name` and `last_name`.
pub const MAX_PERSON_NAME_CHARS: usize = 255;
/// Entries of a token's `scopes`.
pub const MAX_SCOPES: usize = 100;
/// One entry of a token's `scopes`.
pub const MAX_SCOPE_BYTES: usize = 1024;
/// A time given as a string (`expires_at`).
pub const MAX_TIME_BYTES: usize = 64;
/// Any other string attribute a request may name (uuids, `group_class`, `api_client_id`, …).
pub const MAX_SHORT_STRING_BYTES: usize = 255;

/// Filters of one list request.
pub const MAX_FILTERS: usize = 64;
/// A filter operand (a `like` pattern, a value compared with): characters of a string, or bytes
/// of any other JSON value; for a list operand (`in`, `not in`, `is_a`), of each element.
pub const MAX_FILTER_OPERAND_CHARS: usize = 1024;
/// Elements of a list operand (`in`, `not in`, `is_a`): as many as the largest page.
pub const MAX_FILTER_LIST: usize = 1000;
/// Entries of `order`.
pub const MAX_ORDER: usize = 16;
/// Entries of `select`.
pub const MAX_SELECT: usize = 100;
/// An attribute name in `filters`, `order` or `select` (or one `order` entry with its direction).
pub const MAX_ATTRIBUTE_CHARS: usize = 255;
/// Bytes of the items of one list page (at least one item is always returned): past it the page
/// is cut short and its `limit` says so, as Arvados does past `MaxIndexDatabaseRead`.
pub const MAX_LIST_PAGE_BYTES: usize = 64 * 1024 * 1024;

// Every attribute at its bound fits in one request body.
const _: () = assert!(
    MAX_MANIFEST_TEXT_BYTES + MAX_DESCRIPTION_BYTES + MAX_PROPERTIES_BYTES + 4 * MAX_NAME_CHARS
        < MAX_REQUEST_BODY_BYTES
);

/// How one attribute of a resource is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A string of at most this many characters.
    Chars(usize),
    /// A string of at most this many bytes.
    Bytes(usize),
    /// An object within the `properties` bounds.
    Properties,
}

/// Checks the attributes of a create or update against `table` (attribute, bound); any other
/// string attribute gets [`MAX_SHORT_STRING_BYTES`]. Values of the wrong type are left to the
/// resource's own checks, which name them.
pub fn check_attrs(attrs: &Map<String, Value>, table: &[(&str, Bound)]) -> Result<()> {
    for (k, v) in attrs {
        check_no_nul(k, v)?;
        let bound = table.iter().find(|(name, _)| name == k).map(|(_, b)| *b);
        match (bound, v) {
            (Some(Bound::Chars(max)), Value::String(s)) => check_chars(k, s, max)?,
            (Some(Bound::Bytes(max)), Value::String(s)) => check_bytes(k, s, max)?,
            (Some(Bound::Properties), Value::Object(m)) => check_properties(k, m)?,
            (None, Value::String(s)) => check_bytes(&excerpt(k), s, MAX_SHORT_STRING_BYTES)?,
            _ => {}
        }
    }
    Ok(())
}

/// Refuses U+0000 anywhere in a stored value, its keys included (422 `nul_character` naming the
/// attribute): PostgreSQL's `text` and `jsonb` cannot hold it (Arvados, which stores attributes
/// there, refuses it too), and what one backend stores the other must take. The walk goes as deep
/// as the JSON parser let the value be.
pub fn check_no_nul(field: &str, v: &Value) -> Result<()> {
    let has_nul = |s: &str| s.contains('\0');
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        let found = match v {
            Value::String(s) => has_nul(s),
            Value::Array(a) => {
                stack.extend(a);
                false
            }
            Value::Object(m) => {
                stack.extend(m.values());
                m.keys().any(|k| has_nul(k))
            }
            _ => false,
        };
        if found {
            return Err(Error::unprocessable(
                "nul_character",
                format!("{} must not contain the character U+0000 (NUL)", excerpt(field)),
            ));
        }
    }
    Ok(())
}

/// The refusal for a value beyond its bound: 422 `too_long` naming the field.
pub fn too_long(field: &str, max: usize, unit: &str) -> Error {
    Error::unprocessable("too_long", format!("{field} is too long: at most {max} {unit}"))
}

/// The refusal for a list with too many entries: 422 `too_many` naming the field.
pub fn too_many(field: &str, max: usize, what: &str) -> Error {
    Error::unprocessable("too_many", format!("{field} has too many {what}: at most {max}"))
}

/// Whether `s` has at most `max` characters (stops counting after `max + 1`).
pub fn within_chars(s: &str, max: usize) -> bool {
    s.len() <= max || s.chars().nth(max).is_none()
}

/// `s` has at most `max` characters, else [`too_long`].
pub fn check_chars(field: &str, s: &str, max: usize) -> Result<()> {
    if within_chars(s, max) { Ok(()) } else { Err(too_long(field, max, "characters")) }
}

/// `s` has at most `max` bytes, else [`too_long`].
pub fn check_bytes(field: &str, s: &str, max: usize) -> Result<()> {
    if s.len() <= max { Ok(()) } else { Err(too_long(field, max, "bytes")) }
}

/// Counts bytes written and gives up once past a bound, so that measuring a huge value costs no
/// more than the bound.
struct Meter {
    written: usize,
    max: usize,
}

impl std::io::Write for Meter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.max { Err(std::io::Error::other("over the bound")) } else { Ok(buf.len()) }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `v`, serialized compactly, has at most `max` bytes.
pub fn json_within(v: &impl serde::Serialize, max: usize) -> bool {
    serde_json::to_writer(Meter { written: 0, max }, v).is_ok()
}

/// The bytes of `v` serialized compactly.
pub fn json_len(v: &impl serde::Serialize) -> usize {
    let mut m = Meter { written: 0, max: usize::MAX };
    let _ = serde_json::to_writer(&mut m, v);
    m.written
}

/// `v` serialized has at most `max` bytes, else [`too_long`].
pub fn check_json(field: &str, v: &Value, max: usize) -> Result<()> {
    if json_within(v, max) { Ok(()) } else { Err(too_long(field, max, "bytes serialized")) }
}

/// A `properties` or `prefs` object: the whole, each key and each value within their bounds.
pub fn check_properties(field: &str, props: &Map<String, Value>) -> Result<()> {
    for (k, v) in props {
        if !within_chars(k, MAX_PROPERTY_KEY_CHARS) {
            return Err(too_long(&format!("{field}: a key"), MAX_PROPERTY_KEY_CHARS, "characters"));
        }
        if !json_within(v, MAX_PROPERTY_VALUE_BYTES) {
            return Err(too_long(&format!("{field}[{k:?}]"), MAX_PROPERTY_VALUE_BYTES, "bytes serialized"));
        }
    }
    // Checked after the keys and values so that the message names the entry when one is the cause.
    if json_within(props, MAX_PROPERTIES_BYTES) {
        Ok(())
    } else {
        Err(too_long(field, MAX_PROPERTIES_BYTES, "bytes serialized"))
    }
}

/// At most 64 characters of `s` for a message (an ellipsis marks a cut): a refusal never echoes
/// a huge value back.
pub fn excerpt(s: &str) -> String {
    const KEEP: usize = 64;
    match s.char_indices().nth(KEEP) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_refused_anywhere_in_a_stored_value() {
        let table = [("name", Bound::Chars(MAX_NAME_CHARS)), ("properties", Bound::Properties)];
        for bad in [
            json!({"name": "a\u{0}b"}),
            json!({"properties": {"k": "x\u{0}"}}),
            json!({"properties": {"k\u{0}": 1}}),
            json!({"properties": {"deep": [1, {"deeper": ["\u{0}"]}]}}),
            json!({"group_class": "\u{0}"}),
        ] {
            let e = check_attrs(bad.as_object().unwrap(), &table).unwrap_err();
            assert_eq!(e.code, "nul_character", "{bad}");
            assert!(e.message.contains("U+0000"), "{}", e.message);
        }
        let fine = json!({"name": "a\\u{0}b", "properties": {"k": "\u{1} tab\t é"}});
        assert!(check_attrs(fine.as_object().unwrap(), &table).is_ok());
    }

    #[test]
    fn characters_and_bytes() {
        assert!(check_chars("name", &"é".repeat(255), MAX_NAME_CHARS).is_ok());
        let e = check_chars("name", &"é".repeat(256), MAX_NAME_CHARS).unwrap_err();
        assert_eq!(e.code, "too_long");
        assert!(e.message.starts_with("name is too long"), "{}", e.message);
        assert!(check_bytes("email", &"a".repeat(254), MAX_EMAIL_BYTES).is_ok());
        assert!(check_bytes("email", &"é".repeat(128), MAX_EMAIL_BYTES).is_err());
    }

    #[test]
    fn json_sizes_are_measured_without_serializing_all_of_a_huge_value() {
        let v = json!({"k": "x".repeat(10)});
        let exact = serde_json::to_vec(&v).unwrap().len();
        assert!(json_within(&v, exact));
        assert!(!json_within(&v, exact - 1));
        let big = json!("x".repeat(4 << 20));
        assert!(!json_within(&big, MAX_PROPERTY_VALUE_BYTES));
    }

    #[test]
    fn properties_name_the_entry_at_fault() {
        let ok = json!({"a": "x".repeat(MAX_PROPERTY_VALUE_BYTES - 2)});
        assert!(check_properties("properties", ok.as_object().unwrap()).is_ok());
        let long_value = json!({"a": "x".repeat(MAX_PROPERTY_VALUE_BYTES)});
        let e = check_properties("properties", long_value.as_object().unwrap()).unwrap_err();
        assert!(e.message.starts_with("properties[\"a\"] is too long"), "{}", e.message);
        let long_key = json!({"k".repeat(256): 1});
        let e = check_properties("properties", long_key.as_object().unwrap()).unwrap_err();
        assert!(e.message.starts_with("properties: a key is too long"), "{}", e.message);
        let many: Map<String, Value> = (0..10).map(|i| (format!("k{i}"), json!("x".repeat(8000)))).collect();
        let e = check_properties("prefs", &many).unwrap_err();
        assert!(e.message.starts_with("prefs is too long"), "{}", e.message);
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt("abc"), "abc");
        assert_eq!(excerpt(&"é".repeat(1000)).chars().count(), 65);
    }
}
