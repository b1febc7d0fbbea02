//! A set of secrets (an integration's, or every admin token) that presented values are compared
//! against in constant time, none of them kept in plain text.
//!
//! Each secret is kept as its HMAC-SHA256 tag under a key drawn at start and never shown; a
//! presented value is checked against every tag with `ring::hmac::verify`, whose comparison is
//! constant-time. Comparing tags rather than the secrets themselves also hides their lengths,
//! and every tag is checked whatever matched first, so the time taken does not say which
//! secret of a rotation pair was used.

use ring::hmac;
use ring::rand::SystemRandom;

use crate::config::auth::Secret;

pub struct SecretSet {
    key: hmac::Key,
    tags: Vec<hmac::Tag>,
}

impl SecretSet {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> SecretSet {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the system's random source works");
        let tags = secrets
            .into_iter()
            .map(|s| hmac::sign(&key, s.expose()))
            .collect();
        SecretSet { key, tags }
    }

    /// Which secret `presented` is (its index, in the order given), if any.
    pub fn position(&self, presented: &[u8]) -> Option<usize> {
        let mut found = None;
        for (i, tag) in self.tags.iter().enumerate() {
            let equal = hmac::verify(&self.key, presented, tag.as_ref()).is_ok();
            if equal && found.is_none() {
                found = Some(i);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_secrets_of_a_rotation_are_found_and_nothing_else() {
        let secrets = [Secret::new("new-secret"), Secret::new("old-secret")];
        let set = SecretSet::new(&secrets);
        assert_eq!(set.position(b"new-secret"), Some(0));
        assert_eq!(set.position(b"old-secret"), Some(1));
        for wrong in [
            &b""[..],
            b"new-secre",
            b"new-secret ",
            b"NEW-SECRET",
            b"old-secret\0",
        ] {
            assert_eq!(set.position(wrong), None, "{wrong:?}");
        }
        assert!(SecretSet::new(&[]).position(b"").is_none());
    }
}
