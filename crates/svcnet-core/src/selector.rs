//! Label selectors: the list-query syntax (`a=b,c!=d,e in (f,g),h notin (i),j,!k`) with
//! Kubernetes' parse errors, and matching against a label map.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use thiserror::Error;

use crate::field::{BadValue, FieldError, FieldPath, aggregate_message};
use crate::names;

/// A parse failure, worded as Kubernetes words it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement: `key op values`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Operator,
    pub values: BTreeSet<String>,
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Operator::Equals | Operator::DoubleEquals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(bound)) = (value, self.values.iter().next()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A conjunction of requirements; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// The equality selector of a Service's `spec.selector`.
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        Selector {
            requirements: map
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    op: Operator::Equals,
                    values: [v.clone()].into(),
                })
                .collect(),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses the list-query syntax.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        Parser::new(input).parse()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let vals: Vec<&str> = r.values.iter().map(String::as_str).collect();
                match r.op {
                    Operator::Equals => format!("{}={}", r.key, vals.join(",")),
                    Operator::DoubleEquals => format!("{}=={}", r.key, vals.join(",")),
                    Operator::NotEquals => format!("{}!={}", r.key, vals.join(",")),
                    Operator::In => format!("{} in ({})", r.key, vals.join(",")),
                    Operator::NotIn => format!("{} notin ({})", r.key, vals.join(",")),
                    Operator::Exists => r.key.clone(),
                    Operator::DoesNotExist => format!("!{}", r.key),
                    Operator::GreaterThan => format!("{}>{}", r.key, vals.join(",")),
                    Operator::LessThan => format!("{}<{}", r.key, vals.join(",")),
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Identifier,
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
    OpenPar,
    ClosedPar,
    Comma,
    End,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(input: &str) -> Vec<(Token, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let mut j = i;
            while j < chars.len() && is_special(chars[j]) {
                j += 1;
            }
            // longest known operator prefix of the run of special characters
            let run: String = chars[i..j].iter().collect();
            let (tok, len) = [
                ("!=", Token::NotEquals),
                ("==", Token::DoubleEquals),
                ("!", Token::DoesNotExist),
                ("=", Token::Equals),
                ("(", Token::OpenPar),
                (")", Token::ClosedPar),
                (",", Token::Comma),
                (">", Token::GreaterThan),
                ("<", Token::LessThan),
            ]
            .iter()
            .find(|(s, _)| run.starts_with(s))
            .map(|(s, t)| (*t, s.len()))
            .expect("every special character is a token");
            out.push((tok, run[..len].to_owned()));
            i += len;
            continue;
        }
        let mut j = i;
        while j < chars.len() && !chars[j].is_whitespace() && !is_special(chars[j]) {
            j += 1;
        }
        let word: String = chars[i..j].iter().collect();
        let tok = match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        out.push((tok, word));
        i = j;
    }
    out.push((Token::End, String::new()));
    out
}

struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

impl Parser {
    fn new(input: &str) -> Self {
        Parser {
            items: lex(input),
            pos: 0,
        }
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        let (mut tok, lit) = self.items[self.pos.min(self.items.len() - 1)].clone();
        if ctx == Context::Values && matches!(tok, Token::In | Token::NotIn) {
            tok = Token::Identifier;
        }
        (tok, lit)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.lookahead(ctx);
        if self.pos < self.items.len() - 1 {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Selector, SelectorError> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| SelectorError(format!("unable to parse requirement: {e}")))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::End => return Ok(Selector { requirements: reqs }),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(SelectorError(format!("found '{l2}', expected: identifier after ','")));
                            }
                        }
                        _ => return Err(SelectorError(format!("found '{l}', expected: ',' or 'end of string'"))),
                    }
                }
                Token::End => return Ok(Selector { requirements: reqs }),
                _ => {
                    return Err(SelectorError(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(op) = inferred {
            return new_requirement(key, op, BTreeSet::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, op, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        if let Some(e) = validate_label_key(&lit, &FieldPath::root()) {
            return Err(e.to_string());
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Token::End || t == Token::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                let (t, _) = self.consume(Context::Values);
                if t != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok([String::new()].into())
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut set = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.insert(lit);
                    let (t2, l2) = self.lookahead(Context::Values);
                    match t2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (t2, _) = self.lookahead(Context::Values);
                    if t2 == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if t2 == Token::Comma {
                        self.consume(Context::Values);
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::End || tok == Token::Comma {
            return Ok([String::new()].into());
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok([lit].into())
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

fn validate_label_key(key: &str, path: &FieldPath) -> Option<FieldError> {
    let errs = names::qualified_name(key);
    (!errs.is_empty()).then(|| FieldError::invalid(path.clone(), key, errs.join("; ")))
}

fn new_requirement(key: String, op: Operator, values: BTreeSet<String>) -> Result<Requirement, String> {
    let root = FieldPath::root();
    let mut errs = Vec::new();
    errs.extend(validate_label_key(&key, &root.child("key")));
    let values_path = root.child("values");
    let as_list = || BadValue::strings(Some(&values.iter().cloned().collect::<Vec<_>>()));
    match op {
        Operator::In | Operator::NotIn if values.is_empty() => errs.push(FieldError::invalid(
            values_path.clone(),
            as_list(),
            "for 'in', 'notin' operators, values set can't be empty",
        )),
        Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
            errs.push(FieldError::invalid(
                values_path.clone(),
                as_list(),
                "exact-match compatibility requires one single value",
            ));
        }
        Operator::GreaterThan | Operator::LessThan => {
            if values.len() != 1 {
                errs.push(FieldError::invalid(
                    values_path.clone(),
                    as_list(),
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(FieldError::invalid(
                        values_path.index(i),
                        v.as_str(),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let msgs = names::label_value(v);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                values_path.index(i).key(&key),
                v.as_str(),
                msgs.join("; "),
            ));
        }
    }
    match aggregate_message(&errs) {
        Some(msg) => Err(msg),
        None => Ok(Requirement { key, op, values }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_and_matches_every_operator() {
        let s = Selector::parse("app=web, tier==front,env!=prod,zone in (a, b),rack notin (r1),gpu,!legacy").unwrap();
        assert_eq!(s.requirements.len(), 7);
        let good = labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("zone", "a"),
            ("rack", "r2"),
            ("gpu", ""),
        ]);
        assert!(s.matches(&good));
        let mut bad = good.clone();
        bad.insert("legacy".into(), "1".into());
        assert!(!s.matches(&bad));
        let mut bad = good.clone();
        bad.insert("env".into(), "prod".into());
        assert!(!s.matches(&bad));
        let mut bad = good;
        bad.insert("zone".into(), "c".into());
        assert!(!s.matches(&bad));
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(Selector::parse("").unwrap().is_empty());
        assert!(Selector::parse("  ").unwrap().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn in_and_notin_are_values_after_operators() {
        let s = Selector::parse("x=in").unwrap();
        assert!(s.matches(&labels(&[("x", "in")])));
    }

    #[test]
    fn parse_errors_are_worded_like_kubernetes() {
        let cases = [
            ("x=a,", "found '', expected: identifier after ','"),
            (",x", "found ',', expected: !, identifier, or 'end of string'"),
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            ("x in a", "unable to parse requirement: found 'a' expected: '('"),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
            ("x in ()", ""),
            (
                "x ~ y",
                "unable to parse requirement: found '~', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("x=(", "unable to parse requirement: found '(', expected: identifier"),
            ("x in (a)b", "found 'b', expected: ',' or 'end of string'"),
        ];
        for (input, want) in cases {
            let got = Selector::parse(input).map(|s| s.to_string());
            match got {
                Err(e) => assert_eq!(e.0, want, "input {input:?}"),
                Ok(s) if want.is_empty() => drop(s),
                Ok(s) => panic!("{input:?} parsed as {s:?}, want error {want:?}"),
            }
        }
    }

    #[test]
    fn invalid_keys_and_values_are_reported() {
        let e = Selector::parse("-bad=x").unwrap_err();
        assert!(
            e.0.starts_with("unable to parse requirement: : Invalid value: \"-bad\": name part must consist"),
            "{e}"
        );
        let e = Selector::parse("a=b c").unwrap_err();
        assert_eq!(e.0, "found 'c', expected: ',' or 'end of string'");
        let e = Selector::parse("a=-x").unwrap_err();
        assert!(
            e.0.contains("values[0][a]: Invalid value: \"-x\": a valid label must be"),
            "{e}"
        );
        let e = Selector::parse("a>b").unwrap_err();
        assert!(
            e.0.contains("for 'Gt', 'Lt' operators, the value must be an integer"),
            "{e}"
        );
    }

    #[test]
    fn numeric_comparisons() {
        let s = Selector::parse("n>5").unwrap();
        assert!(s.matches(&labels(&[("n", "6")])));
        assert!(!s.matches(&labels(&[("n", "5")])));
        assert!(!s.matches(&labels(&[("n", "x")])));
    }
}
