//! A problem found in a directory source, with its place and a hint.

use std::fmt;

/// One problem in a directory source.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// JSON pointer (RFC 6901) of the offending value, `""` for the document.
    pub pointer: String,
    /// 1-based line of the offending value (0 when unknown).
    pub line: usize,
    /// 1-based column, in characters (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    /// A problem at `pointer`, position to be filled in by the locator.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            pointer: pointer.into(),
            line: 0,
            column: 0,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Renders the problem for a terminal, naming `file`.
    pub fn render(&self, file: &str) -> String {
        let pointer = if self.pointer.is_empty() {
            "the document"
        } else {
            &self.pointer
        };
        let mut out = format!(
            "error: {}\n  --> {}:{}:{} at {}",
            self.message, file, self.line, self.column, pointer
        );
        if let Some(h) = &self.hint {
            out.push_str("\n  help: ");
            out.push_str(h);
        }
        out
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("<directory>"))
    }
}

/// Every problem found in one directory source; nothing is built from it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Renders every problem, naming `file`, followed by a count.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::new();
        for p in &self.0 {
            out.push_str(&p.render(file));
            out.push_str("\n\n");
        }
        let n = self.0.len();
        out.push_str(&format!(
            "{n} problem{} in {file}; nothing was written",
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("<directory>"))
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub(crate) fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}
