//! Every registered format, fed arbitrary bytes and damaged versions of its fixture requests
//! (truncated, one byte changed, one brace removed): an error or events, never a panic, and
//! every refusal names the format.

use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;

use crate::integration::Integration;

use super::cases::{cases, request_file};
use super::fixture::{context, CaseContext};
use super::golden::folder;
use super::parse;

/// One fixture request with the context it is sent in.
struct Case {
    kind: Integration,
    body: Vec<u8>,
    ctx: CaseContext,
}

/// Every fixture request of every kind, read once.
fn fixtures() -> &'static [Case] {
    static FIXTURES: OnceLock<Vec<Case>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut out = Vec::new();
        for kind in Integration::ALL {
            let dir = folder(kind);
            let names = cases(&dir).unwrap_or_else(|e| panic!("{e}"));
            assert!(!names.is_empty(), "{} has no fixtures", kind.as_str());
            for case in names {
                let body = std::fs::read(request_file(&dir, &case)).unwrap();
                let ctx = context(&dir.join(format!("{case}.context.json")))
                    .unwrap_or_else(|e| panic!("{e}"));
                out.push(Case { kind, body, ctx });
            }
        }
        out
    })
}

/// Parses `body` as the case's kind in the case's context (with `path`, and `query` instead of
/// the context's when given): never a panic, and a refusal names the format.
fn check(case: &Case, path: &str, query: Option<&str>, body: &[u8]) -> Result<(), TestCaseError> {
    let mut req = case.ctx.request(case.kind, path);
    req.query = query.or(req.query);
    if let Err(e) = parse(case.kind, &req, &mut body.to_vec()) {
        let name = case.kind.as_str();
        prop_assert!(e.to_string().starts_with(&format!("{name}: ")), "{e}");
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Damage {
    Truncate(Index),
    Replace(Index, u8),
    RemoveBrace(Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Damage::Replace(at, b)),
        any::<Index>().prop_map(Damage::RemoveBrace),
    ]
}

fn damaged(body: &[u8], damage: &Damage) -> Vec<u8> {
    let mut out = body.to_vec();
    if out.is_empty() {
        return out;
    }
    match damage {
        Damage::Truncate(at) => out.truncate(at.index(out.len())),
        Damage::Replace(at, b) => {
            let at = at.index(out.len());
            out[at] = *b;
        }
        Damage::RemoveBrace(which) => {
            let braces: Vec<usize> = (0..out.len())
                .filter(|&i| matches!(out[i], b'{' | b'}' | b'[' | b']'))
                .collect();
            if !braces.is_empty() {
                out.remove(braces[which.index(braces.len())]);
            }
        }
    }
    out
}

#[test]
fn every_kind_has_fixtures_to_damage() {
    for kind in Integration::ALL {
        assert!(
            fixtures().iter().any(|c| c.kind == kind),
            "{}",
            kind.as_str()
        );
    }
}

proptest! {
    /// Arbitrary bytes, in every fixture's context, at the format's root and under a path
    /// (Opsgenie's `/<alias>/close`, a generic mapper's name).
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        tail in "(/[a-z%0-9]{0,6}){0,3}",
    ) {
        for case in fixtures() {
            check(case, "", None, &body)?;
            check(case, &tail, Some("identifierType=alias"), &body)?;
        }
    }

    /// Every fixture request of every kind, damaged.
    #[test]
    fn damaged_payloads_never_panic(damage in damage()) {
        for case in fixtures() {
            check(case, "", None, &damaged(&case.body, &damage))?;
        }
    }
}
