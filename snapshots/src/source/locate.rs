//! JSON pointer → line:column, used only when there are problems to report:
//! the fast path parses with serde_json and never builds this tree.

use jsonc_parser::ast::Value;
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};

/// Finds where JSON pointers point in one source text.
pub struct Locator<'a> {
    text: &'a str,
    root: Option<Value<'a>>,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    /// Parses `text` strictly (plain JSON: no comments, no trailing commas).
    pub fn new(text: &'a str) -> Self {
        let strict = ParseOptions {
            allow_comments: false,
            allow_loose_object_property_names: false,
            allow_trailing_commas: false,
            allow_missing_commas: false,
            allow_single_quoted_strings: false,
            allow_hexadecimal_numbers: false,
            allow_unary_plus_numbers: false,
            ..ParseOptions::default()
        };
        let root = parse_to_ast(text, &CollectOptions::default(), &strict)
            .ok()
            .and_then(|r| r.value);
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator {
            text,
            root,
            line_starts,
        }
    }

    /// The 1-based (line, column) of the value `pointer` names, or of the
    /// deepest existing value on its way when the rest does not exist (a
    /// missing field points at the object that lacks it). Object members
    /// point at their key.
    pub fn position(&self, pointer: &str) -> (usize, usize) {
        let Some(root) = &self.root else {
            return (1, 1);
        };
        let mut at = root.start();
        let mut cur = root;
        for raw in pointer.split('/').skip(1) {
            let seg = raw.replace("~1", "/").replace("~0", "~");
            match cur {
                Value::Object(o) => match o.properties.iter().find(|p| p.name.as_str() == seg) {
                    Some(p) => {
                        at = p.range.start;
                        cur = &p.value;
                    }
                    None => break,
                },
                Value::Array(a) => {
                    match seg.parse::<usize>().ok().and_then(|i| a.elements.get(i)) {
                        Some(v) => {
                            at = v.start();
                            cur = v;
                        }
                        None => break,
                    }
                }
                _ => break,
            }
        }
        self.line_col(at)
    }

    /// The 1-based (line, column) of a byte offset; columns count characters.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }
}
