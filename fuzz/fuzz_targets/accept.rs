//! The Accept guard on arbitrary header bytes: never panics, never prefers HTML when no range
//! admits `text/html` with a quality above 0, nor when `application/json` is listed at q=1.
//! (That its shortcut decides as a full parse would is a property test in
//! `src/http/negotiate.rs`.)
#![no_main]

use actix_web::http::header::{Accept, Header, HeaderValue, Quality};
use actix_web::test::TestRequest;
use doorman::http::negotiate::prefers_html;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let req = TestRequest::default()
        .insert_header(("accept", value))
        .to_http_request();
    let html = prefers_html(req.headers());
    match Accept::parse(&req) {
        Ok(accept) => {
            // docs/behaviour.md §5.1: nothing can rank text/html above application/json at q=1.
            let json_at_1 = accept.iter().any(|item| {
                item.quality == Quality::MAX
                    && item
                        .item
                        .type_()
                        .as_str()
                        .eq_ignore_ascii_case("application")
                    && item.item.subtype().as_str().eq_ignore_ascii_case("json")
            });
            assert!(
                !(json_at_1 && html),
                "HTML although application/json is at q=1"
            );
            if html {
                assert!(accept.iter().any(|item| {
                    let (t, s) = (item.item.type_().as_str(), item.item.subtype().as_str());
                    item.quality > Quality::ZERO
                        && ((t.eq_ignore_ascii_case("text")
                            && (s.eq_ignore_ascii_case("html") || s == "*"))
                            || (t == "*" && s == "*"))
                }));
            }
        }
        Err(_) => assert!(!html, "an unparsable Accept header must not give HTML"),
    }
});
