use super::*;
use crate::matchers::Op;

const NOW: UnixMillis = UnixMillis(1_700_000_000_000);
const WEEK: Duration = Duration::from_secs(7 * 86_400);

#[test]
fn names_map_as_an_alertmanager_user_means_them_and_back() {
    for (name, field) in [
        ("alertname", Field::Class),
        ("class", Field::Class),
        ("routing_key", Field::RoutingKey),
        ("severity", Field::Severity),
        ("source", Field::Source),
        ("instance", Field::Label("instance".into())),
        ("team", Field::Label("team".into())),
        ("labels.severity", Field::Label("severity".into())),
        ("labels.alertname", Field::Label("alertname".into())),
        ("entity.host", Field::Entity(crate::event::LinkKind::Host)),
    ] {
        assert_eq!(field_of(name), Some(field.clone()), "{name}");
        assert_eq!(field_of(&name_of(&field)), Some(field), "{name}");
    }
    assert_eq!(name_of(&Field::Class), "alertname");
    assert_eq!(name_of(&Field::Label("team".into())), "team");
    assert_eq!(name_of(&Field::Label("source".into())), "labels.source");
    assert_eq!(field_of(""), None);
}

#[test]
fn amtools_silence_parses() {
    // What `amtool silence add alertname=Down 'instance=~"db-.*"' -c disk -a ana -d 2h` posts.
    let body = br#"{"comment":"disk","createdBy":"ana","endsAt":"2023-11-15T00:13:20.000Z","matchers":[{"isEqual":true,"isRegex":false,"name":"alertname","value":"Down"},{"isEqual":true,"isRegex":true,"name":"instance","value":"db-.*"},{"isEqual":false,"isRegex":false,"name":"routing_key","value":"b"}],"startsAt":"2023-11-14T22:13:19.000Z"}"#;
    let s = parse(body, NOW, WEEK).unwrap();
    let got: Vec<(Field, Op, &str)> = s
        .matchers
        .iter()
        .map(|m| (m.field.clone(), m.op, m.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Field::Class, Op::Eq, "Down"),
            (Field::Label("instance".into()), Op::Re, "db-.*"),
            (Field::RoutingKey, Op::Ne, "b"),
        ]
    );
    assert_eq!(s.starts_at, NOW, "a start a second ago is now");
    assert_eq!(s.ends_at, UnixMillis(NOW.0 + 2 * 3_600_000));
    assert_eq!((s.created_by.as_str(), s.comment.as_str()), ("ana", "disk"));
    let shown = serde_json::to_value(gettable(&s, NOW)).unwrap();
    assert_eq!(
        shown["matchers"][0],
        serde_json::json!({"name": "alertname", "value": "Down", "isRegex": false, "isEqual": true})
    );
    assert_eq!(shown["status"]["state"], "active");
    assert_eq!(shown["startsAt"], "2023-11-14T22:13:20.000Z");
}

#[test]
fn every_problem_names_its_field() {
    let body = br#"{"id":"sil_1","matchers":[{"name":"","value":"x","isRegex":false},{"name":"a","value":"(","isRegex":true},{"name":"b"}],"endsAt":"2024-11-14T22:13:20Z"}"#;
    let mut errors = parse(body, NOW, WEEK).unwrap_err();
    let regex = errors.remove(2);
    assert!(
        regex.starts_with("'matchers[1]' value \"(\" is not a regular expression"),
        "{regex}"
    );
    assert_eq!(
        errors,
        [
            "'id': updating a silence is not supported; expire it and create another",
            "'matchers[0]' name must not be empty",
            "'matchers[2]' needs string name and value and boolean isRegex (and isEqual)",
            "'endsAt' is more than 7d after 'startsAt': a silence lasts at most auth.max_silence",
            "'createdBy' is missing or blank",
        ]
    );
}

#[test]
fn filters_select_silences_by_their_matchers() {
    let s = parse(
        br#"{"createdBy":"a","endsAt":"2023-11-15T00:13:20Z","matchers":[{"name":"alertname","value":"Down","isRegex":false},{"name":"team","value":"db","isRegex":false}]}"#,
        NOW,
        WEEK,
    )
    .unwrap();
    let g = gettable(&s, NOW);
    let pass = |q: &str| passes(&filters(Some(q)).unwrap(), &g);
    assert!(pass("filter=alertname%3D%22Down%22"));
    assert!(pass(
        "filter=alertname%3D%22Down%22&filter=team%3D~%22d.%22"
    ));
    assert!(!pass("filter=alertname%3D%22Up%22"));
    assert!(!pass("filter=team!%3D%22db%22"));
    assert!(pass("filter=missing%3D%22%22"));
    assert!(pass(""));
    assert_eq!(
        filters(Some("filter=nonsense")).unwrap_err(),
        "bad matcher format: nonsense"
    );
}
