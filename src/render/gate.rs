//! The gate's own answers (docs/behaviour.md §13.2): RFC 6750 §3 challenges (bare for API
//! clients, with a page for browsers), RFC 9728 metadata, and JSON-RPC-shaped errors when the
//! upstream fails.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};

use super::pages::GatePage;
use super::{APPLICATION_JSON, CORS_ALLOW_ORIGIN, NO_CACHE, NO_STORE, Page, answer, html};
use crate::flows::gate::{Challenge, Route};

/// What browser-based MCP clients may read of the gate's answers.
pub const GATE_EXPOSE: HeaderValue =
    HeaderValue::from_static("WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version");

/// An RFC 9110 §5.6.4 quoted-string: `"` and `\` escaped; control characters (which a
/// quoted-string cannot carry) left out.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `WWW-Authenticate: Bearer …` (RFC 6750 §3, RFC 9728 §5.1): the metadata URL, the scopes
/// needed, and the error when a token was sent.
pub fn www_authenticate(route: &Route, challenge: &Challenge) -> String {
    let mut v = format!("Bearer resource_metadata={}", quoted(&route.metadata_url));
    match challenge {
        Challenge::NoToken => {
            v.push_str(", scope=");
            v.push_str(&quoted(&route.scope_text));
        }
        Challenge::InvalidToken(why) => {
            v.push_str(", scope=");
            v.push_str(&quoted(&route.scope_text));
            v.push_str(", error=\"invalid_token\", error_description=");
            v.push_str(&quoted(why));
        }
        Challenge::InsufficientScope { scope } => {
            v.push_str(", scope=");
            v.push_str(&quoted(scope));
            v.push_str(", error=\"insufficient_scope\", error_description=");
            v.push_str(&quoted(&format!("This request needs the scopes: {scope}.")));
        }
    }
    v
}

fn status(challenge: &Challenge) -> StatusCode {
    match challenge {
        Challenge::InsufficientScope { .. } => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    }
}

fn with_challenge(mut res: HttpResponse, route: &Route, challenge: &Challenge) -> HttpResponse {
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::try_from(www_authenticate(route, challenge)) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, CORS_ALLOW_ORIGIN);
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, GATE_EXPOSE);
    res
}

/// The bare challenge for API clients: the header, and the error as JSON when there is one.
pub fn challenge(route: &Route, challenge: &Challenge) -> HttpResponse {
    let body = match challenge {
        Challenge::NoToken => String::new(),
        Challenge::InvalidToken(why) => serde_json::json!({
            "error": "invalid_token",
            "error_description": why,
        })
        .to_string(),
        Challenge::InsufficientScope { scope } => serde_json::json!({
            "error": "insufficient_scope",
            "error_description": format!("This request needs the scopes: {scope}."),
            "scope": scope,
        })
        .to_string(),
    };
    let res = answer(
        status(challenge),
        [
            (header::CONTENT_TYPE, APPLICATION_JSON),
            (header::CACHE_CONTROL, NO_STORE),
            (header::PRAGMA, NO_CACHE),
            (header::VARY, super::VARY_ACCEPT),
        ],
        body,
    );
    with_challenge(res, route, challenge)
}

/// The same challenge for a browser that opened the MCP URL: a page saying what this endpoint
/// is, which authorization server protects it and how to connect a client to it.
pub fn challenge_page(page: &Page, route: &Route, challenge: &Challenge) -> HttpResponse {
    let scopes: Vec<&str> = match challenge {
        Challenge::InsufficientScope { scope } => scope.split(' ').collect(),
        _ => route.scopes.iter().map(String::as_str).collect(),
    };
    let refusal = match challenge {
        Challenge::NoToken => None,
        Challenge::InvalidToken(why) => Some(*why),
        Challenge::InsufficientScope { .. } => {
            Some("The access token sent does not carry every scope this request needs.")
        }
    };
    let title = format!("{} is an MCP server", route.name);
    let account = format!("{}/account", page.endpoints.issuer);
    let res = html::render(
        status(challenge),
        GatePage {
            c: &page.chrome,
            title: &title,
            resource: &route.resource,
            issuer: &page.endpoints.issuer,
            scopes,
            metadata: &route.metadata_url,
            account: &account,
            refusal,
        },
    );
    with_challenge(res, route, challenge)
}

/// RFC 9728 §3.2: the route's metadata document, readable from any origin.
pub fn metadata(route: &Route) -> HttpResponse {
    answer(
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, APPLICATION_JSON),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, CORS_ALLOW_ORIGIN),
        ],
        route.metadata.clone(),
    )
}

/// A failure of the gate or its upstream in the shape an MCP client reads: a JSON-RPC error
/// (code -32000, the request's id when it is known).
pub fn rpc_error(
    status: StatusCode,
    id: Option<&serde_json::Value>,
    message: &str,
    retry_after: Option<u64>,
) -> HttpResponse {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(serde_json::Value::Null),
        "error": {"code": -32000, "message": message},
    });
    let mut res = answer(
        status,
        [
            (header::CONTENT_TYPE, APPLICATION_JSON),
            (header::CACHE_CONTROL, NO_STORE),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, CORS_ALLOW_ORIGIN),
            (header::ACCESS_CONTROL_EXPOSE_HEADERS, GATE_EXPOSE),
        ],
        body.to_string(),
    );
    if let Some(secs) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// The CORS preflight of a gate route: the methods and headers of streamable HTTP.
pub fn preflight() -> HttpResponse {
    answer(
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, CORS_ALLOW_ORIGIN),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(
                    "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name",
                ),
            ),
            (header::ACCESS_CONTROL_EXPOSE_HEADERS, GATE_EXPOSE),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            ),
        ],
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn quoted_strings_escape_quotes_and_backslashes_and_drop_controls() {
        assert_eq!(quoted("mcp admin"), "\"mcp admin\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted("x\r\ny"), "\"xy\"");
    }
}
