//! Serde for types that travel as one validated string (cluster ids, object uuids).
//!
//! Serializing writes the `Display` form straight into the output; deserializing parses the
//! borrowed string with `FromStr`. Neither makes an intermediate `String`: a merge decodes and
//! encodes a few hundred thousand records, each holding several uuids.

/// Implements `Serialize` (via `Display`) and `Deserialize` (via `FromStr`) for `$t`; `$what` names
/// the expected string in error messages.
macro_rules! text_serde {
    ($t:ty, $what:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

pub(crate) use text_serde;
