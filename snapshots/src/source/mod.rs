//! The JSON directory source: model, parsing with every problem located,
//! compilation into a snapshot body, and the way back.

mod compile;
mod decompile;
mod locate;
mod model;
mod parse;
mod problem;

pub use compile::{RESERVED_USERNAME, compile, level_problem, plausible_email, valid_id};
pub use decompile::decompile;
pub use locate::Locator;
pub use model::*;
pub use parse::parse;
pub use problem::{Problem, Problems};

use crate::body::Body;

/// Parses and compiles a directory source text, locating every problem.
pub fn build(text: &str) -> Result<(Directory, Body), Problems> {
    let located = |mut problems: Vec<Problem>| {
        let locator = Locator::new(text);
        for p in &mut problems {
            if p.line == 0 {
                (p.line, p.column) = locator.position(&p.pointer);
            }
        }
        // Reading order: the slow path visits sections alphabetically.
        problems.sort_by_key(|p| (p.line, p.column));
        Problems(problems)
    };
    let dir = parse(text).map_err(located)?;
    let body = compile(&dir).map_err(located)?;
    Ok((dir, body))
}
