//! Content negotiation as a route guard (RFC 9110 §12.5.1): HTML only when the client ranks
//! `text/html` strictly above `application/json`.

use std::cell::RefCell;

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::header::{self, HeaderMap, Quality, QualityItem};
use actix_web::mime::Mime;

/// Routes a request to the HTML variant when the client ranks `text/html` above
/// `application/json` (RFC 9110 §12.5.1). Missing, `*/*` or unparsable → not HTML.
pub struct PrefersHtml;

impl Guard for PrefersHtml {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        prefers_html(ctx.head().headers())
    }
}

/// Whether the `Accept` headers rank `text/html` strictly above `application/json`: the
/// decision of `decide`, remembered per worker thread for the last header seen.
pub fn prefers_html(headers: &HeaderMap) -> bool {
    // Browsers send the same Accept header with every page request, so each worker thread
    // remembers the last single header it decided (a copy, up to 512 bytes) and its decision.
    thread_local! {
        static LAST: RefCell<(Vec<u8>, bool)> = const { RefCell::new((Vec::new(), false)) };
    }
    let mut values = headers.get_all(header::ACCEPT);
    let (Some(value), None) = (values.next(), values.next()) else {
        return decide(headers);
    };
    let bytes = value.as_bytes();
    if bytes.len() > 512 {
        return decide(headers);
    }
    LAST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return decide(headers);
        };
        if last.0 != bytes {
            last.0.clear();
            last.0.extend_from_slice(bytes);
            last.1 = decide(headers);
        }
        last.1
    })
}

/// Compares the quality each media range gives `text/html` and `application/json`; the most
/// specific matching range decides a type's quality (RFC 9110 §12.5.1). Only the ranges that
/// can match one of the two (`text/html`, `text/*`, `application/json`, `application/*`,
/// `*/*`, by how the item starts) are parsed, each by actix's own `QualityItem<Mime>` parser.
/// The others cannot change either quality, and actix skips an unparsable item on its own, so
/// skipping them unparsed decides as parsing the whole header would (a test holds the two to
/// the same answers). A browser's Accept header lists eight ranges, of which two matter;
/// parsing all eight into a `Vec` cost a fifth of the instructions of a whole `/authorize`
/// answer.
fn decide(headers: &HeaderMap) -> bool {
    let mut ranks = Ranks::default();
    for value in headers.get_all(header::ACCEPT) {
        // As in `Header::parse`: one value that is not visible ASCII spoils the header.
        let Ok(value) = value.to_str() else {
            return false;
        };
        for item in value.split(',').map(str::trim) {
            if !may_match(item) {
                continue;
            }
            // A bare range (`text/html`, `*/*`, any case) is what actix would parse it to,
            // at quality 1, without allocating.
            if let Some((t, s)) = bare_range(item) {
                ranks.rank(t, s, Quality::MAX);
            } else if let Ok(parsed) = item.parse::<QualityItem<Mime>>() {
                ranks.add(&parsed);
            }
        }
    }
    ranks.prefers_html()
}

/// Whether an Accept item can name a range matching `text/html` or `application/json`: its
/// media range is the part up to the first `;`, lowercased, so it must start with one of
/// `text/html`, `text/*`, `application/json`, `application/*` or `*/*`.
fn may_match(item: &str) -> bool {
    let Some((t, rest)) = item.split_once('/') else {
        return false;
    };
    let starts = |s: &str| {
        rest.get(..s.len())
            .is_some_and(|r| r.eq_ignore_ascii_case(s))
    };
    if t.eq_ignore_ascii_case("text") {
        starts("html") || starts("*")
    } else if t.eq_ignore_ascii_case("application") {
        starts("json") || starts("*")
    } else {
        t == "*" && starts("*")
    }
}

/// The range an item names when it is exactly one of those five (any case) and nothing else.
fn bare_range(item: &str) -> Option<(&'static str, &'static str)> {
    let (t, s) = item.split_once('/')?;
    let t = ["text", "application", "*"]
        .into_iter()
        .find(|known| t.eq_ignore_ascii_case(known))?;
    let s = ["html", "json", "*"]
        .into_iter()
        .find(|known| s.eq_ignore_ascii_case(known))?;
    match (t, s) {
        ("text", "json") | ("application", "html") | ("*", "html" | "json") => None,
        range => Some(range),
    }
}

/// The quality of `text/html` and of `application/json`, each from its most specific range.
#[derive(Default)]
struct Ranks {
    html: Option<(u8, Quality)>,
    json: Option<(u8, Quality)>,
}

impl Ranks {
    fn add(&mut self, item: &QualityItem<Mime>) {
        self.rank(
            item.item.type_().as_str(),
            item.item.subtype().as_str(),
            item.quality,
        );
    }

    fn rank(&mut self, t: &str, s: &str, q: Quality) {
        rank(&mut self.html, specificity(t, s, "text", "html"), q);
        rank(&mut self.json, specificity(t, s, "application", "json"), q);
    }

    fn prefers_html(&self) -> bool {
        let quality = |r: Option<(u8, Quality)>| r.map(|(_, q)| q).unwrap_or(Quality::ZERO);
        quality(self.html) > quality(self.json)
    }
}

/// 3 for the exact type, 2 for `type/*`, 1 for `*/*`, 0 for no match.
fn specificity(t: &str, s: &str, ty: &str, subtype: &str) -> u8 {
    if t.eq_ignore_ascii_case(ty) && s.eq_ignore_ascii_case(subtype) {
        3
    } else if t.eq_ignore_ascii_case(ty) && s == "*" {
        2
    } else if t == "*" && s == "*" {
        1
    } else {
        0
    }
}

/// Keeps the most specific range; among equally specific ones, the highest quality (so a
/// repeated `application/json;q=0, application/json` still ranks JSON at 1).
fn rank(best: &mut Option<(u8, Quality)>, specificity: u8, q: Quality) {
    if specificity > 0
        && best.is_none_or(|(sp, bq)| specificity > sp || (specificity == sp && q > bq))
    {
        *best = Some((specificity, q));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{Accept, Header};
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    /// The reference: every range parsed by actix (`Accept::parse`), then ranked.
    fn full_parse(req: &actix_web::HttpRequest) -> bool {
        Accept::parse(req).is_ok_and(|accept| {
            let mut ranks = Ranks::default();
            for item in accept.iter() {
                ranks.add(item);
            }
            ranks.prefers_html()
        })
    }

    fn request_prefers_html(req: &actix_web::HttpRequest) -> bool {
        prefers_html(actix_web::HttpMessage::headers(req))
    }

    pub const CHROME: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
    pub const FIREFOX: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    pub const SAFARI: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    fn html_for(accept: Option<&str>) -> bool {
        let mut req = TestRequest::default();
        if let Some(a) = accept {
            req = req.insert_header(("accept", a));
        }
        request_prefers_html(&req.to_http_request())
    }

    #[test]
    fn browsers_get_html() {
        assert!(html_for(Some(CHROME)));
        assert!(html_for(Some(FIREFOX)));
        assert!(html_for(Some(SAFARI)));
        assert!(html_for(Some("TEXT/HTML")));
        assert!(html_for(Some("text/*")));
    }

    #[test]
    fn api_clients_and_ties_get_json() {
        assert!(!html_for(None));
        assert!(!html_for(Some("*/*")));
        assert!(!html_for(Some("application/json")));
        assert!(!html_for(Some("text/html;q=0")));
        assert!(!html_for(Some("text/html;q=0.5, application/json")));
        assert!(!html_for(Some("text/html, application/json")));
        assert!(!html_for(Some("not a media type")));
        assert!(!html_for(Some("")));
    }

    /// The remembered decision is the last header's: repeated and alternating headers on one
    /// thread each get their own answer.
    #[test]
    fn a_remembered_decision_is_used_only_for_the_same_header() {
        for (accept, html) in [
            (CHROME, true),
            (CHROME, true),
            ("application/json", false),
            ("application/json", false),
            (CHROME, true),
            ("text/html;q=0", false),
            ("text/html", true),
            ("text/html;q=0", false),
        ] {
            assert_eq!(html_for(Some(accept)), html, "{accept}");
        }
        let mut two = TestRequest::default()
            .append_header(("accept", "text/html"))
            .append_header(("accept", "application/json"))
            .to_http_request();
        assert!(!request_prefers_html(&two));
        two = TestRequest::default()
            .append_header(("accept", "text/html"))
            .to_http_request();
        assert!(request_prefers_html(&two));
    }

    /// The shortcut (only the ranges that matter, bare ranges unparsed) decides as actix's
    /// full parse does, for odd headers too.
    #[test]
    fn the_shortcut_agrees_with_the_full_parse() {
        let headers: &[&[&str]] = &[
            &[CHROME],
            &[FIREFOX],
            &["*/*;q=0.8, application/json;q=0.5"],
            &["TEXT/HTML"],
            &["text/html;q=0.5, application/json;q=0.4"],
            &["text/html ;q=0.5;level=1, application/json;q=0.4"],
            &["text/html;level=1;q=0.9, application/*;q=0.95"],
            &["text/htmlx, text/html+xml;q=0.3, application/json;q=0.2"],
            &["application/json+x;q=0.1, text/*;q=0.2"],
            &["text/html;q=1.0000", "application/json;q=0.5"],
            &["text/html;q=2", "application/json;q=0.5"],
            &["text/html;q=\"0.5\", application/json;q=0.4"],
            &["text/html;=x, application/json;q=0.4"],
            &["text/h\u{e9}ml, application/json;q=0.4"],
            &["application/json;q=0.1", "text/html"],
            &["application/json;q=0.1", "text/html;q=0.05"],
            &[",,text/*,,", ""],
            &["*/*;q=0", "text/html;q=0.001"],
        ];
        for values in headers {
            let mut req = TestRequest::default();
            for v in *values {
                req = req.append_header(("accept", *v));
            }
            let req = req.to_http_request();

            assert_eq!(
                request_prefers_html(&req),
                full_parse(&req),
                "Accept: {values:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// The same on arbitrary headers made of the pieces that matter.
        #[test]
        fn the_shortcut_agrees_with_the_full_parse_on_any_header(
            value in "([a-zA-Z*]{0,12}/[a-zA-Z*+]{0,12}( ?;[a-z]{0,3}=[0-9.\"]{0,6}){0,2}[ ,]{0,2}){0,6}"
        ) {
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&value) {
                let req = TestRequest::default().insert_header(("accept", v)).to_http_request();
                prop_assert_eq!(request_prefers_html(&req), full_parse(&req), "Accept: {}", value);
            }
        }
    }
}
