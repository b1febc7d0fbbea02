use super::*;

#[test]
fn placeholder() {
    assert!(
        bundled_problems().is_empty(),
        "{}",
        bundled_problems().join("\n")
    );
}
