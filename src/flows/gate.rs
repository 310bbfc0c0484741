//! The gate in front of MCP servers (docs/behaviour.md §13.2): its routes, built once from the
//! settings; who may pass (a token in force, for this resource, with every scope needed); and
//! which tools a request calls. No actix: the streaming proxy is `http::proxy`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderName;
use serde::Deserialize;

use super::{Ctx, Problem, access};
use crate::metadata::Endpoints;
use crate::oauth::resource;
use crate::settings::{Gate as GateSettings, GateRoute};

/// RFC 9728 §3: the well-known name of protected resource metadata.
pub const RESOURCE_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Everything the gate needs, built at start-up: routes, the identity header names, the HTTP
/// clients (one per worker thread, see `Gate::http`) and the connection limit.
pub struct Gate {
    pub routes: Vec<Route>,
    pub subject_header: Option<HeaderName>,
    pub client_id_header: Option<HeaderName>,
    pub scopes_header: Option<HeaderName>,
    /// Tells this gate's clients apart in each thread's table (several apps may share a thread
    /// in tests).
    id: usize,
    /// One permit per request passed on; held until its answer has been streamed.
    pub permits: Arc<tokio::sync::Semaphore>,
    pub body_limit: usize,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    /// Silence after which an SSE stream gets a comment (`gate.sse_keepalive_ms`).
    pub sse_keepalive: Duration,
    /// The authorization server that protects every route (our issuer).
    pub issuer: String,
}

/// One `[[gate.routes]]` entry, with what its answers need prepared.
pub struct Route {
    /// The public path (`/mcp`).
    pub path: String,
    pub upstream: reqwest::Url,
    /// The resource identifier as configured (or the issuer's origin + path).
    pub resource: String,
    /// Its comparable form (docs/behaviour.md §9).
    resource_key: String,
    pub name: String,
    /// Scopes every request needs, and the same space-separated.
    pub scopes: Vec<String>,
    pub scope_text: String,
    /// Tool name → the scopes it needs besides `scopes`.
    pub tools: HashMap<String, Vec<String>>,
    /// The URL of this route's RFC 9728 document, and the paths it is served at.
    pub metadata_url: String,
    pub metadata_paths: Vec<String>,
    pub metadata: bytes::Bytes,
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` for the upstream: the resource URL's.
    pub forwarded_proto: String,
    pub forwarded_host: String,
}

impl Gate {
    pub fn new(settings: &GateSettings, ep: &Endpoints) -> Self {
        let header = |name: &str| {
            (!name.is_empty())
                .then(|| HeaderName::from_bytes(name.as_bytes()).ok())
                .flatten()
        };
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
        Self {
            routes: settings
                .routes
                .iter()
                .filter_map(|r| Route::new(r, ep))
                .collect(),
            subject_header: header(&settings.headers.subject),
            client_id_header: header(&settings.headers.client_id),
            scopes_header: header(&settings.headers.scopes),
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            permits: Arc::new(tokio::sync::Semaphore::new(settings.max_connections)),
            body_limit: settings.body_limit,
            connect_timeout,
            first_byte_timeout: Duration::from_millis(settings.first_byte_timeout_ms),
            sse_keepalive: Duration::from_millis(settings.sse_keepalive_ms),
            issuer: ep.issuer.clone(),
        }
    }
}

impl Gate {
    /// The HTTP client of this worker thread. Each actix worker is a single-threaded runtime, and
    /// a connection is driven by the runtime that opened it: one client (and connection pool) per
    /// worker keeps every upstream connection on the thread that uses it, instead of waking
    /// another worker for each request.
    pub fn http(&self) -> reqwest::Client {
        thread_local! {
            static CLIENTS: std::cell::RefCell<HashMap<usize, reqwest::Client>> =
                std::cell::RefCell::new(HashMap::new());
        }
        CLIENTS.with(|clients| {
            let Ok(mut clients) = clients.try_borrow_mut() else {
                return self.build_client();
            };
            clients
                .entry(self.id)
                .or_insert_with(|| self.build_client())
                .clone()
        })
    }

    fn build_client(&self) -> reqwest::Client {
        // Upstreams are the operator's own servers: no proxy from the environment, no
        // redirects followed (a redirect is passed back to the client as it is).
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| {
                log::error!("gate: the HTTP client could not be built ({e}); using the default");
                reqwest::Client::new()
            })
    }
}

impl Route {
    /// `None` only for settings that validation refuses.
    fn new(r: &GateRoute, ep: &Endpoints) -> Option<Self> {
        let upstream = reqwest::Url::parse(&r.upstream).ok()?;
        let resource = if r.resource.is_empty() {
            format!("{}{}", ep.origin, r.path)
        } else {
            r.resource.clone()
        };
        let resource_key = resource::normalize(&resource)?;
        let parsed = url::Url::parse(&resource_key).ok()?;
        let resource_path = match parsed.path() {
            "/" => "",
            p => p,
        };
        // RFC 9728 §3.1: the well-known name goes between the host and the resource's path.
        let mut metadata_url = parsed.clone();
        metadata_url.set_path(&format!("{RESOURCE_WELL_KNOWN}{resource_path}"));
        metadata_url.set_query(None);
        let mut metadata_paths = vec![format!("{RESOURCE_WELL_KNOWN}{}", r.path)];
        let own = format!("{RESOURCE_WELL_KNOWN}{resource_path}");
        if !metadata_paths.contains(&own) {
            metadata_paths.push(own);
        }
        let name = if r.name.is_empty() {
            r.path.clone()
        } else {
            r.name.clone()
        };
        let mut supported = r.scopes.clone();
        let mut tool_scopes: Vec<&String> = r.tools.values().flatten().collect();
        tool_scopes.sort();
        for s in tool_scopes {
            if !supported.contains(s) {
                supported.push(s.clone());
            }
        }
        // RFC 9728 §2.
        let doc = serde_json::json!({
            "resource": resource,
            "authorization_servers": [ep.issuer],
            "scopes_supported": supported,
            "bearer_methods_supported": ["header"],
            "resource_name": name,
        });
        let forwarded_host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        Some(Self {
            forwarded_proto: parsed.scheme().to_owned(),
            forwarded_host,
            path: r.path.clone(),
            upstream,
            resource,
            resource_key,
            name,
            scope_text: r.scopes.join(" "),
            scopes: r.scopes.clone(),
            tools: r.tools.clone(),
            metadata_url: metadata_url.to_string(),
            metadata_paths,
            metadata: serde_json::to_vec(&doc).unwrap_or_default().into(),
        })
    }

    /// Every scope a request calling `tools` needs: the route's, then each tool's.
    pub fn needed<'a>(&'a self, tools: &[String]) -> Vec<&'a str> {
        let mut needed: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        for tool in tools {
            for s in self.tools.get(tool).into_iter().flatten() {
                if !needed.contains(&s.as_str()) {
                    needed.push(s);
                }
            }
        }
        needed
    }
}

/// Who passed the gate, told to the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub client_id: String,
    /// Space-separated.
    pub scopes: String,
}

/// Why a request does not pass (RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No token: `401` without an error code (RFC 6750 §3.1).
    NoToken,
    /// `401 invalid_token`, with its sentence.
    InvalidToken(&'static str),
    /// `403 insufficient_scope`, naming every scope needed.
    InsufficientScope { scope: String },
}

/// Lets a request pass when its bearer token is in force, was issued for this route's resource
/// and carries every scope the route and the called tools need.
pub async fn admit(
    ctx: &Ctx<'_>,
    route: &Route,
    bearer: Option<&str>,
    tools: &[String],
) -> Result<Result<Caller, Challenge>, Problem> {
    let Some(bearer) = bearer else {
        return Ok(Err(Challenge::NoToken));
    };
    let token = match access::verify(ctx, bearer).await? {
        Ok(token) => token,
        Err(refusal) => return Ok(Err(Challenge::InvalidToken(refusal.description()))),
    };
    // RFC 8707 §2, RFC 9068 §4 (MCP authorization: audience validation): a token for another
    // resource, or for none, is not for this one.
    let ours = token
        .resource
        .as_deref()
        .and_then(resource::normalize)
        .is_some_and(|r| r == route.resource_key);
    if !ours {
        return Ok(Err(Challenge::InvalidToken(
            "The access token was not issued for this resource.",
        )));
    }
    let needed = route.needed(tools);
    if needed
        .iter()
        .any(|s| !token.scopes.iter().any(|have| have == s))
    {
        return Ok(Err(Challenge::InsufficientScope {
            scope: needed.join(" "),
        }));
    }
    Ok(Ok(Caller {
        scopes: token.scopes.join(" "),
        subject: token.subject,
        client_id: token.client_id,
    }))
}

/// What the gate reads of a JSON-RPC body: the tools called and the id to echo in an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calls {
    pub tools: Vec<String>,
    /// The method of a single message.
    pub method: Option<String>,
    /// The id of a single request.
    pub id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    name: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    One(Message),
    Batch(Vec<Message>),
}

/// MCP `tools/call` (and its name in `params.name`).
pub const TOOLS_CALL: &str = "tools/call";

fn tool_of(m: &Message) -> Option<String> {
    (m.method.as_deref() == Some(TOOLS_CALL))
        .then(|| {
            m.params
                .as_ref()?
                .name
                .as_ref()?
                .as_str()
                .map(str::to_owned)
        })
        .flatten()
}

/// The tools a JSON-RPC body (one message or a batch, MCP 2025-03-26) calls. A body that is
/// not JSON-RPC calls none (the upstream refuses it).
pub fn calls(body: &[u8]) -> Calls {
    match serde_json::from_slice::<Body>(body) {
        Ok(Body::One(m)) => Calls {
            tools: tool_of(&m).into_iter().collect(),
            method: m.method,
            id: m.id,
        },
        Ok(Body::Batch(ms)) => Calls {
            tools: ms.iter().filter_map(tool_of).collect(),
            ..Default::default()
        },
        Err(_) => Calls::default(),
    }
}

/// The tool a request names in its `Mcp-Method` and `Mcp-Name` headers (MCP 2026-07-28).
pub fn header_tool(method: Option<&str>, name: Option<&str>) -> Option<String> {
    (method? == TOOLS_CALL)
        .then(|| name.map(str::to_owned))
        .flatten()
}

/// Whether the headers and the body disagree on what is called: the gate decides from what it
/// reads, the upstream acts on the body, so a request must not say one thing and do another.
pub fn headers_disagree(method: Option<&str>, name: Option<&str>, body: &Calls) -> bool {
    let Some(method) = method else {
        return false;
    };
    match &body.method {
        Some(m) if m != method => true,
        Some(_) if method == TOOLS_CALL => body.tools.first().map(String::as_str) != name,
        Some(_) => false,
        // A batch or an unreadable body, while the header names a method.
        None => !body.tools.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_is_read_from_one_message_or_a_batch() {
        let one = calls(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"x":[1,2]}}}"#);
        let batch = calls(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/list"},{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b"}}]"#);
        let list = calls(br#"{"jsonrpc":"2.0","id":"x","method":"tools/list"}"#);

        assert_eq!(one.tools, ["echo"]);
        assert_eq!(one.id, Some(serde_json::json!(7)));
        assert_eq!(batch.tools, ["a", "b"]);
        assert!(list.tools.is_empty());
        assert_eq!(list.method.as_deref(), Some("tools/list"));
        assert_eq!(calls(b"not json"), Calls::default());
        assert!(
            calls(br#"{"method":"tools/call","params":{"name":3}}"#)
                .tools
                .is_empty()
        );
    }

    #[test]
    fn headers_must_say_what_the_body_does() {
        let body =
            calls(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}}"#);

        assert!(!headers_disagree(Some("tools/call"), Some("rm"), &body));
        assert!(headers_disagree(Some("tools/call"), Some("echo"), &body));
        assert!(headers_disagree(Some("tools/list"), None, &body));
        assert!(!headers_disagree(None, None, &body));
        assert_eq!(
            header_tool(Some("tools/call"), Some("rm")).as_deref(),
            Some("rm")
        );
        assert_eq!(header_tool(Some("tools/list"), Some("rm")), None);
    }
}
