//! Content negotiation as a route guard (RFC 9110 §12.5.1): HTML only when the client ranks
//! `text/html` strictly above `application/json`.

use actix_web::HttpMessage;
use actix_web::guard::{Guard, GuardContext};
use actix_web::http::header::{Accept, Header, Quality};

/// Routes a request to the HTML variant when the client ranks `text/html` above
/// `application/json` (RFC 9110 §12.5.1). Missing, `*/*` or unparsable → not HTML.
pub struct PrefersHtml;

impl Guard for PrefersHtml {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.header::<Accept>()
            .is_some_and(|accept| prefers_html(&accept))
    }
}

/// Whether the request behind `msg` prefers HTML; for handlers that answer both ways.
pub fn request_prefers_html(msg: &impl HttpMessage) -> bool {
    Accept::parse(msg).is_ok_and(|accept| prefers_html(&accept))
}

/// Compares the quality each media range gives `text/html` and `application/json`; the most
/// specific matching range decides a type's quality (RFC 9110 §12.5.1).
pub fn prefers_html(accept: &Accept) -> bool {
    quality(accept, "text", "html") > quality(accept, "application", "json")
}

fn quality(accept: &Accept, ty: &str, subtype: &str) -> Quality {
    let mut best: Option<(u8, Quality)> = None;
    for item in accept.iter() {
        let (t, s) = (item.item.type_().as_str(), item.item.subtype().as_str());
        let specificity = if t.eq_ignore_ascii_case(ty) && s.eq_ignore_ascii_case(subtype) {
            3
        } else if t.eq_ignore_ascii_case(ty) && s == "*" {
            2
        } else if t == "*" && s == "*" {
            1
        } else {
            continue;
        };
        let q = item.quality;
        if best.is_none_or(|(sp, _)| specificity > sp) {
            best = Some((specificity, q));
        }
    }
    best.map(|(_, q)| q).unwrap_or(Quality::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

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
}
