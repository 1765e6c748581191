//! A system's `[knobs]` table and the validators systems share, and the
//! turning of TOML and serde errors into [`InputError`]s with positions, the
//! table a key is in, and the nearest valid key.
//!
//! A system deserializes its knobs from the file's own text through
//! [`Knobs`], so its errors point into the scenario file like the harness's
//! own. Nothing here knows a particular system or runs anything.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{nearest, InputError};
use crate::units::{Dur, Rate};

/// The `[knobs]` table of a scenario file, handed to the system to validate.
/// It keeps the file's text, so a system's errors point into the file too.
pub struct Knobs<'a> {
    file: &'a str,
    source: &'a str,
}

impl<'a> Knobs<'a> {
    /// The knobs of the scenario file `file`, whose whole text is `source`.
    pub fn new(file: &'a str, source: &'a str) -> Knobs<'a> {
        Knobs { file, source }
    }

    /// Deserializes the `[knobs]` table into the system's knob type (usually a
    /// struct with `#[serde(deny_unknown_fields, default)]`); an absent table
    /// is the type's default.
    pub fn parse<T: DeserializeOwned + Default>(&self) -> Result<T, InputError> {
        #[derive(Deserialize)]
        struct Only<T> {
            #[serde(default = "Option::default")]
            knobs: Option<T>,
        }
        let only: Only<T> = parse_toml(self.file, self.source)?;
        Ok(only.knobs.unwrap_or_default())
    }

    /// An error at a knob's value (use `Spanned` fields to know the span).
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> InputError {
        InputError::at(self.file, self.source, span, message)
    }

    /// A whole-number knob within `range`, or `default` when absent.
    pub fn count(
        &self,
        value: &Option<Spanned<i64>>,
        default: u32,
        range: std::ops::RangeInclusive<i64>,
        name: &str,
    ) -> Result<u32, InputError> {
        match value {
            None => Ok(default),
            Some(v) if range.contains(v.get_ref()) => {
                Ok(u32::try_from(*v.get_ref()).expect("ranges of counts fit u32"))
            }
            Some(v) => Err(self.error(
                v.span(),
                format!("{name} must be between {} and {}, found {}", range.start(), range.end(), v.get_ref()),
            )),
        }
    }

    /// A duration knob that must be longer than zero, or `default` when absent.
    pub fn positive(&self, value: &Option<Spanned<Dur>>, default: Dur, name: &str) -> Result<Dur, InputError> {
        match value {
            None => Ok(default),
            Some(d) if !d.get_ref().0.is_zero() => Ok(*d.get_ref()),
            Some(d) => Err(self.error(d.span(), format!("{name} must be longer than zero"))),
        }
    }

    /// A number knob within `range`, or `default` when absent.
    pub fn number(
        &self,
        value: &Option<Spanned<f64>>,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
        name: &str,
    ) -> Result<f64, InputError> {
        match value {
            None => Ok(default),
            Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(self.error(
                v.span(),
                format!("{name} must be between {} and {}, found {}", range.start(), range.end(), v.get_ref()),
            )),
        }
    }

    /// A rate knob that must be above zero, in events per second, or `default` when absent.
    pub fn rate(&self, value: &Option<Spanned<Rate>>, default: f64, name: &str) -> Result<f64, InputError> {
        match value {
            None => Ok(default),
            Some(r) if r.get_ref().per_second > 0.0 => Ok(r.get_ref().per_second),
            Some(r) => Err(self.error(r.span(), format!("{name} must be above zero"))),
        }
    }

    /// An error about two knobs that cannot work together, at the first.
    pub fn conflict<A>(&self, first: &Spanned<A>, first_name: &str, second_name: &str, why: &str) -> InputError {
        self.error(first.span(), format!("{first_name} cannot be used with {second_name}: {why}"))
    }

    /// An error about the `[knobs]` table as a whole.
    pub fn table_error(&self, message: impl Into<String>) -> InputError {
        match self.source.find("[knobs]") {
            Some(start) => InputError::at(self.file, self.source, start..start + 7, message),
            None => InputError::new(self.file, message),
        }
    }
}

/// Deserializes TOML, turning toml's and serde's errors into [`InputError`]s
/// with positions, the table the key is in, and the nearest valid key.
pub fn parse_toml<T: DeserializeOwned>(file: &str, source: &str) -> Result<T, InputError> {
    toml::from_str(source).map_err(|error| toml_error(file, source, &error))
}

fn toml_error(file: &str, source: &str, error: &toml::de::Error) -> InputError {
    let span = error.span().unwrap_or(0..0);
    let message = error.message().trim().to_string();
    let table = enclosing_table(source, span.start);
    let mut result = InputError::at(file, source, span.clone(), message.clone());
    if let Some((word, expected)) = parse_unknown(&message, "field") {
        let place = table.map_or("at the top level".to_string(), |t| format!("in {t}"));
        result.message = format!("unknown key {word:?} {place}");
        let expected_list = expected.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
        let help = match nearest(&word, expected.iter().map(String::as_str)) {
            Some(suggestion) => format!("did you mean {suggestion:?}? valid keys: {expected_list}"),
            None if expected.is_empty() => "this table takes no keys".to_string(),
            None => format!("valid keys: {expected_list}"),
        };
        result.help = Some(help);
        if word == "system" && table == Some("[knobs]") {
            result.help = Some("the system is chosen at the top level with system = \"...\"".into());
        }
    } else if let Some((word, expected)) = parse_unknown(&message, "variant") {
        let expected_list = expected.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
        result.message = format!("unknown value {word:?}");
        result.help = Some(match nearest(&word, expected.iter().map(String::as_str)) {
            Some(suggestion) => format!("did you mean {suggestion:?}? expected one of {expected_list}"),
            None => format!("expected one of {expected_list}"),
        });
    } else if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        let place = table.map_or("at the top level".to_string(), |t| format!("in {t}"));
        result.message = format!("missing key {field:?} {place}");
        result.help = Some(format!("add {field} = ... (docs/scenarios.md lists every key)"));
    } else if message.contains("duplicate key") && source.contains("[system]") {
        result.help = Some("the system's knobs go in a [knobs] table; `system = \"...\"` names the system".into());
    }
    result
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn parse_unknown(message: &str, what: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(&format!("unknown {what} `"))?;
    let (word, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>();
    Some((word.to_string(), expected))
}

/// The `[table]` or `[[array]]` header above a byte offset, if any.
fn enclosing_table(source: &str, offset: usize) -> Option<&str> {
    let before = &source[..offset.min(source.len())];
    before
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .map(|line| line.split('#').next().unwrap_or(line).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_messages_are_read() {
        let (word, expected) =
            parse_unknown("unknown field `parition`, expected one of `kind`, `at`", "field").unwrap();
        assert_eq!(word, "parition");
        assert_eq!(expected, vec!["kind", "at"]);
        let (word, expected) =
            parse_unknown("unknown variant `crsh`, expected `crash` or `restart`", "variant").unwrap();
        assert_eq!(word, "crsh");
        assert_eq!(expected, vec!["crash", "restart"]);
    }

    #[test]
    fn enclosing_table_finds_the_header() {
        let source = "name = \"x\"\n[workload]\nrate = 1\n[[fault]] # c\nkind = 1";
        assert_eq!(enclosing_table(source, 3), None);
        assert_eq!(enclosing_table(source, source.find("rate").unwrap()), Some("[workload]"));
        assert_eq!(enclosing_table(source, source.find("kind").unwrap()), Some("[[fault]]"));
    }

    #[test]
    fn knobs_validate_with_positions() {
        #[derive(serde::Deserialize, Default, Debug)]
        #[serde(deny_unknown_fields)]
        struct K {
            n: Option<Spanned<i64>>,
            f: Option<Spanned<f64>>,
        }
        let source = "name = \"x\"\n[knobs]\nn = 0\nf = 7.5\n";
        let knobs = Knobs::new("k.toml", source);
        let raw: K = knobs.parse().unwrap();
        let error = knobs.count(&raw.n, 1, 1..=9, "n").unwrap_err();
        assert_eq!(error.to_string(), "k.toml:3:5: n must be between 1 and 9, found 0");
        assert!(knobs.number(&raw.f, 1.0, 0.0..=5.0, "f").unwrap_err().to_string().starts_with("k.toml:4:5:"));
        let typo = Knobs::new("k.toml", "[knobs]\nnn = 1\n").parse::<K>().unwrap_err();
        assert_eq!(typo.help.as_deref(), Some("did you mean \"n\"? valid keys: \"n\", \"f\""));
    }
}
