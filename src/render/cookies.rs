//! The one writer of `Set-Cookie`. The attributes of each cookie are rendered once, by the
//! cookie crate, at start-up; a header is then the name, the value and those attributes.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::HeaderValue;

use crate::metadata::Endpoints;

use crate::flows::clients::CSRF_COOKIE as CSRF;
use crate::flows::sessions::{BROWSER_COOKIE as BROWSER, SESSION_COOKIE as SESSION};
use crate::flows::upstream::{ROUND_TRIP_TTL, UPSTREAM_COOKIE as UPSTREAM};

/// The rendered attributes (`; Path=…; HttpOnly; …`) of each cookie, and the prefix of their
/// names (`__Host-` on an https issuer without a path).
#[derive(Debug, Clone)]
pub struct Cookies {
    prefix: &'static str,
    csrf: String,
    session: String,
    /// The session cookie's attributes with `Max-Age=0`: what removes it.
    session_removal: String,
    browser: String,
    upstream: String,
    /// The whole `Set-Cookie` value that removes the round-trip cookie.
    upstream_gone: Option<HeaderValue>,
}

/// `; Path=/; HttpOnly; …` as the cookie crate writes it for a cookie named `name`.
fn attributes(cookie: Cookie<'_>) -> String {
    let text = cookie.encoded().to_string();
    text[text.find(';').unwrap_or(text.len())..].to_owned()
}

impl Cookies {
    pub fn new(ep: &Endpoints, session_ttl: u64) -> Self {
        let secure = ep.issuer.starts_with("https://");
        let csrf_path = if ep.base_path.is_empty() {
            "/".to_owned()
        } else {
            ep.base_path.clone()
        };
        let csrf = Cookie::build(CSRF, "")
            .path(csrf_path)
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Strict)
            .max_age(actix_web::cookie::time::Duration::hours(2))
            .finish();
        // Path `/`: with an issuer that has a path, the root aliases of /authorize must see
        // the session too (docs/behaviour.md §9).
        let session = Cookie::build(SESSION, "")
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .max_age(actix_web::cookie::time::Duration::seconds(
                i64::try_from(session_ttl).unwrap_or(i64::MAX),
            ))
            .finish();
        let mut removal = session.clone();
        removal.make_removal();
        // Ties a sign-in to the browser that started it; only ever needed on this site's own
        // pages and forms, so never sent on a request another site starts (login CSRF).
        let browser = Cookie::build(BROWSER, "")
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Strict)
            .finish();
        // Binds an upstream sign-in's round trip to this browser (docs/behaviour.md §14). Lax,
        // not Strict: the provider sends the browser back with a cross-site navigation.
        let upstream = |max_age| {
            Cookie::build(UPSTREAM, "")
                .path("/")
                .http_only(true)
                .secure(secure)
                .same_site(SameSite::Lax)
                .max_age(max_age)
                .finish()
        };
        let ttl = i64::try_from(ROUND_TRIP_TTL).unwrap_or(600);
        let upstream_gone = header(
            ep.cookie_prefix,
            UPSTREAM,
            "",
            &attributes(upstream(actix_web::cookie::time::Duration::ZERO)),
        );
        Self {
            prefix: ep.cookie_prefix,
            csrf: attributes(csrf),
            session: attributes(session),
            session_removal: attributes(removal),
            browser: attributes(browser),
            upstream: attributes(upstream(actix_web::cookie::time::Duration::seconds(ttl))),
            upstream_gone,
        }
    }

    /// `Set-Cookie` for a CSRF token.
    pub fn csrf(&self, token: &str) -> Option<HeaderValue> {
        header(self.prefix, CSRF, token, &self.csrf)
    }

    /// `Set-Cookie` for a session.
    pub fn session(&self, value: &str) -> Option<HeaderValue> {
        header(self.prefix, SESSION, value, &self.session)
    }

    /// `Set-Cookie` that removes the session cookie (sign-out).
    pub fn session_removal(&self) -> Option<HeaderValue> {
        header(self.prefix, SESSION, "", &self.session_removal)
    }

    /// `Set-Cookie` for a browser binding.
    pub fn browser(&self, value: &str) -> Option<HeaderValue> {
        header(self.prefix, BROWSER, value, &self.browser)
    }

    /// `Set-Cookie` for the binding of an upstream round trip.
    pub fn upstream(&self, value: &str) -> Option<HeaderValue> {
        header(self.prefix, UPSTREAM, value, &self.upstream)
    }

    /// `Set-Cookie` that removes the binding of an upstream round trip (it is done).
    pub fn upstream_gone(&self) -> Option<HeaderValue> {
        self.upstream_gone.clone()
    }
}

/// `name=value` and the attributes. Values are base64url (and `.`), so they need no encoding;
/// anything else is refused rather than written.
fn header(prefix: &str, name: &str, value: &str, attributes: &str) -> Option<HeaderValue> {
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return None;
    }
    // Pieces pushed into one buffer: `format!` costs several times this on every page.
    let mut out =
        String::with_capacity(prefix.len() + name.len() + 1 + value.len() + attributes.len());
    out.push_str(prefix);
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    out.push_str(attributes);
    HeaderValue::try_from(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    /// Each header is the cookie crate's own rendering of that cookie, on http and https
    /// issuers, at the root and under a path.
    #[test]
    fn the_headers_are_the_cookie_crates() {
        for issuer in ["http://127.0.0.1:8080", "https://as.example/auth"] {
            let mut settings = Settings::defaults().expect("default settings");
            settings.issuer = issuer.to_owned();
            let ep = crate::metadata::Metadata::build(&settings).endpoints;
            let cookies = Cookies::new(&ep, 3600);
            let token = crate::secret::random_token();
            let secure = issuer.starts_with("https");

            let csrf = cookies.csrf(&token).expect("valid header");
            let session = cookies.session(&format!("{token}.mac")).expect("valid");

            let expected_csrf = Cookie::build(CSRF, token.clone())
                .path(if ep.base_path.is_empty() {
                    "/"
                } else {
                    "/auth"
                })
                .http_only(true)
                .secure(secure)
                .same_site(SameSite::Strict)
                .max_age(actix_web::cookie::time::Duration::hours(2))
                .finish();
            assert_eq!(
                csrf.to_str().expect("ASCII"),
                expected_csrf.encoded().to_string()
            );
            let expected_session = Cookie::build(SESSION, format!("{token}.mac"))
                .path("/")
                .http_only(true)
                .secure(secure)
                .same_site(SameSite::Lax)
                .max_age(actix_web::cookie::time::Duration::seconds(3600))
                .finish();
            assert_eq!(
                session.to_str().expect("ASCII"),
                expected_session.encoded().to_string()
            );
            assert!(
                cookies.session("a;b").is_none(),
                "nothing but base64url and dots"
            );
            let upstream = cookies.upstream(&token).expect("valid");
            let expected_upstream = Cookie::build(UPSTREAM, token.clone())
                .path("/")
                .http_only(true)
                .secure(secure)
                .same_site(SameSite::Lax)
                .max_age(actix_web::cookie::time::Duration::seconds(600))
                .finish();
            assert_eq!(
                upstream.to_str().expect("ASCII"),
                expected_upstream.encoded().to_string(),
                "Lax: the provider sends the browser back cross-site"
            );
            let gone = cookies.upstream_gone().expect("valid");
            assert!(
                gone.to_str()
                    .expect("ASCII")
                    .starts_with("doorman_upstream=; ")
            );
            assert!(gone.to_str().expect("ASCII").contains("Max-Age=0"));
        }
    }
}
