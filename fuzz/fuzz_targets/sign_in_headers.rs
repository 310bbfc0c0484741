//! What the sign-in and consent forms read from a browser's headers, on arbitrary bytes: the
//! `Cookie` header (the session and the browser binding are found by exact name and prefix) and
//! the form-origin check (`Sec-Fetch-Site`, `Origin`). Never panics; a cookie found is one whose
//! name is exactly the one asked for; only `same-origin` passes where `Sec-Fetch-Site` is sent.
#![no_main]

use doorman::flows::Browser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{0}');
    let cookies = parts.next();
    let fetch_site = parts.next();
    let origin = parts.next();
    for prefix in ["", "__Host-"] {
        let browser = Browser {
            cookies,
            fetch_site,
            origin,
            cookie_prefix: prefix,
            ..Default::default()
        };
        for name in ["doorman_session", "doorman_browser", "doorman_csrf"] {
            if let Some(value) = browser.cookie(name) {
                let wanted = format!("{prefix}{name}=");
                assert!(
                    cookies.is_some_and(|c| c.split(';').any(|p| p.trim().starts_with(&wanted))),
                    "{name} found in {cookies:?} as {value:?}"
                );
            }
        }
        let ours = browser.form_is_ours("https://as.example");
        if let Some(site) = fetch_site {
            assert_eq!(ours, site.eq_ignore_ascii_case("same-origin"));
        }
    }
});
