//! Label matchers, as Alertmanager has them: a field, an operator (`=`, `!=`, `=~`, `!~`) and a
//! value. Regular expressions are anchored (they match the whole value) and compiled once, when
//! the config or the silence is loaded. Rules, silences, inhibition and event rules all use them.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::event::{Event, Field};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "=~")]
    Re,
    #[serde(rename = "!~")]
    NotRe,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "=" => Some(Op::Eq),
            "!=" => Some(Op::Ne),
            "=~" => Some(Op::Re),
            "!~" => Some(Op::NotRe),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        }
    }
}

/// How a matcher is written in config and in the silences API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatcher {
    pub name: String,
    pub op: String,
    pub value: String,
}

#[derive(Clone, Debug)]
pub struct Matcher {
    pub field: Field,
    pub op: Op,
    pub value: String,
    pattern: Option<Pattern>,
}

/// A regex operator's value, compiled: `.+` and `.*` (Alertmanager's "has a value" and "any
/// value" idioms; the built-in symptom inhibition asks `entity.host=~".+"` of every new alert)
/// are answered without running the regex, with its meaning kept (`.` matches anything but a
/// newline).
#[derive(Clone, Debug)]
enum Pattern {
    NonEmpty,
    Any,
    Regex(Regex),
}

/// A matcher's regular expression: anchored, it matches the whole value.
fn anchored(value: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{value})$"))
}

impl Pattern {
    fn is_match(&self, v: &str) -> bool {
        match self {
            Pattern::NonEmpty => !v.is_empty() && !v.contains('\n'),
            Pattern::Any => !v.contains('\n'),
            Pattern::Regex(re) => re.is_match(v),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.field == other.field && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{:?}",
            self.field.name(),
            self.op.as_str(),
            self.value
        )
    }
}

/// Anything matchers can be applied to.
pub trait Subject {
    fn get(&self, field: &Field) -> &str;
}

impl Subject for Event {
    fn get(&self, field: &Field) -> &str {
        self.field(field)
    }
}

impl Matcher {
    /// Builds a matcher; the error says what is wrong with which part.
    pub fn new(name: &str, op: &str, value: &str) -> Result<Matcher, String> {
        let field = Field::parse(name).ok_or_else(|| {
            format!("name {name:?} is not a field (routing_key, integration, severity, source, component, group, class, summary, dedup_key, labels.<name>, entity.<class|host|pod|rack|service|cluster>)")
        })?;
        let op = Op::parse(op).ok_or_else(|| format!("op {op:?} must be one of =, !=, =~, !~"))?;
        let pattern = match op {
            Op::Re | Op::NotRe => Some(match value {
                ".+" => Pattern::NonEmpty,
                ".*" => Pattern::Any,
                _ => Pattern::Regex(
                    anchored(value)
                        .map_err(|e| format!("value {value:?} is not a regular expression: {e}"))?,
                ),
            }),
            Op::Eq | Op::Ne => None,
        };
        Ok(Matcher {
            field,
            op,
            value: value.to_string(),
            pattern,
        })
    }

    pub fn from_raw(raw: &RawMatcher) -> Result<Matcher, String> {
        Matcher::new(&raw.name, &raw.op, &raw.value)
    }

    pub fn to_raw(&self) -> RawMatcher {
        RawMatcher {
            name: self.field.name().into_owned(),
            op: self.op.as_str().into(),
            value: self.value.clone(),
        }
    }

    pub fn matches_value(&self, v: &str) -> bool {
        match (self.op, &self.pattern) {
            (Op::Eq, _) => v == self.value,
            (Op::Ne, _) => v != self.value,
            (Op::Re, Some(re)) => re.is_match(v),
            (Op::NotRe, Some(re)) => !re.is_match(v),
            (Op::Re | Op::NotRe, None) => unreachable!("regex ops always carry a pattern"),
        }
    }

    pub fn matches(&self, subject: &impl Subject) -> bool {
        self.matches_value(subject.get(&self.field))
    }
}

/// Whether every matcher matches (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], subject: &impl Subject) -> bool {
    matchers.iter().all(|m| m.matches(subject))
}

/// Parses a list of raw matchers, reporting each problem as `<at>[i]: <problem>`.
pub fn parse_all(raw: &[RawMatcher], at: &str, problems: &mut Vec<String>) -> Vec<Matcher> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            Matcher::from_raw(r)
                .map_err(|e| problems.push(format!("{at}[{i}]: {e}")))
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Map(Vec<(Field, &'static str)>);
    impl Subject for Map {
        fn get(&self, field: &Field) -> &str {
            self.0
                .iter()
                .find(|(f, _)| f == field)
                .map_or("", |(_, v)| v)
        }
    }

    #[test]
    fn every_operator() {
        let s = Map(vec![
            (Field::Source, "db-1"),
            (Field::Label("team".into()), "payments"),
        ]);
        assert!(Matcher::new("source", "=", "db-1").unwrap().matches(&s));
        assert!(!Matcher::new("source", "!=", "db-1").unwrap().matches(&s));
        assert!(Matcher::new("source", "=~", "db-.*").unwrap().matches(&s));
        assert!(
            !Matcher::new("source", "=~", "db").unwrap().matches(&s),
            "regexes are anchored"
        );
        assert!(Matcher::new("labels.team", "!~", "ops|infra")
            .unwrap()
            .matches(&s));
        assert!(
            Matcher::new("labels.missing", "=", "").unwrap().matches(&s),
            "absent is empty"
        );
        assert!(all_match(&[], &s));
    }

    #[test]
    fn has_a_value_and_any_value_answer_as_their_regexes() {
        for value in [".+", ".*"] {
            let re = anchored(value).unwrap();
            for op in ["=~", "!~"] {
                let m = Matcher::new("source", op, value).unwrap();
                assert!(
                    !matches!(m.pattern, Some(Pattern::Regex(_))),
                    "{value} needs no regex"
                );
                for v in ["", "db-1", "é", "a\nb", "\n", "a\r"] {
                    assert_eq!(
                        m.matches_value(v),
                        re.is_match(v) == (op == "=~"),
                        "{op}{value:?} on {v:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn errors_name_the_part() {
        assert!(Matcher::new("hostname", "=", "x")
            .unwrap_err()
            .starts_with("name \"hostname\""));
        assert!(Matcher::new("source", "==", "x")
            .unwrap_err()
            .starts_with("op \"==\""));
        assert!(Matcher::new("source", "=~", "(")
            .unwrap_err()
            .starts_with("value \"(\""));
        let mut problems = Vec::new();
        let raw = vec![
            RawMatcher {
                name: "source".into(),
                op: "=".into(),
                value: "a".into(),
            },
            RawMatcher {
                name: "source".into(),
                op: "~".into(),
                value: "a".into(),
            },
        ];
        assert_eq!(parse_all(&raw, "silence.matchers", &mut problems).len(), 1);
        assert_eq!(
            problems,
            vec!["silence.matchers[1]: op \"~\" must be one of =, !=, =~, !~"]
        );
    }
}
