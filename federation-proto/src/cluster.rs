//! Cluster ids: the 5-character names of federated clusters (`^[a-z0-9]{5}$`).
//!
//! A `ClusterId` can only be built valid (by `FromStr` or by deserializing), so code that holds one never
//! re-checks the string. The id prefixes every object uuid the cluster issues, which is how the home
//! cluster of a user or a token is recognised.

use std::fmt;
use std::str::FromStr;

use crate::error::ParseError;

/// Length of a cluster id, in ASCII characters.
pub const CLUSTER_ID_LEN: usize = 5;

/// A validated cluster id: exactly five characters from `[a-z0-9]`.
///
/// Serializes as a plain JSON string; deserializing validates. Held inline (no allocation), so
/// that copying one — every object uuid holds one — is cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId([u8; CLUSTER_ID_LEN]);

crate::text_serde::text_serde!(ClusterId, "a cluster id");

/// True when `b` is in `[a-z0-9]`, the alphabet of cluster ids and uuid parts.
pub(crate) fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl ClusterId {
    /// The id as a string slice (always 5 characters of `[a-z0-9]`).
    pub fn as_str(&self) -> &str {
        // Only ever built from five ASCII characters.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl FromStr for ClusterId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != CLUSTER_ID_LEN {
            return Err(ParseError::new("cluster id", format!("must be {CLUSTER_ID_LEN} characters, got {}", s.len())));
        }
        if !s.bytes().all(is_lower_alnum) {
            return Err(ParseError::new("cluster id", "must match [a-z0-9]{5}"));
        }
        let mut id = [0; CLUSTER_ID_LEN];
        id.copy_from_slice(s.as_bytes());
        Ok(Self(id))
    }
}

impl TryFrom<String> for ClusterId {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ClusterId> for String {
    fn from(c: ClusterId) -> Self {
        c.as_str().to_owned()
    }
}

impl AsRef<str> for ClusterId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_valid_ids() {
        for ok in ["aaaaa", "zzzzz", "a1b2c", "00000", "zmock"] {
            let c: ClusterId = ok.parse().unwrap();
            assert_eq!(c.as_str(), ok);
            assert_eq!(c.to_string(), ok);
        }
    }

    #[test]
    fn refuses_invalid_ids() {
        for bad in ["", "aaaa", "aaaaaa", "AAAAA", "aaaa-", "aaa a", " aaaaa", "aaaaa\n", "ääää", "aaaé", "a_aaa"]
        {
            let e = bad.parse::<ClusterId>().unwrap_err();
            assert_eq!(e.what(), "cluster id", "{bad:?}");
        }
    }

    #[test]
    fn serde_as_validated_string() {
        let c: ClusterId = "abcde".parse().unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"abcde\"");
        assert_eq!(serde_json::from_str::<ClusterId>("\"abcde\"").unwrap(), c);
        assert!(serde_json::from_str::<ClusterId>("\"ABCDE\"").is_err());
        assert!(serde_json::from_str::<ClusterId>("12345").is_err());
    }

    proptest! {
        #[test]
        fn round_trip(s in "[a-z0-9]{5}") {
            let c: ClusterId = s.parse().unwrap();
            prop_assert_eq!(c.to_string(), s.clone());
            prop_assert_eq!(c.to_string().parse::<ClusterId>().unwrap(), c);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            if let Ok(c) = s.parse::<ClusterId>() {
                prop_assert_eq!(c.as_str(), s.as_str());
            }
        }
    }
}
