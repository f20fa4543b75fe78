//! Token scopes: which requests a token may make.
//!
//! A scope list is either `["all"]` or a list of `"METHOD /path"` entries (Arvados conventions): an entry
//! allows exactly that method and path, or, when its path ends in `/`, every path under it. A `GET` scope
//! also allows `HEAD`. Lists are validated when built or deserialized, so a stored list is always usable.

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// HTTP methods a scope may name.
pub const SCOPE_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The scope that allows everything.
pub const ALL: &str = "all";

/// Longest scope entry accepted.
const MAX_SCOPE_LEN: usize = 1024;

/// A validated, non-empty list of scopes. Serializes as a JSON array of strings; deserializing validates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Scopes(Vec<String>);

fn check_scope(s: &str) -> Result<(), ParseError> {
    if s == ALL {
        return Ok(());
    }
    if s.len() > MAX_SCOPE_LEN {
        return Err(ParseError::new("scope", "too long"));
    }
    let Some((method, path)) = s.split_once(' ') else {
        return Err(ParseError::new("scope", "must be \"all\" or \"<METHOD> /<path>\""));
    };
    if !SCOPE_METHODS.contains(&method) {
        return Err(ParseError::new("scope", format!("method must be one of {}", SCOPE_METHODS.join(" "))));
    }
    if !path.starts_with('/') {
        return Err(ParseError::new("scope", "path must start with \"/\""));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') {
        return Err(ParseError::new("scope", "path must be printable ASCII without spaces, '?' or '#'"));
    }
    Ok(())
}

/// True when a request path has `.` or `..` segments (plain or percent-encoded), or empty segments,
/// which could otherwise slip out of a prefix scope.
fn has_suspicious_segments(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || path.contains('\\') {
        return true;
    }
    let decoded = lower.replace("%2e", ".");
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let n = segments.len();
    segments.iter().enumerate().any(|(i, seg)| *seg == "." || *seg == ".." || (seg.is_empty() && i + 1 != n))
}

impl Scopes {
    /// The unrestricted scope list, `["all"]`.
    pub fn all() -> Self {
        Self(vec![ALL.to_owned()])
    }

    /// Validates a list: non-empty, each entry `"all"` or `"<METHOD> /<path>"`.
    pub fn parse(scopes: Vec<String>) -> Result<Self, ParseError> {
        if scopes.is_empty() {
            return Err(ParseError::new("scope", "scope list must not be empty"));
        }
        for s in &scopes {
            check_scope(s)?;
        }
        Ok(Self(scopes))
    }

    /// True when the list is exactly `["all"]`.
    pub fn is_all(&self) -> bool {
        self.0.len() == 1 && self.0[0] == ALL
    }

    /// The entries, in order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether a request `method path` is allowed. A query string on `path` is ignored. `"all"` allows
    /// everything; otherwise an entry must match the method (a `GET` entry also allows `HEAD`) and the
    /// path exactly, or by prefix when the entry's path ends in `/`. Paths with dot or empty segments are
    /// refused by every entry but `"all"`.
    pub fn allows(&self, method: &str, path: &str) -> bool {
        if self.0.iter().any(|s| s == ALL) {
            return true;
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        if !path.starts_with('/') || has_suspicious_segments(path) {
            return false;
        }
        self.0.iter().any(|scope| {
            let Some((smethod, spath)) = scope.split_once(' ') else {
                return false;
            };
            let method_ok = smethod == method || (smethod == "GET" && method == "HEAD");
            let path_ok = spath == path || (spath.ends_with('/') && path.starts_with(spath));
            method_ok && path_ok
        })
    }
}

impl TryFrom<Vec<String>> for Scopes {
    type Error = ParseError;

    fn try_from(v: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(v)
    }
}

impl From<Scopes> for Vec<String> {
    fn from(s: Scopes) -> Self {
        s.0
    }
}

impl Default for Scopes {
    /// `["all"]`.
    fn default() -> Self {
        Self::all()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn scopes(v: &[&str]) -> Scopes {
        Scopes::parse(v.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn parse_table() {
        let ok: &[&[&str]] = &[
            &["all"],
            &["GET /arvados/v1/users/current"],
            &["GET /arvados/v1/collections/", "POST /arvados/v1/groups"],
            &["DELETE /x", "HEAD /", "PUT /a", "PATCH /b"],
        ];
        for v in ok {
            assert!(Scopes::parse(v.iter().map(|s| s.to_string()).collect()).is_ok(), "{v:?}");
        }
        let bad: &[&[&str]] = &[
            &[],
            &[""],
            &["ALL"],
            &["get /x"],
            &["GET x"],
            &["GET"],
            &["GET  /x"],
            &["FETCH /x"],
            &["GET /x y"],
            &["GET /x?a=b"],
            &["all", "GET /x\n"],
        ];
        for v in bad {
            let e = Scopes::parse(v.iter().map(|s| s.to_string()).collect()).unwrap_err();
            assert_eq!(e.what(), "scope");
        }
    }

    #[test]
    fn allows_table() {
        let all = Scopes::all();
        assert!(all.is_all());
        assert!(all.allows("DELETE", "/anything"));

        let s = scopes(&["GET /arvados/v1/users/current", "GET /arvados/v1/collections/"]);
        assert!(!s.is_all());
        let cases = [
            ("GET", "/arvados/v1/users/current", true),
            ("HEAD", "/arvados/v1/users/current", true),
            ("GET", "/arvados/v1/users/current?select=uuid", true),
            ("POST", "/arvados/v1/users/current", false),
            ("GET", "/arvados/v1/users/current/x", false),
            ("GET", "/arvados/v1/users", false),
            ("GET", "/arvados/v1/collections/", true),
            ("GET", "/arvados/v1/collections/zzzzz-4zz18-000000000000000", true),
            ("GET", "/arvados/v1/collections", false),
            ("GET", "/arvados/v1/collections/../users", false),
            ("GET", "/arvados/v1/collections/%2E%2E/users", false),
            ("GET", "/arvados/v1/collections/a%2fb", false),
            ("GET", "/arvados/v1/collections//x", false),
            ("get", "/arvados/v1/users/current", false),
            ("GET", "arvados/v1/users/current", false),
        ];
        for (m, p, want) in cases {
            assert_eq!(s.allows(m, p), want, "{m} {p}");
        }
        assert!(scopes(&["HEAD /x"]).allows("HEAD", "/x"));
        assert!(!scopes(&["HEAD /x"]).allows("GET", "/x"));
    }

    #[test]
    fn serde() {
        let s = scopes(&["GET /a", "POST /b/"]);
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"["GET /a","POST /b/"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&j).unwrap(), s);
        assert!(serde_json::from_str::<Scopes>("[]").is_err());
        assert!(serde_json::from_str::<Scopes>(r#"["nope"]"#).is_err());
        assert_eq!(serde_json::to_string(&Scopes::all()).unwrap(), r#"["all"]"#);
    }
}
