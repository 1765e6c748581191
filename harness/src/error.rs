//! Errors about the user's input: a scenario file, a knob, a flag's value.
//!
//! Every error names where it is (file, line, column) when it comes from a
//! file, says what was expected, and carries a help line with the fix when
//! there is one (the nearest valid key for a typo, the valid values). These
//! are operator mistakes, so they are `Result`s, never panics.

use std::fmt;
use std::ops::Range;

/// A mistake in a scenario file (or in what a command was asked to run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line and column; `None` when the mistake has no single place
    /// (a file that cannot be read, a missing key).
    pub position: Option<(usize, usize)>,
    /// What is wrong, lowercase, without a trailing period.
    pub message: String,
    /// The fix, when there is one to suggest (the nearest valid key, the
    /// valid values); printed on a line of its own after `help:`.
    pub help: Option<String>,
}

impl InputError {
    /// An error about `file` as a whole, with no position.
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError { file: file.into(), position: None, message: message.into(), help: None }
    }

    /// An error at a byte span of `source` (the text of `file`).
    pub fn at(file: &str, source: &str, span: Range<usize>, message: impl Into<String>) -> InputError {
        InputError {
            file: file.to_string(),
            position: Some(line_column(source, span.start)),
            message: message.into(),
            help: None,
        }
    }

    /// The same error with a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> InputError {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{}:{}: {}", self.file, line, column, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(word, candidate);
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, candidate));
        }
    }
    best.filter(|(score, _)| *score >= 0.8).map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let source = "a = 1\nbé = 2\nc = 3";
        assert_eq!(line_column(source, 0), (1, 1));
        assert_eq!(line_column(source, 6), (2, 1));
        let c = source.find('c').unwrap();
        assert_eq!(line_column(source, c), (3, 1));
        let two = source.find('2').unwrap();
        assert_eq!(line_column(source, two), (2, 6));
    }

    #[test]
    fn nearest_finds_typos_only() {
        let keys = ["partition", "latency", "loss"];
        assert_eq!(nearest("parition", keys), Some("partition"));
        assert_eq!(nearest("lattency", keys), Some("latency"));
        assert_eq!(nearest("zebra", keys), None);
    }

    #[test]
    fn display_names_file_line_column_and_help() {
        let error = InputError::at("s.toml", "x\ny = 1", 2..3, "unknown key \"y\"").with_help("did you mean \"x\"?");
        assert_eq!(error.to_string(), "s.toml:2:1: unknown key \"y\"\n  help: did you mean \"x\"?");
    }
}
