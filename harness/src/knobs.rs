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
    let mut result = InputError::at(file, source, span.clone(), message.clone());
    if let Some((word, expected)) = parse_unknown(&message, "field") {
        let expected_list = expected.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
        result.message = match place_of_key(source, span.start) {
            KeyPlace::Header { header, parent } => match parent {
                None => format!("unknown table {header} at the top level"),
                Some(parent) => format!("unknown table {header}: [{parent}] has no key {word:?}"),
            },
            KeyPlace::Body(table) => format!("unknown key {word:?} {}", table.describe()),
        };
        let help = match nearest(&word, expected.iter().map(String::as_str)) {
            Some(suggestion) => format!("did you mean {suggestion:?}? valid keys: {expected_list}"),
            None if expected.is_empty() => "this table takes no keys".to_string(),
            None => format!("valid keys: {expected_list}"),
        };
        result.help = Some(help);
        if word == "system"
            && matches!(place_of_key(source, span.start), KeyPlace::Body(Table::Header(h)) if h == "[knobs]")
        {
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
        // toml gives a key missing from the document itself the empty span at 0.
        let whole = span == (0..0);
        let table = if whole { Table::TopLevel } else { table_of_value(source, span.start) };
        result.message = format!("missing key {field:?} {}", table.describe());
        result.help = Some(format!("add {field} = ... (docs/scenarios.md lists every key)"));
    } else if let Some(wrong) = WrongType::parse(&message) {
        result.message = format!("expected {}, found {}", wrong.expected, wrong.found);
        result.help = wrong.help(key_on_line(source, span.start).as_deref());
    } else if message.contains("duplicate key") && source.contains("[system]") {
        result.help = Some("the system's knobs go in a [knobs] table; `system = \"...\"` names the system".into());
    }
    if result.help.is_none() {
        result.help = Some(generic_help(&message));
    }
    result
}

/// A help line for a TOML or value error that has no better one: every
/// error a person sees says where to look next.
pub(crate) fn generic_help(message: &str) -> String {
    if message.contains("duration") {
        "durations are written with a unit, such as \"250ms\", \"5s\" or \"1m 30s\"".into()
    } else if message.contains("rate") {
        "rates are written as a count per unit of time, such as \"200/s\" or \"30/m\"".into()
    } else if message.contains("probability") {
        "probabilities are written as a number from 0 to 1 (0.05) or a percentage (\"5%\")".into()
    } else if message.contains("seeds must be") {
        "seeds is how many seeds (1..=N) `cargo test` and `sweep` run, e.g. seeds = 8".into()
    } else if message.contains("seed") {
        "a seed is a whole number from 0 to 18446744073709551615".into()
    } else if message.contains("must be between") {
        "docs/scenarios.md gives each key's range and default".into()
    } else if message.contains("longer than zero") {
        "give it a duration above zero, such as \"1s\", or leave the key out for its default".into()
    } else {
        "docs/scenarios.md describes every key, its type and its default".into()
    }
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn parse_unknown(message: &str, what: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(&format!("unknown {what} `"))?;
    let (word, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>();
    Some((word.to_string(), expected))
}

/// serde's "invalid type: string \"two\", expected i64", in words a person uses.
struct WrongType {
    expected: String,
    found: String,
    /// The value was a quoted string where a number or bool was expected.
    quoted: bool,
}

impl WrongType {
    fn parse(message: &str) -> Option<WrongType> {
        let rest = message.strip_prefix("invalid type: ")?;
        let (found, expected) = rest.rsplit_once(", expected ")?;
        let quoted = found.starts_with("string ");
        let found = if let Some(text) = found.strip_prefix("string ") {
            format!("the string {text}")
        } else if let Some(number) = found.strip_prefix("integer ") {
            format!("the whole number {}", number.trim_matches('`'))
        } else if let Some(number) = found.strip_prefix("floating point ") {
            format!("the number {}", number.trim_matches('`'))
        } else if let Some(value) = found.strip_prefix("boolean ") {
            format!("the boolean {}", value.trim_matches('`'))
        } else if found == "sequence" {
            "a list".to_string()
        } else if found == "map" {
            "a table".to_string()
        } else {
            found.to_string()
        };
        let expected = match expected {
            "i64" | "i32" | "u64" | "u32" | "usize" | "u16" | "u8" | "i8" | "i16" => "a whole number".to_string(),
            "f64" | "f32" => "a number".to_string(),
            "a boolean" => "true or false".to_string(),
            "a sequence" => "a list".to_string(),
            "a map" => "a table".to_string(),
            other if other.starts_with("struct ") => "a table".to_string(),
            other => other.to_string(),
        };
        Some(WrongType { expected, found, quoted })
    }

    fn help(&self, key: Option<&str>) -> Option<String> {
        let key = key.unwrap_or("key");
        Some(match self.expected.as_str() {
            "a whole number" if self.quoted => format!("write the number in digits without quotes, e.g. {key} = 2"),
            "a whole number" => format!("write a whole number without a decimal point, e.g. {key} = 2"),
            "a number" if self.quoted => format!("write the number without quotes, e.g. {key} = 0.5"),
            "true or false" => format!("write {key} = true or {key} = false, without quotes"),
            "a list" => format!("write a list in brackets, e.g. {key} = [\"...\"]"),
            "a table" => format!("{key} is a table: write [{key}] on a line of its own, with its keys below"),
            "a string" => format!("write the value in quotes, e.g. {key} = \"...\""),
            _ => return None,
        })
    }
}

/// The table a key belongs to, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Table {
    TopLevel,
    /// A `[table]` or `[[array]]` header, as written.
    Header(String),
    /// An inline table `{ ... }` that is the value (or an item of the list)
    /// of `key`, inside `parent`.
    Inline {
        key: String,
        parent: Box<Table>,
    },
}

impl Table {
    fn describe(&self) -> String {
        match self {
            Table::TopLevel => "at the top level".to_string(),
            Table::Header(header) => format!("in {header}"),
            Table::Inline { key, parent } => match parent.as_ref() {
                Table::TopLevel => format!("in the inline table {key:?}"),
                Table::Header(header) => format!("in the inline table {key:?} of {header}"),
                Table::Inline { .. } => format!("in the inline table {key:?}"),
            },
        }
    }
}

/// Where an unknown key was found.
enum KeyPlace {
    /// In a header line, `[foo]` or `[workload.foo]`: the unknown key names
    /// a table; `parent` is the table it was looked up in (`None` at the top level).
    Header { header: String, parent: Option<String> },
    /// Among the keys of a table.
    Body(Table),
}

/// The line of `source` around a byte offset, and the offset of its start.
fn line_at(source: &str, offset: usize) -> (&str, usize) {
    let offset = floor_boundary(source, offset.min(source.len()));
    let start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = source[offset..].find('\n').map_or(source.len(), |i| offset + i);
    (&source[start..end], start)
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// A header line's text (`[workload]`, `[[fault]]`), without a comment.
fn header_of(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('[') {
        return None;
    }
    let end = trimmed.find(']').map_or(trimmed.len(), |i| i + 1);
    let end = if trimmed.starts_with("[[") && trimmed[end..].starts_with(']') { end + 1 } else { end };
    Some(trimmed[..end].trim())
}

/// The path inside a header's brackets: `workload` for `[workload]`, `chaos.partition` for `[chaos.partition]`.
fn header_path(header: &str) -> &str {
    header.trim_start_matches('[').trim_end_matches(']').trim()
}

/// The table whose header is the last one above `offset` (not counting the
/// line of `offset` itself).
fn header_above(source: &str, offset: usize) -> Table {
    let (_, line_start) = line_at(source, offset);
    source[..line_start]
        .lines()
        .rev()
        .find_map(header_of)
        .map_or(Table::TopLevel, |header| Table::Header(header.to_string()))
}

/// The key a line assigns (`clients` in `clients = "two"`), if any.
fn key_on_line(source: &str, offset: usize) -> Option<String> {
    let (line, _) = line_at(source, offset);
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let valid = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || "_-.\"".contains(c));
    valid.then(|| key.trim_matches('"').to_string())
}

/// The table a value at `offset` belongs to: an inline table opened on the
/// line before `offset` belongs to the line's key; a header line is its own
/// table; otherwise the header above.
fn table_of_value(source: &str, offset: usize) -> Table {
    let (line, line_start) = line_at(source, offset);
    if let Some(header) = header_of(line) {
        if offset <= line_start + line.len() - line.trim_start().len() + header.len() {
            return Table::Header(header.to_string());
        }
    }
    let before = &source[line_start..floor_boundary(source, offset.min(source.len()))];
    let at_brace = source[floor_boundary(source, offset.min(source.len()))..].starts_with('{');
    let opens = before.matches('{').count() > before.matches('}').count();
    if at_brace || opens {
        if let Some(key) = key_on_line(source, offset) {
            return Table::Inline { key, parent: Box::new(header_above(source, offset)) };
        }
    }
    header_above(source, offset)
}

/// Where a key at `offset` sits: in a header line (an unknown table) or in a table's body.
fn place_of_key(source: &str, offset: usize) -> KeyPlace {
    let (line, _) = line_at(source, offset);
    if let Some(header) = header_of(line) {
        let path = header_path(header);
        let parent = path.rsplit_once('.').map(|(parent, _)| parent.trim().to_string());
        return KeyPlace::Header { header: header.to_string(), parent };
    }
    KeyPlace::Body(table_of_value(source, offset))
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
    fn tables_are_found_from_headers_and_inline_tables() {
        let source = "name = \"x\"\n[workload]\nrate = 1\nstages = [{ duration = \"1s\" }]\n[[fault]] # c\nkind = 1";
        assert_eq!(table_of_value(source, 3), Table::TopLevel);
        assert_eq!(table_of_value(source, source.find("rate").unwrap()), Table::Header("[workload]".into()));
        assert_eq!(table_of_value(source, source.find("kind").unwrap()), Table::Header("[[fault]]".into()));
        // A missing key of a [[fault]] points at its header: the table is that fault, not the one above.
        assert_eq!(table_of_value(source, source.find("[[fault]]").unwrap()), Table::Header("[[fault]]".into()));
        let inline = table_of_value(source, source.find("{ duration").unwrap());
        assert_eq!(inline.describe(), "in the inline table \"stages\" of [workload]");
        let key = source.find("duration =").unwrap();
        assert!(matches!(place_of_key(source, key), KeyPlace::Body(Table::Inline { .. })));
    }

    #[test]
    fn wrong_types_are_said_in_words() {
        let wrong = WrongType::parse("invalid type: string \"two\", expected i64").unwrap();
        assert_eq!((wrong.expected.as_str(), wrong.found.as_str()), ("a whole number", "the string \"two\""));
        assert_eq!(wrong.help(Some("clients")).unwrap(), "write the number in digits without quotes, e.g. clients = 2");
        let wrong = WrongType::parse("invalid type: integer `3`, expected a boolean").unwrap();
        assert_eq!(format!("{} / {}", wrong.expected, wrong.found), "true or false / the whole number 3");
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
