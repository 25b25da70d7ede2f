//! Configuration errors: each names the file, the line and the key at
//! fault, and for an unknown key the nearest valid one.

use std::path::PathBuf;

/// Why a configuration could not be loaded. `Display` gives one line in the
/// `file:line: message` shape editors and CI logs understand.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {cause}", path.display())]
    Read {
        path: PathBuf,
        // Not a `source`: the message says it already, and `{:#}` would
        // say it twice.
        cause: std::io::Error,
    },
    /// The text is not valid TOML (or not UTF-8). `line` and `column` are
    /// 1-based.
    #[error("{file}:{line}:{column}: syntax error: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key (`what` = "key") or table (`what` = "table") postern does not
    /// know. `key` is dotted; `suggestion` is the nearest valid key, bare if
    /// it is in the same table, dotted otherwise.
    #[error(
        "{file}:{line}: unknown {what} `{key}`{}",
        did_you_mean(.suggestion.as_deref())
    )]
    Unknown {
        file: String,
        line: usize,
        what: &'static str,
        key: String,
        suggestion: Option<String>,
    },
    /// A value of the wrong TOML type.
    #[error("{file}:{line}: key `{key}`: expected {expected}, found {found}")]
    WrongType {
        file: String,
        line: usize,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A value of the right type that is not acceptable. `value` is the
    /// value as written (quoted if a string).
    #[error("{file}:{line}: key `{key}`: bad value {value}: {reason}")]
    BadValue {
        file: String,
        line: usize,
        key: String,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    /// The 1-based line at fault, if the error is about the file's content.
    #[cfg(test)]
    pub(crate) fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { line, .. }
            | ConfigError::Unknown { line, .. }
            | ConfigError::WrongType { line, .. }
            | ConfigError::BadValue { line, .. } => Some(*line),
        }
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

/// The candidate most similar to `word`, if it is reasonably close.
pub(super) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    const THRESHOLD: f64 = 0.8;
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word, c), c))
        .filter(|(score, _)| *score >= THRESHOLD)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_close_words_only() {
        let keys = ["message_size_limit", "recipient_limit", "listen"];
        assert_eq!(
            nearest("mesage_size_limit", keys),
            Some("message_size_limit")
        );
        assert_eq!(nearest("Listen", keys), Some("listen"));
        assert_eq!(nearest("lisen", keys), Some("listen"));
        assert_eq!(nearest("hostname", keys), None);
        assert_eq!(nearest("", keys), None);
    }
}
