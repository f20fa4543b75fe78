//! The one place that reads the wall clock.
//!
//! Everything that depends on time (token expiry, throttling windows, audit timestamps) takes a
//! [`Clock`] so that tests can move time by hand instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// A source of the current time.
#[derive(Clone)]
pub enum Clock {
    /// The system clock.
    System,
    /// A clock that only moves when told to (nanoseconds since the epoch).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `unix_secs`.
    pub fn manual(unix_secs: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(unix_secs.saturating_mul(1_000_000_000))))
    }

    /// The current time.
    pub fn now(&self) -> OffsetDateTime {
        match self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Manual(ns) => OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns.load(Ordering::SeqCst)))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// The current time in whole seconds since the epoch.
    pub fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance(&self, secs: i64) {
        if let Clock::Manual(ns) = self {
            ns.fetch_add(secs.saturating_mul(1_000_000_000), Ordering::SeqCst);
        }
    }
}

/// Formats a time the way Arvados does: RFC 3339, UTC, nanoseconds.
pub fn format_time(t: OffsetDateTime) -> String {
    ArvTime(t).to_string()
}

/// A time displayed the way Arvados writes it (see [`format_time`]).
struct ArvTime(OffsetDateTime);

impl std::fmt::Display for ArvTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        // Every answer shows a few of these: digits into a stack buffer cost a fraction of the
        // formatting machinery. Years outside 0..=9999 (never stored) take the general path.
        if let Ok(year) = u32::try_from(t.year())
            && year <= 9999
        {
            let mut b = *b"0000-00-00T00:00:00.000000000Z";
            let mut put = |at: usize, width: usize, mut v: u32| {
                for i in (at..at + width).rev() {
                    b[i] = b'0' + (v % 10) as u8;
                    v /= 10;
                }
            };
            put(0, 4, year);
            put(5, 2, u32::from(u8::from(t.month())));
            put(8, 2, u32::from(t.day()));
            put(11, 2, u32::from(t.hour()));
            put(14, 2, u32::from(t.minute()));
            put(17, 2, u32::from(t.second()));
            put(20, 9, t.nanosecond());
            return f.write_str(std::str::from_utf8(&b).map_err(|_| std::fmt::Error)?);
        }
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond()
        )
    }
}

/// Reads an RFC 3339 string without copying it first.
struct TimeVisitor;

impl serde::de::Visitor<'_> for TimeVisitor {
    type Value = OffsetDateTime;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an RFC 3339 time")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OffsetDateTime, E> {
        parse_time(v).ok_or_else(|| E::custom("bad timestamp"))
    }
}

/// Parses an RFC 3339 time as clients send it.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Serde adapter storing times in the Arvados text form.
pub mod arv_time {
    use super::{ArvTime, TimeVisitor};
    use serde::{Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Serializes a time as RFC 3339 with nanoseconds.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&ArvTime(*t))
    }

    /// Deserializes an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        d.deserialize_str(TimeVisitor)
    }

    /// The same for optional times.
    pub mod option {
        use super::super::{ArvTime, TimeVisitor};
        use serde::{Deserializer, Serializer};
        use time::OffsetDateTime;

        /// Serializes an optional time (null when absent).
        pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.collect_str(&ArvTime(*t)),
                None => s.serialize_none(),
            }
        }

        /// Deserializes an optional RFC 3339 time.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
            struct Opt;
            impl<'de> serde::de::Visitor<'de> for Opt {
                type Value = Option<OffsetDateTime>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an RFC 3339 time or null")
                }
                fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }
                fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                    Ok(None)
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                    d.deserialize_str(TimeVisitor).map(Some)
                }
            }
            d.deserialize_option(Opt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_written_as_arvados_writes_them() {
        assert_eq!(format_time(datetime!(2024-01-02 03:04:05 UTC)), "2024-01-02T03:04:05.000000000Z");
        assert_eq!(format_time(datetime!(1999-12-31 23:59:59.123456789 UTC)), "1999-12-31T23:59:59.123456789Z");
        assert_eq!(format_time(datetime!(0005-06-07 08:09:10.000000001 UTC)), "0005-06-07T08:09:10.000000001Z");
        // Converted to UTC first.
        assert_eq!(format_time(datetime!(2024-01-02 03:04:05 +02:00)), "2024-01-02T01:04:05.000000000Z");
        // Outside four-digit years, the general path (never stored; written as before).
        assert_eq!(format_time(datetime!(-0001-01-01 00:00:00 UTC)), "-001-01-01T00:00:00.000000000Z");
    }
}
