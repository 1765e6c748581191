//! Errors about the user's input: a scenario file, a knob, a flag's value;
//! and reading the user's files, which refuses what is not a text file of a
//! sane size (a binary, a huge file, a device, a pipe, a folder, a loop of
//! symbolic links) with an error instead of a hang or a flood of garbage.
//!
//! Every error names where it is (file, line, column) when it comes from a
//! file, says what was expected, and carries a help line with the fix when
//! there is one (the nearest valid key for a typo, the valid values). These
//! are operator mistakes, so they are `Result`s, never panics.

use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

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

/// Reads a text file the user named, refusing what cannot be one: a folder,
/// a device or pipe (which could block or never end), a symbolic link that
/// loops or dangles, a file over `limit` bytes, binary data, or text that is
/// not UTF-8. `what` names the file's role in messages ("scenario file").
pub fn read_text(path: &Path, limit: u64, what: &str) -> Result<String, InputError> {
    let file = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|error| unreadable(path, what, &error))?;
    if metadata.is_dir() {
        return Err(InputError::new(&file, format!("is a folder, not a {what}")).with_help(
            "`faultline sweep` and `faultline check` take folders; `run`, `replay` and `shrink` take one file",
        ));
    }
    if !metadata.is_file() {
        return Err(InputError::new(
            &file,
            format!("is not a regular file (a device, a pipe or a socket), so not a {what}"),
        )
        .with_help(format!("name a {what} on disk")));
    }
    let too_big = |size: u64| {
        InputError::new(&file, format!("is {}, larger than the {} a {what} may be", bytes(size), bytes(limit)))
            .with_help(format!("is this the right file? a {what} is a few kilobytes of text"))
    };
    if metadata.len() > limit {
        return Err(too_big(metadata.len()));
    }
    let mut contents = Vec::new();
    let opened = std::fs::File::open(path).map_err(|error| unreadable(path, what, &error))?;
    // Read one byte past the limit: a file that grew since `metadata` is caught too.
    opened.take(limit + 1).read_to_end(&mut contents).map_err(|error| unreadable(path, what, &error))?;
    if contents.len() as u64 > limit {
        return Err(too_big(contents.len() as u64));
    }
    text_from_bytes(&file, contents, what)
}

/// The text of a file's bytes: UTF-8 without NUL bytes (a leading byte-order
/// mark is dropped), else an error at the first offending byte.
pub fn text_from_bytes(file: &str, contents: Vec<u8>, what: &str) -> Result<String, InputError> {
    let contents = match contents.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => rest.to_vec(),
        None => contents,
    };
    let place = |valid: &[u8]| {
        let before = String::from_utf8_lossy(valid);
        let (line, column) = line_column(&before, before.len());
        Some((line, column))
    };
    if let Some(nul) = contents.iter().position(|b| *b == 0) {
        return Err(InputError {
            position: place(&contents[..nul]),
            ..InputError::new(file, format!("holds binary data (a NUL byte), so it is not a text {what}"))
                .with_help(format!("is this the right file? a {what} is UTF-8 text"))
        });
    }
    String::from_utf8(contents).map_err(|error| {
        let at = error.utf8_error().valid_up_to();
        let contents = error.as_bytes();
        InputError {
            position: place(&contents[..at]),
            ..InputError::new(file, format!("is not UTF-8 text: byte 0x{:02x} cannot start a character", contents[at]))
                .with_help(format!("save the {what} as UTF-8"))
        }
    })
}

/// An I/O error reading a file, said plainly.
fn unreadable(path: &Path, what: &str, error: &std::io::Error) -> InputError {
    let file = path.display().to_string();
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && error.kind() != std::io::ErrorKind::PermissionDenied {
        return InputError::new(
            &file,
            format!("is a symbolic link that cannot be followed (a loop of links, or a missing target): {error}"),
        )
        .with_help(format!("point the link at a {what}, or name the file itself"));
    }
    let help = match error.kind() {
        std::io::ErrorKind::NotFound => {
            "check the path; `faultline sweep scenarios` runs every scenario shipped in the repository".to_string()
        }
        std::io::ErrorKind::PermissionDenied => "check the file's permissions".to_string(),
        _ => format!("check that it is a readable {what}"),
    };
    InputError::new(&file, format!("cannot read the {what}: {error}")).with_help(help)
}

/// A byte count in the unit a person reads ("1 MiB", "3.2 KiB", "17 bytes").
pub fn bytes(count: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if count >= MIB {
        trimmed(count as f64 / MIB as f64, "MiB")
    } else if count >= KIB {
        trimmed(count as f64 / KIB as f64, "KiB")
    } else if count == 1 {
        "1 byte".to_string()
    } else {
        format!("{count} bytes")
    }
}

fn trimmed(value: f64, unit: &str) -> String {
    let text = format!("{value:.1}");
    format!("{} {unit}", text.strip_suffix(".0").unwrap_or(&text))
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
    fn text_is_utf8_without_nul_bytes_and_errors_say_where() {
        assert_eq!(text_from_bytes("f", b"a = 1\n".to_vec(), "x").unwrap(), "a = 1\n");
        assert_eq!(text_from_bytes("f", b"\xEF\xBB\xBFa = 1".to_vec(), "x").unwrap(), "a = 1");
        let nul = text_from_bytes("f", b"a = 1\nb\x00".to_vec(), "scenario file").unwrap_err();
        assert_eq!(nul.position, Some((2, 2)));
        assert!(nul.message.contains("binary data"), "{nul}");
        let latin1 = text_from_bytes("f", b"name = \"caf\xe9\"".to_vec(), "scenario file").unwrap_err();
        assert_eq!(latin1.position, Some((1, 12)));
        assert!(latin1.message.contains("not UTF-8 text: byte 0xe9"), "{latin1}");
        assert!(latin1.help.is_some());
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(bytes(1), "1 byte");
        assert_eq!(bytes(17), "17 bytes");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1 << 20), "1 MiB");
    }

    #[test]
    fn display_names_file_line_column_and_help() {
        let error = InputError::at("s.toml", "x\ny = 1", 2..3, "unknown key \"y\"").with_help("did you mean \"x\"?");
        assert_eq!(error.to_string(), "s.toml:2:1: unknown key \"y\"\n  help: did you mean \"x\"?");
    }
}
