//! Config errors: every one names the file, the 1-based line and column, and the field path.
//!
//! Design: the decoder never stops at the first problem. It pushes into a [`Diagnostics`]
//! collector and carries on with the next field, so that one run of `ringway --check` shows
//! everything that is wrong. The collector sorts by position at the end (the decoder visits
//! cross-references after the fields they point at) and keeps at most [`MAX_ERRORS`], so a
//! file that is wrong everywhere does not scroll the first, usually root-cause, error away.

use std::fmt;
use std::path::{Path, PathBuf};

/// How many errors are reported before the rest are summarised in one line.
pub const MAX_ERRORS: usize = 20;

/// One problem in a config file.
///
/// `line` and `column` are 1-based. Line 0 means the file as a whole (it could not be read),
/// and then `Display` leaves the position out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Field path such as `listeners[0].routes[2].cluster`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All the problems found in one config file, ordered by position. Never empty when
/// returned by [`Config::load`](super::Config::load) or [`Config::parse`](super::Config::parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Number of errors (including the "and N more" summary line, if any).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A 1-based position in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// Converts saphyr's marker: its lines are 1-based but its columns are 0-based.
    pub fn from_marker(marker: &saphyr::Marker) -> Pos {
        Pos {
            line: marker.line(),
            column: marker.col().saturating_add(1),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Collects errors for one file while decoding.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    file: PathBuf,
    errors: Vec<ConfigError>,
}

impl Diagnostics {
    pub fn new(file: &Path) -> Diagnostics {
        Diagnostics {
            file: file.to_path_buf(),
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Takes the errors another file's diagnostics collected (the short form's
    /// expansion).
    pub fn absorb(&mut self, other: Diagnostics) {
        self.errors.extend(other.errors);
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Sorts by position and applies the [`MAX_ERRORS`] cap.
    pub fn finish(mut self) -> ConfigErrors {
        // Stable sort: errors at the same position keep the order they were found in.
        self.errors.sort_by_key(|e| (e.line, e.column));
        if self.errors.len() > MAX_ERRORS {
            let hidden = self.errors.len() - MAX_ERRORS;
            let first_hidden = self.errors.swap_remove(MAX_ERRORS);
            self.errors.truncate(MAX_ERRORS);
            self.errors.push(ConfigError {
                message: format!(
                    "{hidden} more error{} not shown",
                    if hidden == 1 { "" } else { "s" }
                ),
                path: String::new(),
                ..first_hidden
            });
        }
        ConfigErrors(self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize, column: usize, path: &str) -> ConfigError {
        ConfigError {
            file: PathBuf::from("config/ringway.yaml"),
            line,
            column,
            path: path.to_owned(),
            message: "unknown cluster \"orderz\"".to_owned(),
        }
    }

    #[test]
    fn display_with_and_without_path() {
        assert_eq!(
            error(14, 9, "listeners[0].routes[2].cluster").to_string(),
            "config/ringway.yaml:14:9: listeners[0].routes[2].cluster: unknown cluster \"orderz\""
        );
        assert_eq!(
            error(1, 1, "").to_string(),
            "config/ringway.yaml:1:1: unknown cluster \"orderz\""
        );
        assert_eq!(
            error(0, 0, "").to_string(),
            "config/ringway.yaml: unknown cluster \"orderz\""
        );
    }

    #[test]
    fn errors_display_one_per_line() {
        let errors = ConfigErrors(vec![error(1, 1, "a"), error(2, 3, "b")]);
        assert_eq!(
            errors.to_string(),
            "config/ringway.yaml:1:1: a: unknown cluster \"orderz\"\n\
             config/ringway.yaml:2:3: b: unknown cluster \"orderz\""
        );
    }

    #[test]
    fn finish_sorts_and_caps() {
        let mut diagnostics = Diagnostics::new(Path::new("f.yaml"));
        for line in (1..=MAX_ERRORS + 5).rev() {
            diagnostics.error(Pos { line, column: 1 }, "x", "bad");
        }
        diagnostics.error(Pos { line: 1, column: 1 }, "y", "second at 1:1");
        let errors = diagnostics.finish();
        assert_eq!(errors.len(), MAX_ERRORS + 1);
        assert_eq!(errors.0[0].path, "x");
        assert_eq!(errors.0[1].path, "y");
        assert_eq!(errors.0[2].line, 2);
        let last = &errors.0[MAX_ERRORS];
        assert_eq!(last.to_string(), "f.yaml:20:1: 6 more errors not shown");
    }
}
