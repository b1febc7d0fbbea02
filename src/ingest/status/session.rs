//! The status page's sessions and CSRF tokens.
//!
//! - A session is 32 random bytes (`ring::rand`), base64url in the `sluice_session` cookie. The
//!   server keeps, per session, the token's name, scopes and routing keys (a [`Principal`],
//!   never the token) until [`SESSION_LIFETIME`] after login, in a map of at most
//!   [`MAX_SESSIONS`] (the one closest to expiry goes first when it is full). The map is keyed
//!   by the SHA-256 of the id, so not even the ids are kept.
//! - A CSRF token is the HMAC-SHA256, under a key drawn at start, of what the browser is bound
//!   by: its session, or (with no tokens configured, and on the login form) a random nonce in
//!   the `sluice_csrf` cookie. Every form carries one; a POST whose token is not the one of its
//!   cookie is refused. A page from another site can neither read the cookie nor the token.
//!
//! Sessions and keys live in the process: a restart logs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use ring::digest;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::ingest::auth::Principal;
use crate::time::UnixMillis;

pub const SESSION_COOKIE: &str = "sluice_session";
pub const CSRF_COOKIE: &str = "sluice_csrf";
/// How long a session lasts after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 1024;

struct Session {
    principal: Principal,
    expires: UnixMillis,
}

/// What a browser's forms are bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// A logged-in session (its id).
    Session(String),
    /// The `sluice_csrf` cookie's nonce (no tokens configured, or the login form).
    Nonce(String),
}

/// Sessions and the CSRF key, one per router.
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    key: hmac::Key,
    rng: SystemRandom,
}

impl Default for Sessions {
    fn default() -> Self {
        let rng = SystemRandom::new();
        let key =
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system's random source works");
        Sessions {
            map: Mutex::default(),
            key,
            rng,
        }
    }
}

fn digest_of(id: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, id.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Sessions {
    /// 32 random bytes, base64url.
    pub fn random_id(&self) -> String {
        let mut bytes = [0u8; 32];
        self.rng
            .fill(&mut bytes)
            .expect("the system's random source works");
        base64url(&bytes)
    }

    /// Starts a session for `principal`; returns its id (the cookie's value).
    pub fn login(&self, principal: Principal, now: UnixMillis) -> String {
        let id = self.random_id();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            let soonest = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k);
            if let Some(k) = soonest {
                map.remove(&k);
            }
        }
        let expires = now.saturating_add(SESSION_LIFETIME);
        map.insert(digest_of(&id), Session { principal, expires });
        id
    }

    /// Who session `id` belongs to, while it lasts.
    pub fn principal(&self, id: &str, now: UnixMillis) -> Option<Principal> {
        let key = digest_of(id);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&key) {
            Some(s) if s.expires > now => Some(s.principal.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn logout(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&digest_of(id));
    }

    /// How many sessions are kept.
    pub fn count(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn message(binding: &Binding) -> Vec<u8> {
        let (kind, id) = match binding {
            Binding::Session(id) => ("session", id),
            Binding::Nonce(id) => ("nonce", id),
        };
        format!("sluice csrf\0{kind}\0{id}").into_bytes()
    }

    /// The CSRF token of forms bound to `binding`.
    pub fn csrf(&self, binding: &Binding) -> String {
        base64url(hmac::sign(&self.key, &Self::message(binding)).as_ref())
    }

    /// Whether `presented` is `binding`'s CSRF token (compared in constant time).
    pub fn csrf_ok(&self, binding: &Binding, presented: &str) -> bool {
        match base64url_decode(presented) {
            Some(tag) => hmac::verify(&self.key, &Self::message(binding), &tag).is_ok(),
            None => false,
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.bytes().all(is_base64url))
}

/// `Set-Cookie` for `name`: `HttpOnly; SameSite=Strict; Path=/`, `Max-Age` when given (0
/// clears it), `Secure` when the page was served over https.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut text = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).expect("cookie names and base64url values are valid headers")
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

pub use crate::base64::{decode_base64url as base64url_decode, encode_base64url as base64url};

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(1_700_000_000_000);

    #[test]
    fn base64url_round_trips_and_refuses_other_text() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", &[0xfb, 0xff, 0xfe]] {
            let text = base64url(data);
            assert_eq!(base64url_decode(&text).as_deref(), Some(data), "{text}");
        }
        assert_eq!(base64url(&[0xfb, 0xff, 0xfe]), "-__-");
        for bad in ["a", "ab=", "a+b/", "Zm9v!", "Zh"] {
            assert_eq!(base64url_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_session_maps_to_its_principal_until_it_expires_or_logs_out() {
        let sessions = Sessions::default();
        let id = sessions.login(Principal::anonymous(), NOW);
        assert_eq!(base64url_decode(&id).map(|b| b.len()), Some(32));
        assert_ne!(id, sessions.login(Principal::anonymous(), NOW));
        let p = sessions.principal(&id, NOW).expect("a session");
        assert_eq!(p.name(), "anonymous");
        let last = UnixMillis(NOW.0 + SESSION_LIFETIME.as_millis() as u64 - 1);
        assert!(sessions.principal(&id, last).is_some());
        assert!(sessions
            .principal(&id, last.saturating_add(Duration::from_millis(1)))
            .is_none());
        assert_eq!(sessions.count(), 1, "the expired one is forgotten");
        let id = sessions.login(Principal::anonymous(), NOW);
        sessions.logout(&id);
        assert!(sessions.principal(&id, NOW).is_none());
        assert!(sessions.principal("not-a-session", NOW).is_none());
    }

    #[test]
    fn the_session_map_is_bounded_and_drops_the_one_closest_to_expiry() {
        let sessions = Sessions::default();
        let first = sessions.login(Principal::anonymous(), NOW);
        for i in 1..MAX_SESSIONS {
            sessions.login(Principal::anonymous(), UnixMillis(NOW.0 + i as u64));
        }
        assert_eq!(sessions.count(), MAX_SESSIONS);
        let newest = sessions.login(Principal::anonymous(), UnixMillis(NOW.0 + 5_000));
        assert_eq!(sessions.count(), MAX_SESSIONS);
        assert!(sessions.principal(&first, NOW).is_none());
        assert!(sessions.principal(&newest, NOW).is_some());
    }

    #[test]
    fn a_csrf_token_fits_only_its_binding() {
        let sessions = Sessions::default();
        let a = Binding::Session("a".into());
        let token = sessions.csrf(&a);
        assert!(sessions.csrf_ok(&a, &token));
        assert!(!sessions.csrf_ok(&Binding::Session("b".into()), &token));
        assert!(!sessions.csrf_ok(&Binding::Nonce("a".into()), &token));
        assert!(!sessions.csrf_ok(&a, ""));
        assert!(!sessions.csrf_ok(&a, &token[1..]));
        assert!(!sessions.csrf_ok(&a, "not base64!"));
        let other = Sessions::default();
        assert!(!other.csrf_ok(&a, &token), "another process's key");
    }

    #[test]
    fn cookies_are_read_by_name_and_set_strict() {
        let mut headers = HeaderMap::new();
        headers.append(
            "cookie",
            HeaderValue::from_static("theme=dark; sluice_csrf=n-1_x"),
        );
        headers.append("cookie", HeaderValue::from_static("sluice_session=s1"));
        assert_eq!(cookie(&headers, CSRF_COOKIE), Some("n-1_x"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("s1"));
        assert_eq!(cookie(&headers, "sluice"), None);
        headers.insert("cookie", HeaderValue::from_static("sluice_session=a;b\"c"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("a"));
        headers.insert("cookie", HeaderValue::from_static("sluice_session=<x>"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), None);
        assert_eq!(
            set_cookie(SESSION_COOKIE, "abc", Some(43_200), true),
            "sluice_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200; Secure"
        );
        assert_eq!(
            set_cookie(CSRF_COOKIE, "n", None, false),
            "sluice_csrf=n; HttpOnly; SameSite=Strict; Path=/"
        );
    }
}
