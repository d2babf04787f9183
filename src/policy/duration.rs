//! Durations in the policy file: `500ms`, `90s`, `15m`, `2h`, `7d`, or a number of seconds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(s: &str) -> Result<HumanDuration, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not a duration: write e.g. 90s, 15m, 2h or 7d");
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let secs = |factor: u64| {
            n.checked_mul(factor)
                .map(Duration::from_secs)
                .ok_or_else(bad)
        };
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "" | "s" => secs(1)?,
            "m" => secs(60)?,
            "h" => secs(3600)?,
            "d" => secs(86_400)?,
            _ => return Err(format!("`{s}` has an unknown unit: use ms, s, m, h or d")),
        };
        Ok(HumanDuration(d))
    }
}

impl fmt::Display for HumanDuration {
    /// The largest unit that represents the duration exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            return write!(f, "{ms}ms");
        }
        let s = self.0.as_secs();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s != 0 && s % size == 0 {
                return write!(f, "{}{unit}", s / size);
            }
        }
        write!(f, "{s}s")
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 90s, 15m, 2h or 7d")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_secs(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                u64::try_from(v)
                    .map(|v| HumanDuration(Duration::from_secs(v)))
                    .map_err(|_| E::custom(format!("`{v}` is negative: a duration cannot be")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: 500ms, 90s, 15m, 2h, 7d, or a number of seconds.",
            "oneOf": [
                { "type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)?$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, secs, shown) in [
            ("90s", 90, "90s"),
            ("15m", 900, "15m"),
            ("2h", 7200, "2h"),
            ("7d", 604_800, "7d"),
            ("120", 120, "2m"),
            ("0s", 0, "0s"),
        ] {
            let d = HumanDuration::parse(text).unwrap();
            assert_eq!(d.0, Duration::from_secs(secs), "{text}");
            assert_eq!(d.to_string(), shown);
        }
        assert_eq!(
            HumanDuration::parse("1500ms").unwrap().to_string(),
            "1500ms"
        );
        assert!(HumanDuration::parse("soon")
            .unwrap_err()
            .contains("not a duration"));
        assert!(HumanDuration::parse("5w")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(HumanDuration::parse("-5s").is_err());
        assert!(HumanDuration::parse("99999999999999999999d").is_err());
    }
}
