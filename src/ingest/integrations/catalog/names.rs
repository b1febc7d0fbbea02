//! What a definition file must name, shared with build.rs (which includes this file by path,
//! so it stands alone).

/// Top-level keys every definition must have (see docs/integration-catalog.md).
pub const REQUIRED: [&str; 6] = [
    "vendor",
    "title",
    "category",
    "docs",
    "samples",
    "signature",
];

/// A definition's kind, its file's stem: `[a-z][a-z0-9_]*`, at most 40 characters.
pub fn valid_kind(kind: &str) -> bool {
    kind.len() <= 40
        && kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
