use http::HeaderMap;

use super::*;
use crate::config::auth::Secret;

const OPS: &str = "ops-token-0123456789abcdef";
const TEAM_A: &str = "team-a-token-0123456789ab";
const READER: &str = "reader-token-0123456789ab";

fn token(name: &str, value: &str, scopes: Scopes, keys: Option<&[&str]>) -> AdminToken {
    AdminToken {
        name: name.into(),
        token: Secret::new(value),
        scopes,
        routing_keys: keys.map(|k| k.iter().map(|s| s.to_string()).collect()),
    }
}

fn auth() -> AdminAuth {
    let rw = Scopes {
        read: true,
        write: true,
        broad_silence: false,
    };
    let read = Scopes {
        read: true,
        ..Scopes::default()
    };
    AdminAuth::new(&[
        token("ops", OPS, Scopes::ALL, None),
        token("team-a", TEAM_A, rw, Some(&["team-a"])),
        token("reader", READER, read, None),
    ])
}

fn with_auth(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, value.parse().unwrap());
    h
}

fn matchers(list: &[(&str, &str, &str)]) -> Vec<Matcher> {
    list.iter()
        .map(|(n, op, v)| Matcher::new(n, op, v).unwrap())
        .collect()
}

#[test]
fn without_tokens_everyone_is_anonymous_with_every_scope() {
    let open = AdminAuth::default();
    assert!(open.is_open());
    let who = open.authenticate(&HeaderMap::new()).unwrap();
    assert_eq!(who.name(), ANONYMOUS);
    assert!(who.may_create(&matchers(&[("source", "=~", ".+")])).is_ok());
}

#[test]
fn a_bearer_token_names_its_caller_and_nothing_else_does() {
    let auth = auth();
    assert!(!auth.is_open());
    assert_eq!(
        auth.authenticate(&HeaderMap::new()).unwrap_err(),
        Denied::TokenMissing
    );
    assert_eq!(
        auth.authenticate(&with_auth(&format!("Basic {OPS}")))
            .unwrap_err(),
        Denied::TokenMissing
    );
    assert_eq!(
        auth.authenticate(&with_auth(OPS)).unwrap_err(),
        Denied::TokenMissing,
        "a bare token is not a bearer credential"
    );
    assert_eq!(
        auth.authenticate(&with_auth("Bearer ops-token-0123456789abcdeF"))
            .unwrap_err(),
        Denied::TokenUnknown
    );
    assert_eq!(
        auth.authenticate(&with_auth("Bearer ")).unwrap_err(),
        Denied::TokenUnknown
    );
    let who = auth
        .authenticate(&with_auth(&format!("bearer {TEAM_A}")))
        .unwrap();
    assert_eq!(who.name(), "team-a");
    let reader = auth
        .authenticate(&with_auth(&format!("Bearer {READER}")))
        .unwrap();
    assert!(reader.require(Scope::Read).is_ok());
    assert_eq!(reader.require(Scope::Write).unwrap_err().reason(), "scope");
    assert_eq!(
        reader
            .may_expire(&matchers(&[("source", "=", "db-1")]))
            .unwrap_err()
            .reason(),
        "scope"
    );
}

#[test]
fn a_limited_token_silences_only_its_keys_and_broad_silences_need_the_scope() {
    let auth = auth();
    let team_a = auth
        .authenticate(&with_auth(&format!("Bearer {TEAM_A}")))
        .unwrap();
    let ops = auth
        .authenticate(&with_auth(&format!("Bearer {OPS}")))
        .unwrap();
    let refused = |who: &Principal, list: &[(&str, &str, &str)]| {
        who.may_create(&matchers(list)).err().map(|d| d.reason())
    };
    // Another key's alerts, or no key at all, or a key named only by a regex.
    for list in [
        &[("routing_key", "=", "team-b"), ("class", "=", "Down")][..],
        &[("class", "=", "Down")],
        &[("routing_key", "=~", "team-a"), ("class", "=", "Down")],
        &[("routing_key", "!=", "team-b"), ("class", "=", "Down")],
    ] {
        assert_eq!(refused(&team_a, list), Some("routing_key"), "{list:?}");
    }
    assert_eq!(
        refused(
            &team_a,
            &[("routing_key", "=", "team-a"), ("class", "=", "Down")]
        ),
        None
    );
    // Nothing narrows it within team-a: broad.
    for list in [
        &[("routing_key", "=", "team-a")][..],
        &[("routing_key", "=", "team-a"), ("source", "=~", ".+")],
        &[("routing_key", "=", "team-a"), ("class", "=~", ".*")],
    ] {
        assert_eq!(refused(&team_a, list), Some("broad_silence"), "{list:?}");
        assert_eq!(refused(&ops, list), None, "{list:?}");
    }
    // Expiring needs the key, not the scope.
    let theirs = matchers(&[("routing_key", "=", "team-b"), ("class", "=", "Down")]);
    assert_eq!(
        team_a.may_expire(&theirs).unwrap_err().reason(),
        "routing_key"
    );
    assert!(team_a
        .may_expire(&matchers(&[("routing_key", "=", "team-a")]))
        .is_ok());
    assert!(ops.may_expire(&theirs).is_ok());
}

#[test]
fn refusals_are_401_or_403_in_json_and_never_show_the_token() {
    let auth = auth();
    let body = |resp: Response<Body>| {
        let (status, headers, json) = crate::ingest::auth::answer(resp);
        (status, headers.get(WWW_AUTHENTICATE).cloned(), json)
    };
    let denied = auth
        .authenticate(&with_auth("Bearer guessed-token-000000000"))
        .unwrap_err();
    let (status, challenge, json) = body(denied.refuse(&Method::POST, "/api/v2/silences"));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.unwrap(), "Bearer realm=\"sluice\"");
    assert_eq!(
        json,
        serde_json::json!({"status": "unauthorized", "message": "the bearer token is not one of auth.tokens", "errors": []})
    );
    let team_a = auth
        .authenticate(&with_auth(&format!("Bearer {TEAM_A}")))
        .unwrap();
    let denied = team_a
        .may_create(&matchers(&[("class", "=", "Down")]))
        .unwrap_err();
    let (status, challenge, json) = body(denied.refuse(&Method::POST, "/api/v1/silences"));
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.is_none());
    assert_eq!(json["status"], "forbidden");
    let message = json["message"].as_str().unwrap();
    assert!(
        message.starts_with("token \"team-a\" may only act on routing keys team-a"),
        "{message}"
    );
    assert!(!message.contains(TEAM_A));
}
