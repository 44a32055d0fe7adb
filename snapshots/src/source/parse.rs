//! Text → [`Directory`], collecting every structural problem at once.
//!
//! The fast path is one typed serde_json pass (with unknown fields recorded,
//! not fatal). Only when that fails on a type error does the slow path
//! re-read the document element by element, so one bad user does not hide
//! the problems of the next.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::{Directory, SOURCE_FORMAT};
use super::problem::{Problem, escape_segment};

/// Parses a directory source. Problems carry pointers but no positions yet.
pub fn parse(text: &str) -> Result<Directory, Vec<Problem>> {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let result: Result<Directory, _> = serde_path_to_error::deserialize(
        serde_ignored::Deserializer::new(&mut de, &mut |path: serde_ignored::Path<'_>| {
            unknown.push(ignored_pointer(&path))
        }),
    );
    let err = match result {
        Ok(dir) => {
            // Trailing characters after the document are a syntax error too.
            if let Err(e) = de.end() {
                return Err(vec![syntax_problem(&e)]);
            }
            if !unknown.is_empty() {
                return Err(unknown.into_iter().map(unknown_field).collect());
            }
            return check_format(dir);
        }
        Err(e) => e,
    };
    if err.inner().is_syntax() || err.inner().is_eof() {
        return Err(vec![syntax_problem(err.inner())]);
    }
    // A type error: re-read element by element to find all of them.
    let problems = slow_path(text);
    if problems.is_empty() {
        // Cannot happen unless the two passes disagree; never report success.
        Err(vec![Problem::new(
            path_pointer(err.path()),
            strip_position(&err.inner().to_string()),
        )])
    } else {
        Err(problems)
    }
}

fn syntax_problem(e: &serde_json::Error) -> Problem {
    let mut p = Problem::new("", strip_position(&e.to_string()))
        .hint("the file is not valid JSON; fix the syntax first, then run again");
    p.line = e.line();
    p.column = e.column();
    p
}

fn check_format(dir: Directory) -> Result<Directory, Vec<Problem>> {
    if dir.format == SOURCE_FORMAT {
        Ok(dir)
    } else {
        Err(vec![
            Problem::new("/format", format!("unsupported format {}", dir.format)).hint(format!(
                "this version of Portcullis reads directory format {SOURCE_FORMAT}"
            )),
        ])
    }
}

fn unknown_field(pointer: String) -> Problem {
    let field = pointer.rsplit('/').next().unwrap_or("").to_string();
    Problem::new(pointer, format!("unknown field {field:?}"))
        .hint("check the spelling against snapshots/FORMAT.md; unknown fields are refused so that typos cannot silently drop a rule")
}

/// serde_json appends " at line L column C"; we print positions ourselves.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn ignored_pointer(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}/{index}", ignored_pointer(parent)),
        Path::Map { parent, key } => format!("{}/{}", ignored_pointer(parent), escape_segment(key)),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_pointer(parent),
    }
}

fn path_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&escape_segment(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// Deserializes `v` as `T`, reporting its unknown fields and first type
/// error with pointers under `base`.
fn check_value<T: DeserializeOwned>(v: Value, base: &str, problems: &mut Vec<Problem>) {
    let mut unknown = Vec::new();
    let r: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        v,
        &mut |path: serde_ignored::Path<'_>| {
            unknown.push(format!("{base}{}", ignored_pointer(&path)))
        },
    ));
    problems.extend(unknown.into_iter().map(unknown_field));
    if let Err(e) = r {
        problems.push(Problem::new(
            format!("{base}{}", path_pointer(e.path())),
            strip_position(&e.inner().to_string()),
        ));
    }
}

fn check_array<T: DeserializeOwned>(v: Value, base: &str, problems: &mut Vec<Problem>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                check_value::<T>(item, &format!("{base}/{i}"), problems);
            }
        }
        other => problems.push(Problem::new(
            base,
            format!("expected an array, found {}", kind_of(&other)),
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn slow_path(text: &str) -> Vec<Problem> {
    use super::model as m;
    let mut problems = Vec::new();
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(text) else {
        problems.push(
            Problem::new("", "the document is not a JSON object")
                .hint("a directory is an object with \"format\": 1 and \"organizations\""),
        );
        return problems;
    };
    if !doc.contains_key("format") {
        problems.push(Problem::new("", "missing field `format`").hint("add \"format\": 1"));
    }
    if !doc.contains_key("organizations") {
        problems.push(Problem::new("", "missing field `organizations`"));
    }
    for (key, v) in doc {
        let base = format!("/{}", escape_segment(&key));
        let p = &mut problems;
        match key.as_str() {
            "format" => check_value::<u32>(v, &base, p),
            "revision" => check_value::<u64>(v, &base, p),
            "organizations" => check_array::<m::Organization>(v, &base, p),
            "environments" => check_array::<m::Environment>(v, &base, p),
            "catalogs" => check_array::<m::Catalog>(v, &base, p),
            "objects" => check_array::<m::Object>(v, &base, p),
            "users" => check_array::<m::User>(v, &base, p),
            "service_accounts" => check_array::<m::ServiceAccount>(v, &base, p),
            "api_keys" => check_array::<m::ApiKey>(v, &base, p),
            "groups" => check_array::<m::Group>(v, &base, p),
            "teams" => check_array::<m::Team>(v, &base, p),
            "custom_roles" => check_array::<m::CustomRole>(v, &base, p),
            "grants" => check_array::<m::Grant>(v, &base, p),
            "permissions" => check_array::<m::PermissionGrant>(v, &base, p),
            _ => p.push(unknown_field(base)),
        }
    }
    problems
}
