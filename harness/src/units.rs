//! Value types of scenario files: durations, rates, ranges, probabilities and
//! host patterns, each parsed from the string a person writes ("250ms",
//! "200/s", "1s..5s", "replica-*").
//!
//! Parsing is strict: a value that does not parse is an error that says what
//! was expected, never a silent default. Nothing here knows about scenarios or
//! runs; `scenario.rs` attaches positions to these errors.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A span of simulated time, written like "250ms", "5s", "1m 30s" (humantime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// No time at all: the start of a run.
    pub const ZERO: Dur = Dur(Duration::ZERO);

    /// `ms` milliseconds.
    pub fn from_millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }

    /// `s` seconds.
    pub fn from_secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    /// The span in nanoseconds, the unit of the history's `Nanos`
    /// (saturating at `u64::MAX`, some 584 years).
    pub fn as_nanos(self) -> u64 {
        u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Parses a duration as a scenario file writes it: a number with a unit
    /// ("250ms", "5s", "1m 30s"); a bare number is an error. At most
    /// [`Dur::MAX`].
    pub fn parse(text: &str) -> Result<Dur, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("expected a duration such as \"250ms\" or \"5s\", found an empty string".into());
        }
        let duration = humantime::parse_duration(text)
            .map(Dur)
            .map_err(|error| format!("expected a duration such as \"250ms\" or \"5s\", found {text:?} ({error})"))?;
        if duration > Dur::MAX {
            return Err(format!("{text:?} is longer than the 30 days a scenario may use"));
        }
        Ok(duration)
    }

    /// The longest duration a scenario may write: a month of simulated
    /// time, far beyond any run, and far from overflowing when added up.
    pub const MAX: Dur = Dur(Duration::from_secs(30 * 24 * 3600));
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_duration(self.0))
    }
}

/// Formats a duration compactly and exactly ("1.5s", "250ms", "3µs", "0s").
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let (unit, scale) = if nanos.is_multiple_of(1_000_000_000) || nanos >= 10_000_000_000 {
        ("s", 1_000_000_000u128)
    } else if nanos >= 1_000_000 {
        if nanos >= 1_000_000_000 {
            ("s", 1_000_000_000)
        } else {
            ("ms", 1_000_000)
        }
    } else if nanos >= 1_000 {
        ("µs", 1_000)
    } else {
        ("ns", 1)
    };
    let whole = nanos / scale;
    let frac = nanos % scale;
    if frac == 0 {
        return format!("{whole}{unit}");
    }
    // Up to three decimals, trailing zeros trimmed.
    let digits = scale.ilog10() as usize;
    let mut frac_text = format!("{frac:0digits$}");
    frac_text.truncate(3);
    let frac_text = frac_text.trim_end_matches('0');
    if frac_text.is_empty() {
        format!("{whole}{unit}")
    } else {
        format!("{whole}.{frac_text}{unit}")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"250ms\" or \"5s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "expected a duration string with a unit, such as \"{v}s\" or \"{v}ms\", found the bare number {v}"
                )))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A seed: any u64, written as a TOML integer or, above i64::MAX (TOML's
/// integers are signed), as a string of digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seed(pub u64);

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(self.0) {
            Ok(small) => serializer.serialize_i64(small),
            Err(_) => serializer.serialize_str(&self.0.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a seed: a whole number from 0 to 18446744073709551615")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seed, E> {
                u64::try_from(v).map(Seed).map_err(|_| E::custom(format!("a seed is zero or more, found {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seed, E> {
                v.trim()
                    .parse()
                    .map(Seed)
                    .map_err(|_| E::custom(format!("expected a seed, a whole number, found {v:?}")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// An inclusive range of durations, "1s..5s"; a single duration "2s" is the
/// range from it to itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurRange {
    /// The low end, included.
    pub min: Dur,
    /// The high end, included; never below `min`.
    pub max: Dur,
}

impl DurRange {
    /// The range holding `value` alone.
    pub fn fixed(value: Dur) -> DurRange {
        DurRange { min: value, max: value }
    }

    /// Parses "1s..5s", "1s..=5s" (the same: both ends are included) or a
    /// single duration; a range whose low end is above its high end is an error.
    pub fn parse(text: &str) -> Result<DurRange, String> {
        let Some((low, high)) = text.split_once("..") else {
            return Dur::parse(text).map(DurRange::fixed);
        };
        let high = high.strip_prefix('=').unwrap_or(high);
        let min = Dur::parse(low)?;
        let max = Dur::parse(high)?;
        if min > max {
            return Err(format!("range {text:?} is empty: its low end {min} is above its high end {max}"));
        }
        Ok(DurRange { min, max })
    }
}

impl fmt::Display for DurRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

impl Serialize for DurRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DurRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a duration range string such as \"1s..5s\" or \"2s\""))?;
        DurRange::parse(&text).map_err(de::Error::custom)
    }
}

/// An event rate, "200/s", "5/ms", "30/m". Stored as events per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Events per second; zero or more.
    pub per_second: f64,
}

impl Rate {
    /// Parses a count over a time unit: "200/s", "5/ms", "30/m", "2/h", or
    /// any duration as the unit ("1/10s"). The count may be fractional, not
    /// negative.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let expected = "expected a rate such as \"200/s\", \"5/ms\" or \"30/m\"";
        let Some((count, unit)) = text.trim().split_once('/') else {
            return Err(format!("{expected}, found {text:?}"));
        };
        let count: f64 =
            count.trim().parse().map_err(|_| format!("{expected}, found {text:?}: {count:?} is not a number"))?;
        if !count.is_finite() || count < 0.0 {
            return Err(format!("{expected}, found {text:?}: the count must be zero or more"));
        }
        let unit = unit.trim();
        let unit_seconds = if unit == "s" || unit == "sec" {
            1.0
        } else if unit == "ms" {
            0.001
        } else if unit == "m" || unit == "min" {
            60.0
        } else if unit == "h" {
            3600.0
        } else {
            let unit_duration = Dur::parse(unit)
                .map_err(|_| format!("{expected}, found {text:?}: unknown time unit {unit:?} (use s, ms, m or h)"))?;
            unit_duration.0.as_secs_f64()
        };
        if unit_seconds <= 0.0 {
            return Err(format!("{expected}, found {text:?}: the time unit is zero"));
        }
        Ok(Rate { per_second: count / unit_seconds })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a rate string such as \"200/s\""))?;
        Rate::parse(&text).map_err(de::Error::custom)
    }
}

/// A probability in [0, 1], written as a number (0.05) or a percentage ("5%").
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Probability(pub f64);

impl Probability {
    /// Parses a number ("0.05") or a percentage ("5%"); outside 0 to 1 is an error.
    pub fn parse(text: &str) -> Result<Probability, String> {
        let trimmed = text.trim();
        let value = if let Some(percent) = trimmed.strip_suffix('%') {
            percent
                .trim()
                .parse::<f64>()
                .map(|p| p / 100.0)
                .map_err(|_| format!("expected a probability such as 0.05 or \"5%\", found {text:?}"))?
        } else {
            trimmed
                .parse::<f64>()
                .map_err(|_| format!("expected a probability such as 0.05 or \"5%\", found {text:?}"))?
        };
        Probability::new(value)
    }

    /// `value` as a probability, or an error when it is outside 0 to 1.
    pub fn new(value: f64) -> Result<Probability, String> {
        if (0.0..=1.0).contains(&value) {
            Ok(Probability(value))
        } else {
            Err(format!("expected a probability between 0 and 1, found {value}"))
        }
    }
}

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Probability;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a probability such as 0.05 or \"5%\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Probability, E> {
                Probability::new(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Probability, E> {
                Probability::new(v as f64).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Probability, E> {
                Probability::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A host name or a glob over host names (`replica-*`, `app-[12]`).
#[derive(Clone, Debug)]
pub struct HostPattern {
    text: String,
    pattern: glob::Pattern,
}

impl HostPattern {
    /// Parses a host name or a glob (`*`, `?`, `[...]`); an empty pattern is an error.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        if text.is_empty() {
            return Err("expected a host name or glob such as \"replica-*\", found an empty string".into());
        }
        let pattern = glob::Pattern::new(text).map_err(|error| format!("invalid host glob {text:?}: {error}"))?;
        Ok(HostPattern { text: text.to_string(), pattern })
    }

    /// Does the pattern match the host name `host`?
    pub fn matches(&self, host: &str) -> bool {
        self.pattern.matches(host)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for HostPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a host name or glob string such as \"replica-*\""))?;
        HostPattern::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_bare_numbers() {
        assert_eq!(Dur::parse("250ms").unwrap(), Dur::from_millis(250));
        assert_eq!(Dur::parse("1m 30s").unwrap(), Dur::from_secs(90));
        assert!(Dur::parse("5").unwrap_err().contains("expected a duration"));
        assert!(Dur::parse("").is_err());
        let error = toml::from_str::<std::collections::BTreeMap<String, Dur>>("d = 5").unwrap_err();
        assert!(error.message().contains("\"5s\""), "{}", error.message());
    }

    #[test]
    fn durations_format_compactly() {
        assert_eq!(Dur::from_millis(250).to_string(), "250ms");
        assert_eq!(Dur::from_millis(1500).to_string(), "1.5s");
        assert_eq!(Dur::from_secs(60).to_string(), "60s");
        assert_eq!(Dur::ZERO.to_string(), "0s");
        assert_eq!(Dur(Duration::from_micros(1250)).to_string(), "1.25ms");
    }

    #[test]
    fn durations_are_capped_and_seeds_take_every_u64() {
        assert!(Dur::parse("31 days").unwrap_err().contains("30 days"));
        assert!(Dur::parse("30 days").is_ok());
        #[derive(serde::Deserialize, serde::Serialize)]
        struct S {
            seed: Seed,
        }
        for seed in [0, 7, u64::MAX] {
            let text = toml::to_string(&S { seed: Seed(seed) }).unwrap();
            assert_eq!(toml::from_str::<S>(&text).unwrap().seed, Seed(seed), "{text}");
        }
        assert!(toml::from_str::<S>("seed = -1").is_err());
    }

    #[test]
    fn ranges_parse_and_reject_empty_ranges() {
        let range = DurRange::parse("1s..5s").unwrap();
        assert_eq!((range.min, range.max), (Dur::from_secs(1), Dur::from_secs(5)));
        assert_eq!(DurRange::parse("2s").unwrap(), DurRange::fixed(Dur::from_secs(2)));
        assert_eq!(DurRange::parse("1s..=2s").unwrap().max, Dur::from_secs(2));
        assert!(DurRange::parse("5s..1s").unwrap_err().contains("empty"));
    }

    #[test]
    fn rates_parse_in_several_units() {
        assert_eq!(Rate::parse("200/s").unwrap().per_second, 200.0);
        assert_eq!(Rate::parse("5/ms").unwrap().per_second, 5000.0);
        assert_eq!(Rate::parse("30/m").unwrap().per_second, 0.5);
        assert_eq!(Rate::parse("1/10s").unwrap().per_second, 0.1);
        assert!(Rate::parse("200").is_err());
        assert!(Rate::parse("x/s").is_err());
        assert!(Rate::parse("1/fortnight").unwrap_err().contains("unknown time unit"));
    }

    #[test]
    fn probabilities_accept_numbers_and_percentages() {
        assert_eq!(Probability::parse("5%").unwrap().0, 0.05);
        assert_eq!(Probability::parse("0.25").unwrap().0, 0.25);
        assert!(Probability::parse("120%").is_err());
        assert!(Probability::new(-0.1).is_err());
    }

    #[test]
    fn host_patterns_glob() {
        let pattern = HostPattern::parse("replica-*").unwrap();
        assert!(pattern.matches("replica-1"));
        assert!(!pattern.matches("primary"));
        assert!(HostPattern::parse("app-[").is_err());
    }
}
