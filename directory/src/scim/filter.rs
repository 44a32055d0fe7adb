//! SCIM filters and attribute paths (RFC 7644 §3.4.2.2 and §3.5.2): the
//! grammar, parsed into a tree, and evaluated against a resource as the
//! provider shows it (its JSON). Attribute names compare without case, as
//! the RFC says; string values compare without case unless the attribute
//! is case-exact (`id`, `externalId`, `$ref`-like values); dates compare as
//! instants.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ScimError;

/// The longest filter or path accepted: longer ones are refused, not
/// parsed (a filter is a query, not a payload).
const MAX_LEN: usize = 4096;
/// The deepest nesting of parentheses and `not`s.
const MAX_DEPTH: usize = 32;

/// `[urn:…:]name[.sub]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN, when written (`urn:ietf:params:scim:schemas:core:2.0:User`).
    pub urn: Option<String>,
    /// The attribute.
    pub name: String,
    /// Its sub-attribute.
    pub sub: Option<String>,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less or equal.
    Le,
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `attr op value`.
    Compare(AttrPath, Op, Value),
    /// `attr pr`.
    Present(AttrPath),
    /// Both.
    And(Box<Filter>, Box<Filter>),
    /// Either.
    Or(Box<Filter>, Box<Filter>),
    /// `not (…)`.
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued `attr` matches.
    Within(AttrPath, Box<Filter>),
}

/// A PATCH path: an attribute, optionally narrowed to the values matching
/// a filter, optionally one sub-attribute of those.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    /// The attribute (its `sub` set when the path is `name.sub`).
    pub attr: AttrPath,
    /// `[…]`: which values.
    pub filter: Option<Filter>,
    /// `[…].sub`.
    pub sub: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(serde_json::Number),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn invalid(message: impl Into<String>) -> ScimError {
    ScimError::invalid_filter(message)
}

fn tokens(text: &str) -> Result<Vec<Token>, ScimError> {
    if text.len() > MAX_LEN {
        return Err(invalid(format!(
            "the filter is {} characters, over {MAX_LEN}: narrow it",
            text.len()
        )));
    }
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b.get(i).copied().unwrap_or(b' ');
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b'[' => {
                out.push(Token::OpenBracket);
                i += 1;
            }
            b']' => {
                out.push(Token::CloseBracket);
                i += 1;
            }
            b'"' => {
                // A JSON string: let serde_json read it, escapes and all.
                let mut j = i + 1;
                let mut escaped = false;
                loop {
                    match b.get(j) {
                        None => {
                            return Err(invalid(format!(
                                "the string starting at character {i} is not closed"
                            )));
                        }
                        Some(b'\\') if !escaped => escaped = true,
                        Some(b'"') if !escaped => break,
                        Some(_) => escaped = false,
                    }
                    j += 1;
                }
                let raw = text.get(i..=j).unwrap_or_default();
                let s: String = serde_json::from_str(raw).map_err(|e| {
                    invalid(format!("the string at character {i} is not valid: {e}"))
                })?;
                out.push(Token::Str(s));
                i = j + 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while b
                    .get(i)
                    .is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    i += 1;
                }
                let raw = text.get(start..i).unwrap_or_default();
                let n: serde_json::Number = serde_json::from_str(raw)
                    .map_err(|_| invalid(format!("{raw:?} is not a number")))?;
                out.push(Token::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == b'$' || c == b'_' => {
                let start = i;
                while b.get(i).is_some_and(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'$' | b'_' | b'-' | b':' | b'.')
                }) {
                    i += 1;
                }
                out.push(Token::Word(
                    text.get(start..i).unwrap_or_default().to_string(),
                ));
            }
            _ => {
                let ch = text.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
                return Err(invalid(format!(
                    "unexpected {ch:?} at character {i}: a filter is attribute, operator, value (`userName eq \"pat\"`)"
                )));
            }
        }
    }
    Ok(out)
}

/// `[urn:…:]name[.sub]` from one word.
pub fn attr_path(word: &str) -> Result<AttrPath, ScimError> {
    let (urn, rest) = if word.len() > 4
        && word
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        match word.rfind(':') {
            Some(i) => (
                Some(word.get(..i).unwrap_or_default().to_string()),
                word.get(i + 1..).unwrap_or_default(),
            ),
            None => (None, word),
        }
    } else {
        (None, word)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
    };
    if !ok(name) || sub.is_some_and(|s| !ok(s)) {
        return Err(ScimError::invalid_path(format!(
            "{word:?} is not an attribute path (name, name.sub, or urn:…:name)"
        )));
    }
    Ok(AttrPath {
        urn,
        name: name.to_string(),
        sub: sub.map(str::to_string),
    })
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn deeper(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid(format!(
                "the filter nests deeper than {MAX_DEPTH}: simplify it"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        if self.keyword("not") {
            self.at += 1;
            self.deeper()?;
            if self.next() != Some(Token::Open) {
                return Err(invalid("`not` is followed by a parenthesised filter"));
            }
            let inner = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err(invalid("a `(` is not closed"));
            }
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            self.deeper()?;
            let inner = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err(invalid("a `(` is not closed"));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Filter, ScimError> {
        let word = match self.next() {
            Some(Token::Word(w)) => w,
            Some(t) => {
                return Err(invalid(format!(
                    "expected an attribute, found {}",
                    describe(&t)
                )));
            }
            None => return Err(invalid("the filter ends where an attribute was expected")),
        };
        let path = attr_path(&word).map_err(|e| invalid(e.detail))?;
        if self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            self.deeper()?;
            let inner = self.or()?;
            if self.next() != Some(Token::CloseBracket) {
                return Err(invalid(format!("the `[` after {word:?} is not closed")));
            }
            self.depth -= 1;
            return Ok(Filter::Within(path, Box::new(inner)));
        }
        let op = match self.next() {
            Some(Token::Word(w)) => w.to_ascii_lowercase(),
            _ => {
                return Err(invalid(format!(
                    "{word:?} is followed by no operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"
                )));
            }
        };
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => {
                return Err(invalid(format!(
                    "{other:?} is not an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"
                )));
            }
        };
        let value = match self.next() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Num(n)) => Value::Number(n),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => Value::Null,
            Some(t) => {
                return Err(invalid(format!(
                    "{word:?} {op:?} needs a value (a \"string\", a number, true, false or null), found {}",
                    describe(&t)
                )));
            }
            None => return Err(invalid(format!("{word:?} has no value to compare with"))),
        };
        if matches!(op, Op::Co | Op::Sw | Op::Ew) && !value.is_string() {
            return Err(invalid(format!(
                "co, sw and ew compare strings; {value} is not one"
            )));
        }
        Ok(Filter::Compare(path, op, value))
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("{w:?}"),
        Token::Str(s) => format!("the string {s:?}"),
        Token::Num(n) => format!("the number {n}"),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::OpenBracket => "`[`".into(),
        Token::CloseBracket => "`]`".into(),
    }
}

/// Parses a filter.
pub fn parse(text: &str) -> Result<Filter, ScimError> {
    let mut p = Parser {
        tokens: tokens(text)?,
        at: 0,
        depth: 0,
    };
    if p.tokens.is_empty() {
        return Err(invalid("the filter is empty"));
    }
    let f = p.or()?;
    if let Some(t) = p.peek() {
        return Err(invalid(format!(
            "unexpected {} after a complete filter (join filters with and / or)",
            describe(t)
        )));
    }
    Ok(f)
}

/// Parses a PATCH path: `attr`, `attr.sub`, `attr[filter]`,
/// `attr[filter].sub`, any of them behind a schema URN.
pub fn parse_path(text: &str) -> Result<Path, ScimError> {
    let text = text.trim();
    if text.len() > MAX_LEN {
        return Err(ScimError::invalid_path("the path is too long"));
    }
    let Some(open) = text.find('[') else {
        return Ok(Path {
            attr: attr_path(text)?,
            filter: None,
            sub: None,
        });
    };
    let close = text
        .rfind(']')
        .filter(|&c| c > open)
        .ok_or_else(|| ScimError::invalid_path(format!("{text:?}: the `[` is not closed")))?;
    let attr = attr_path(text.get(..open).unwrap_or_default())?;
    if attr.sub.is_some() {
        return Err(ScimError::invalid_path(format!(
            "{text:?}: a filter follows a multi-valued attribute, not a sub-attribute"
        )));
    }
    let filter = parse(text.get(open + 1..close).unwrap_or_default())
        .map_err(|e| ScimError::invalid_path(format!("{text:?}: {}", e.detail)))?;
    let rest = text.get(close + 1..).unwrap_or_default();
    let sub = match rest {
        "" => None,
        r => match r.strip_prefix('.') {
            Some(s) if attr_path(s).is_ok_and(|a| a.sub.is_none() && a.urn.is_none()) => {
                Some(s.to_string())
            }
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "{text:?}: after `]` comes nothing or `.sub-attribute`"
                )));
            }
        },
    };
    Ok(Path {
        attr,
        filter: Some(filter),
        sub,
    })
}

/// Finds `name` in an object, without case.
pub fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The attributes compared with case (RFC 7643: `id`, `externalId`, and
/// the `value`s of references).
fn case_exact(path: &AttrPath) -> bool {
    let n = path.sub.as_deref().unwrap_or(&path.name);
    ["id", "externalId", "$ref"]
        .iter()
        .any(|x| x.eq_ignore_ascii_case(n))
        || (path.name.eq_ignore_ascii_case("members") && n.eq_ignore_ascii_case("value"))
}

/// Whether the value at `path` is a date (compared as instants).
fn is_date(path: &AttrPath) -> bool {
    path.name.eq_ignore_ascii_case("meta")
        && path.sub.as_deref().is_some_and(|s| {
            s.eq_ignore_ascii_case("created") || s.eq_ignore_ascii_case("lastModified")
        })
}

/// The values at `path` in `resource`: an attribute's value, or each value
/// of a multi-valued one (its `value` sub-attribute when it is complex and
/// no sub-attribute is named, as RFC 7644 §3.4.2.2 says).
fn values<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let Some(v) = field(resource, &path.name) else {
        return Vec::new();
    };
    let pick = |x: &'a Value| -> Option<&'a Value> {
        match &path.sub {
            Some(s) => field(x, s),
            None if x.is_object() => field(x, "value"),
            None => Some(x),
        }
    };
    match v {
        Value::Array(items) => items.iter().filter_map(pick).collect(),
        Value::Object(_) if path.sub.is_some() => pick(v).into_iter().collect(),
        other => vec![other],
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn instant(v: &Value) -> Option<i128> {
    let s = v.as_str()?;
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

fn compare(have: &Value, op: Op, want: &Value, exact: bool, date: bool) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = if date {
        instant(have).zip(instant(want)).map(|(a, b)| a.cmp(&b))
    } else {
        match (have, want) {
            (Value::String(a), Value::String(b)) => Some(if exact {
                a.cmp(b)
            } else {
                a.to_lowercase().cmp(&b.to_lowercase())
            }),
            (Value::Number(a), Value::Number(b)) => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            // Entra sends booleans as strings.
            (Value::Bool(a), Value::String(b)) | (Value::String(b), Value::Bool(a)) => b
                .parse::<bool>()
                .ok()
                .or_else(|| match b.to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                })
                .map(|b| a.cmp(&b)),
            _ => None,
        }
    };
    let text = |f: fn(&str, &str) -> bool| match (have, want) {
        (Value::String(a), Value::String(b)) => {
            if exact {
                f(a, b)
            } else {
                f(&a.to_lowercase(), &b.to_lowercase())
            }
        }
        _ => false,
    };
    match op {
        Op::Eq => ordering == Some(Ordering::Equal),
        Op::Ne => ordering != Some(Ordering::Equal),
        Op::Co => text(|a, b| a.contains(b)),
        Op::Sw => text(|a, b| a.starts_with(b)),
        Op::Ew => text(|a, b| a.ends_with(b)),
        Op::Gt => ordering == Some(Ordering::Greater),
        Op::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => ordering == Some(Ordering::Less),
        Op::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
    }
}

impl Filter {
    /// Whether `resource` (an object, or one value of a multi-valued
    /// attribute inside `[…]`) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(a) => !a.matches(resource),
            Filter::Present(p) => values(resource, p).into_iter().any(present),
            Filter::Compare(p, op, want) => {
                let found = values(resource, p);
                if *op == Op::Ne {
                    // `ne`: no value equals (an absent attribute is not equal).
                    return !found
                        .iter()
                        .any(|v| compare(v, Op::Eq, want, case_exact(p), is_date(p)));
                }
                if want.is_null() && *op == Op::Eq {
                    return found.iter().all(|v| !present(v));
                }
                found
                    .iter()
                    .any(|v| compare(v, *op, want, case_exact(p), is_date(p)))
            }
            Filter::Within(p, inner) => match field(resource, &p.name) {
                Some(Value::Array(items)) => items.iter().any(|i| inner.matches(i)),
                Some(v @ Value::Object(_)) => inner.matches(v),
                _ => false,
            },
        }
    }

    /// The values `attribute eq "…"` requires at the top of the filter (in
    /// every branch of an `and`; one of an `or` only when each side names
    /// the same attribute): what an index answers without a scan.
    pub fn equalities(&self, attribute: &str, sub: Option<&str>) -> Option<Vec<String>> {
        let same = |p: &AttrPath| {
            p.name.eq_ignore_ascii_case(attribute)
                && match (&p.sub, sub) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    // `emails eq "x"` means `emails.value eq "x"`.
                    (None, Some(b)) => b.eq_ignore_ascii_case("value"),
                    (Some(_), None) => false,
                }
        };
        match self {
            Filter::Compare(p, Op::Eq, Value::String(s)) if same(p) => Some(vec![s.clone()]),
            Filter::And(a, b) => a
                .equalities(attribute, sub)
                .or_else(|| b.equalities(attribute, sub)),
            Filter::Or(a, b) => {
                let mut x = a.equalities(attribute, sub)?;
                x.extend(b.equalities(attribute, sub)?);
                Some(x)
            }
            Filter::Within(p, inner)
                if p.name.eq_ignore_ascii_case(attribute) && p.sub.is_none() =>
            {
                inner.equalities(sub.unwrap_or("value"), None)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "id": "pat", "userName": "Pat@Example.com", "externalId": "00u1",
            "active": true, "displayName": "Pat Doe",
            "name": {"givenName": "Pat", "familyName": "Doe"},
            "emails": [{"value": "pat@example.com", "type": "work", "primary": true},
                       {"value": "pat@home.example", "type": "home"}],
            "meta": {"lastModified": "2026-12-01T10:00:00Z"}
        })
    }

    fn m(f: &str) -> bool {
        parse(f).unwrap().matches(&user())
    }

    #[test]
    fn the_operators_of_rfc_7644() {
        assert!(
            m(r#"userName eq "pat@example.com""#),
            "userName is not case-exact"
        );
        assert!(!m(r#"externalId eq "00U1""#), "externalId is case-exact");
        assert!(
            m(r#"USERNAME Eq "pat@example.com""#),
            "attribute names and operators ignore case"
        );
        assert!(m(r#"displayName co "t D""#));
        assert!(m(r#"displayName sw "pat""#));
        assert!(m(r#"displayName ew "DOE""#));
        assert!(m(r#"userName ne "someone""#));
        assert!(
            m("title ne \"x\""),
            "an absent attribute is not equal to anything"
        );
        assert!(m("name.givenName pr"));
        assert!(!m("title pr"));
        assert!(m("active eq true"));
        assert!(m(r#"meta.lastModified gt "2026-11-30T00:00:00+01:00""#));
        assert!(!m(r#"meta.lastModified lt "2026-12-01T10:00:00Z""#));
        assert!(m(r#"meta.lastModified le "2026-12-01T10:00:00Z""#));
        assert!(
            m(r#"emails eq "pat@home.example""#),
            "any value of a multi-valued attribute"
        );
        assert!(m(r#"emails[type eq "work" and value ew "example.com"]"#));
        assert!(!m(r#"emails[type eq "home" and value ew "example.com"]"#));
        assert!(m(
            r#"not (userName eq "x") and (active eq false or name.familyName eq "doe")"#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "pat""#
        ));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        // a or b and c == a or (b and c)
        assert!(m(
            r#"userName eq "pat@example.com" or userName eq "x" and active eq false"#
        ));
        assert!(!m(
            r#"(userName eq "pat@example.com" or userName eq "x") and active eq false"#
        ));
    }

    #[test]
    fn malformed_filters_say_what_is_wrong() {
        for (f, says) in [
            ("", "empty"),
            ("userName", "no operator"),
            (r#"userName eq"#, "no value"),
            (r#"userName xx "a""#, "not an operator"),
            (r#"userName eq "a" extra"#, "after a complete filter"),
            (r#"(userName eq "a""#, "not closed"),
            (r#"userName eq "a"#, "not closed"),
            (r#"emails[type eq "work""#, "not closed"),
            ("userName co 3", "compare strings"),
            ("userName eq 'a'", "unexpected"),
            ("not userName eq \"a\"", "parenthesised"),
        ] {
            let e = parse(f).unwrap_err();
            assert_eq!(e.scim_type.as_deref(), Some("invalidFilter"), "{f}");
            assert!(e.detail.contains(says), "{f}: {}", e.detail);
        }
        let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().detail.contains("deeper"));
        assert!(parse(&"a".repeat(5000)).is_err());
    }

    #[test]
    fn paths_as_identity_providers_write_them() {
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr.name, "emails");
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = parse_path(r#"members[value eq "2819c223"]"#).unwrap();
        assert!(p.filter.is_some());
        let p = parse_path("name.givenName").unwrap();
        assert_eq!(p.attr.sub.as_deref(), Some("givenName"));
        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
            .unwrap();
        assert_eq!(p.attr.name, "department");
        assert_eq!(
            p.attr.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        for bad in [
            "",
            "emails[",
            "emails[type eq \"work\"]value",
            "9abc",
            "a.b.c",
        ] {
            let e = parse_path(bad).unwrap_err();
            assert_eq!(e.scim_type.as_deref(), Some("invalidPath"), "{bad}");
        }
    }

    #[test]
    fn equalities_find_what_an_index_answers() {
        let f = parse(r#"userName eq "a" and active eq true"#).unwrap();
        assert_eq!(f.equalities("userName", None), Some(vec!["a".into()]));
        let f = parse(r#"userName eq "a" or userName eq "b""#).unwrap();
        assert_eq!(f.equalities("userName", None).unwrap().len(), 2);
        let f = parse(r#"userName eq "a" or active eq true"#).unwrap();
        assert_eq!(f.equalities("userName", None), None);
        let f = parse(r#"emails[type eq "work" and value eq "x@y.z"]"#).unwrap();
        assert_eq!(
            f.equalities("emails", Some("value")),
            Some(vec!["x@y.z".into()])
        );
        let f = parse(r#"emails.value eq "x@y.z""#).unwrap();
        assert_eq!(
            f.equalities("emails", Some("value")),
            Some(vec!["x@y.z".into()])
        );
    }
}
