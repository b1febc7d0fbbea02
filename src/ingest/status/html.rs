//! HTML for the status page, written by hand (no template engine): [`esc`] escapes every string
//! that goes into text or an attribute value (a sender's summary, source, details and links; an
//! operator's comment; a token's name), [`link`] makes an `<a>` only of an `http:` or `https:`
//! URL and shows anything else as text, and [`document`] wraps a page's body in the document
//! every page shares. The stylesheet and the refresh script are files served from
//! `/ui/static/`, so the Content-Security-Policy allows no inline script or style at all.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::Value;

use crate::time::{parse_timestamp, Timestamp, UnixMillis};

/// Where the stylesheet and the refresh script are served.
pub const CSS_PATH: &str = "/ui/static/status.css";
pub const JS_PATH: &str = "/ui/static/status.js";
pub const CSS: &str = include_str!("static/status.css");
pub const JS: &str = include_str!("static/status.js");

/// `s` safe in HTML text and in a double- or single-quoted attribute value: `&`, `<`, `>`,
/// `"` and `'` become character references; nothing else changes.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `href` is an `http:` or `https:` URL (scheme in any case, nothing before it): the
/// only links the page makes clickable. `javascript:`, `data:`, `vbscript:`, relative paths and
/// anything with leading spaces or control characters are not.
pub fn is_web_url(href: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        let head = href.get(..scheme.len());
        head.is_some_and(|head| head.eq_ignore_ascii_case(scheme)) && href.len() > scheme.len()
    })
}

/// A sender's link: `<a>` for an http(s) URL (no referrer, no opener), else its text and URL as
/// plain text, so a `javascript:` link can be read but never followed.
pub fn link(href: &str, text: Option<&str>) -> String {
    let shown = text.filter(|t| !t.trim().is_empty()).unwrap_or(href);
    if is_web_url(href) {
        format!(
            "<a href=\"{}\" rel=\"noopener noreferrer nofollow\">{}</a>",
            esc(href),
            esc(shown)
        )
    } else if shown == href {
        format!("<span class=\"nolink\">{}</span>", esc(href))
    } else {
        format!(
            "<span class=\"nolink\">{} <code>{}</code></span>",
            esc(shown),
            esc(href)
        )
    }
}

/// The string member `key` of `v`, escaped (empty when absent or not a string).
pub fn field<'a>(v: &'a Value, key: &str) -> Cow<'a, str> {
    esc(v[key].as_str().unwrap_or_default())
}

/// A severity or status as a badge (the class comes from a fixed set, the text is escaped).
pub fn badge(value: &str) -> String {
    let class = match value {
        "critical" | "error" | "warning" | "info" | "triggered" | "acknowledged" | "resolved"
        | "active" | "pending" | "expired" => value,
        _ => "other",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(value))
}

/// `3d 4h`, `2h 5m`, `3m 12s`, `45s`: the two largest units.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match () {
        _ if days > 0 => format!("{days}d {hours}h"),
        _ if hours > 0 => format!("{hours}h {mins}m"),
        _ if mins > 0 => format!("{mins}m {secs}s"),
        _ => format!("{secs}s"),
    }
}

/// The time in member `key` of `v`, if it is an RFC 3339 string.
pub fn time(v: &Value, key: &str) -> Option<UnixMillis> {
    at(&v[key])
}

/// The time `v` is, if it is an RFC 3339 string.
pub fn at(v: &Value) -> Option<UnixMillis> {
    match v.as_str().and_then(parse_timestamp) {
        Some(Timestamp::At(t)) => Some(t),
        _ => None,
    }
}

/// A time as `<time>`, with how long ago (or how far ahead) it is from `now`.
pub fn when(at: UnixMillis, now: UnixMillis) -> String {
    let relative = if at <= now {
        format!("{} ago", span(now.saturating_sub(at)))
    } else {
        format!("in {}", span(at.saturating_sub(now)))
    };
    format!("<time datetime=\"{at}\" title=\"{at}\">{relative}</time>")
}

/// What goes at the right of the top bar: who is logged in and the logout form.
pub struct Top<'a> {
    /// The token's name, when tokens are configured and this is a session.
    pub user: Option<&'a str>,
    /// The CSRF token of the caller's forms.
    pub csrf: &'a str,
}

/// A whole page: the shared head (stylesheet; the refresh script when `refresh`), the top bar
/// and `body`. `title` is escaped here; `body` is HTML already.
pub fn document(title: &str, refresh: bool, top: Option<&Top<'_>>, body: &str) -> String {
    let script = match refresh {
        true => format!("<script src=\"{JS_PATH}\" defer></script>"),
        false => String::new(),
    };
    let user = match top.and_then(|t| t.user.map(|u| (u, t.csrf))) {
        Some((user, csrf)) => format!(
            "<form class=\"logout\" method=\"post\" action=\"/ui/logout\">\
             <span class=\"who\">token {}</span>{}<button type=\"submit\">Log out</button></form>",
            esc(user),
            csrf_input(csrf)
        ),
        None => String::new(),
    };
    let nav = match top {
        Some(_) => "<a href=\"/\">overview</a> <a class=\"refresh\" href=\"\">refresh</a>",
        None => "",
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · sluice</title><link rel=\"stylesheet\" href=\"{CSS_PATH}\">{script}</head>\
         <body><header class=\"top\"><a class=\"brand\" href=\"/\">sluice</a>\
         <nav>{nav}</nav>{user}</header><main>\n{body}\n</main></body></html>\n",
        esc(title)
    )
}

/// The hidden input every form carries.
pub fn csrf_input(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// The login form: a token, the CSRF token bound to the browser, where to go after.
pub fn login(csrf: &str, next: &str, problem: Option<&str>) -> String {
    let problem = match problem {
        Some(p) => format!("<p class=\"problem\">{}</p>", esc(p)),
        None => String::new(),
    };
    let body = format!(
        "<section class=\"login\"><h1>Log in</h1>{problem}\
         <p>Admin tokens are configured: give one with the <code>read</code> scope \
         (<code>write</code> to change silences). The page keeps a session for 12 hours, \
         never the token.</p>\
         <form method=\"post\" action=\"/ui/login\">{}\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Token <input type=\"password\" name=\"token\" autocomplete=\"off\" required \
         autofocus></label> <button type=\"submit\">Log in</button></form></section>",
        csrf_input(csrf),
        esc(next)
    );
    document("Log in", false, None, &body)
}

/// A page that says what went wrong and where to go back to.
pub fn problem(title: &str, message: &str, details: &[String], back: &str) -> String {
    let items: String = details
        .iter()
        .map(|d| format!("<li>{}</li>", esc(d)))
        .collect();
    let list = match items.is_empty() {
        true => String::new(),
        false => format!("<ul>{items}</ul>"),
    };
    let body = format!(
        "<section class=\"problem-page\"><h1>{}</h1><p class=\"problem\">{}</p>{list}\
         <p><a href=\"{}\">Back</a></p></section>",
        esc(title),
        esc(message),
        esc(back)
    );
    document(title, false, None, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_character_is_escaped_and_nothing_else_changes() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(
            esc("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert!(matches!(
            esc("db-1 é ✓ 100%"),
            Cow::Borrowed("db-1 é ✓ 100%")
        ));
        assert_eq!(
            esc("&amp;"),
            "&amp;amp;",
            "escaped once more, never decoded"
        );
        assert_eq!(esc(""), "");
    }

    #[test]
    fn only_http_and_https_links_are_clickable() {
        assert_eq!(
            link("https://grafana.example/d/1?a=1&b=2", Some("dashboard")),
            "<a href=\"https://grafana.example/d/1?a=1&amp;b=2\" \
             rel=\"noopener noreferrer nofollow\">dashboard</a>"
        );
        assert!(link("HTTP://runbooks.example/x", None).starts_with("<a href=\"HTTP://"));
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " javascript:alert(1)",
            "\thttp://x.example",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "//evil.example/x",
            "/ui/logout",
            "http:/x",
            "http://",
            "https://",
            "ftp://files.example/x",
        ] {
            let html = link(bad, Some("<b>click</b>"));
            assert!(!html.contains("<a"), "{bad:?} became a link: {html}");
            assert!(!html.contains("<b>"), "{html}");
            assert!(html.contains("&lt;b&gt;click&lt;/b&gt;"), "{html}");
        }
        assert_eq!(
            link("javascript:alert('x')", None),
            "<span class=\"nolink\">javascript:alert(&#39;x&#39;)</span>"
        );
        // A quote cannot close the attribute.
        let html = link("https://x.example/\"onmouseover=\"alert(1)", None);
        assert!(html.starts_with("<a href=\"https://x.example/&quot;onmouseover=&quot;"));
    }

    #[test]
    fn badges_take_their_class_from_a_fixed_set() {
        assert_eq!(
            badge("critical"),
            "<span class=\"badge critical\">critical</span>"
        );
        assert_eq!(
            badge("x\" onclick=\"y"),
            "<span class=\"badge other\">x&quot; onclick=&quot;y</span>"
        );
    }

    #[test]
    fn spans_show_their_two_largest_units() {
        assert_eq!(span(Duration::from_secs(45)), "45s");
        assert_eq!(span(Duration::from_secs(192)), "3m 12s");
        assert_eq!(span(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(
            span(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)),
            "3d 4h"
        );
        let now = UnixMillis(1_700_000_000_000);
        assert!(when(UnixMillis(now.0 - 90_000), now).contains(">1m 30s ago<"));
        assert!(when(UnixMillis(now.0 + 7_200_000), now).contains(">in 2h 0m<"));
    }

    #[test]
    fn a_document_escapes_its_title_and_loads_only_its_own_files() {
        let page = document("<script>x</script>", true, None, "<p>body</p>");
        assert!(page.contains("<title>&lt;script&gt;x&lt;/script&gt; · sluice</title>"));
        assert!(page.contains("<script src=\"/ui/static/status.js\" defer></script>"));
        assert_eq!(page.matches("<script").count(), 1);
        assert!(!page.contains("style="));
        let quiet = document("Log in", false, None, "");
        assert!(!quiet.contains("<script"));
        let top = Top {
            user: Some("o'neil"),
            csrf: "c\"1",
        };
        let page = document("Status", true, Some(&top), "");
        assert!(page.contains("token o&#39;neil"));
        assert!(page.contains("name=\"csrf\" value=\"c&quot;1\""));
    }
}
