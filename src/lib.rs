//! Doorman: an OAuth 2.1 authorization server for MCP clients and servers.

pub mod admin;
pub mod clock;
pub mod flows;
pub mod http;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod oauth;
pub mod records;
pub mod render;
pub mod secret;
pub mod settings;
pub mod state;
pub mod store;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, Service};
use actix_web::http::Method;
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpResponse, HttpServer, guard, web};

use crate::http::negotiate::PrefersHtml;
use crate::http::ratelimit::Limits;
use crate::http::{
    account, authorize, health, login, metadata as meta_http, register, token, upstream,
};
use crate::metadata::{OPENID_WELL_KNOWN, WELL_KNOWN};
use crate::render::{Html, Json};
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// A start-up failure, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error(
        "server.static_dir: directory {0:?} not found (run from the repository root or set DOORMAN__SERVER__STATIC_DIR)"
    )]
    StaticDir(String),
    #[error("server.bind: cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
}

/// CORS for endpoints that browser-based MCP clients call (docs/behaviour.md §9).
fn cors() -> DefaultHeaders {
    use actix_web::http::header;
    use render::{CORS_ALLOW_ORIGIN, CORS_EXPOSE};
    DefaultHeaders::new()
        .add((header::ACCESS_CONTROL_ALLOW_ORIGIN, CORS_ALLOW_ORIGIN))
        .add((header::ACCESS_CONTROL_EXPOSE_HEADERS, CORS_EXPOSE))
}

async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header((
            "Access-Control-Allow-Methods",
            "GET, POST, PUT, DELETE, OPTIONS",
        ))
        .insert_header((
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type, MCP-Protocol-Version",
        ))
        .insert_header(("Access-Control-Max-Age", "86400"))
        .finish()
}

/// Method guards for the busiest resource, `/authorize`. actix's own (`web::get()`) also note
/// every method they check for its automatic 405, which allocates on each check of each
/// route; `/authorize` answers 405 itself instead.
fn is_get(ctx: &guard::GuardContext<'_>) -> bool {
    ctx.head().method == Method::GET
}

fn is_post(ctx: &guard::GuardContext<'_>) -> bool {
    ctx.head().method == Method::POST
}

fn is_form(ctx: &guard::GuardContext<'_>) -> bool {
    ctx.head()
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// Registers `resource` behind its rate limiter when one is configured (the limiter inside the
/// configuration is shared by every worker and mount point), then behind `$outer` (CORS goes
/// outside the limiter, so browser clients can read a 429 and its Retry-After).
macro_rules! limited_service {
    ($cfg:expr, $resource:expr, $limit:expr) => {
        match $limit {
            Some(conf) => $cfg.service($resource.wrap(conf.clone())),
            None => $cfg.service($resource),
        }
    };
    ($cfg:expr, $resource:expr, $limit:expr, $outer:expr) => {
        match $limit {
            Some(conf) => $cfg.service($resource.wrap(conf.clone()).wrap($outer)),
            None => $cfg.service($resource.wrap($outer)),
        }
    };
}

/// The routes of one mount point (the issuer's path, and the origin's root).
fn routes(cfg: &mut web::ServiceConfig, limits: &Limits) {
    limited_service!(
        cfg,
        web::resource("/authorize")
            .route(
                web::route()
                    .guard(guard::fn_guard(is_get))
                    .guard(PrefersHtml)
                    .to(authorize::get_authorize::<Html>),
            )
            .route(
                web::route()
                    .guard(guard::fn_guard(is_get))
                    .to(authorize::get_authorize::<Json>),
            )
            .route(
                web::route()
                    .guard(guard::fn_guard(is_post))
                    .guard(PrefersHtml)
                    .to(authorize::post_authorize::<Html>),
            )
            .route(
                web::route()
                    .guard(guard::fn_guard(is_post))
                    .to(authorize::post_authorize::<Json>),
            )
            .default_service(web::to(|| async {
                HttpResponse::MethodNotAllowed()
                    .insert_header((actix_web::http::header::ALLOW, "GET, POST"))
                    .finish()
            })),
        &limits.authorize
    );
    let register_resource = web::resource("/register")
        .route(
            web::post()
                .guard(guard::fn_guard(is_form))
                .to(register::post_register_form),
        )
        .route(web::post().to(register::post_register))
        .route(
            web::get()
                .guard(PrefersHtml)
                .to(register::get_register_form),
        )
        .route(web::method(Method::OPTIONS).to(preflight));
    // CORS outside the limiter, so browser clients can read a 429 and its Retry-After.
    limited_service!(cfg, register_resource, &limits.register, cors());
    // Upstream sign-in (docs/behaviour.md §14): each start and each answer counts against the
    // /authorize limit (its limiter is shared by every resource it wraps).
    limited_service!(
        cfg,
        web::resource("/login/{provider}").route(web::get().to(upstream::get_login_provider)),
        &limits.authorize
    );
    limited_service!(
        cfg,
        web::resource("/login/{provider}/callback")
            .route(web::get().to(upstream::get_login_callback)),
        &limits.authorize
    );
    cfg.route("/login", web::post().to(login::post_login))
        .service(
            web::resource("/consent")
                .route(web::get().to(login::get_consent))
                .route(web::post().to(login::post_consent)),
        )
        .route("/account", web::get().to(account::get_account))
        .route("/account/revoke", web::post().to(account::post_revoke))
        .route("/account/signout", web::post().to(account::post_sign_out));
    let cors_post = |path: &str, route: actix_web::Route| {
        web::resource(path.to_owned())
            .wrap(cors())
            .route(route)
            .route(web::method(Method::OPTIONS).to(preflight))
    };
    limited_service!(
        cfg,
        web::resource("/token")
            .route(web::post().to(token::post_token))
            .route(web::method(Method::OPTIONS).to(preflight)),
        &limits.token,
        cors()
    );
    cfg.route("/jwks.json", web::get().to(meta_http::get_jwks));
    cfg.service(cors_post("/revoke", web::post().to(token::post_revoke)))
        .service(cors_post(
            "/introspect",
            web::post().to(token::post_introspect),
        ));
    cfg.service(
        web::resource("/register/{client_id}")
            .wrap(cors())
            .route(web::get().to(register::get_client))
            .route(web::put().to(register::put_client))
            .route(web::delete().to(register::delete_client))
            .route(web::method(Method::OPTIONS).to(preflight)),
    );
}

/// The route table: the contract, read top to bottom.
pub fn configure(cfg: &mut web::ServiceConfig, state: &AppState, limits: &Limits) {
    let base = state.meta.endpoints.base_path.clone();
    // `get_metadata` sets its CORS headers itself; the preflight sets its own.
    let metadata_resource = |path: String| {
        web::resource(path)
            .route(web::get().to(meta_http::get_metadata))
            .route(web::method(Method::OPTIONS).to(preflight))
    };
    // The gate's routes (docs/behaviour.md §13.2): paths Doorman itself does not use.
    http::gate::configure(cfg, &state.gate.routes);
    // Resources are tried in order, so the ones asked for most come first: the RFC 8414 §3.1
    // metadata URL, then /authorize. The form some clients try (`{path}/.well-known/...`)
    // comes before the issuer path's scope, which would otherwise take it.
    cfg.service(metadata_resource(format!("{WELL_KNOWN}{base}")));
    let static_dir = state.settings.server.static_dir.clone();
    if !base.is_empty() {
        for prefix in [WELL_KNOWN, OPENID_WELL_KNOWN] {
            cfg.service(metadata_resource(format!("{base}{prefix}")));
        }
        let st = static_dir.clone();
        cfg.service(web::scope(&base).configure(|c| {
            routes(c, limits);
            c.service(actix_files::Files::new("/static", st));
        }));
    }
    // The origin's root answers too (docs/behaviour.md §9), so clients that drop the issuer
    // path work.
    routes(cfg, limits);
    // The OpenID discovery name.
    cfg.service(metadata_resource(format!("{OPENID_WELL_KNOWN}{base}")));
    cfg.route("/healthz", web::get().to(health::get_healthz))
        .route("/readyz", web::get().to(health::get_readyz))
        .route("/metrics", web::get().to(health::get_metrics));
    cfg.service(actix_files::Files::new("/static", static_dir));
}

/// Calls `f` with the route pattern that served `req` ("(unmatched)" when none did), the
/// label of request metrics. Finding the pattern walks the route table again, so each worker
/// thread remembers the last path it looked up and its pattern: the pattern of a path never
/// changes while the server runs (and a path is never empty, so the empty start matches none).
fn with_route_label<T>(req: &actix_web::HttpRequest, f: impl FnOnce(&str) -> T) -> T {
    thread_local! {
        static LAST: std::cell::RefCell<(String, String)> = const {
            std::cell::RefCell::new((String::new(), String::new()))
        };
    }
    LAST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return f(req.match_pattern().as_deref().unwrap_or("(unmatched)"));
        };
        if last.0 != req.path() {
            let pattern = req.match_pattern();
            last.0.clear();
            last.0.push_str(req.path());
            last.1.clear();
            last.1.push_str(pattern.as_deref().unwrap_or("(unmatched)"));
        }
        f(&last.1)
    })
}

/// One log line per request; request data is `{:?}`-escaped so it cannot forge lines.
fn log_line(method: &Method, target: &str, status: u16, elapsed: Duration) {
    log::info!(
        "{}",
        RequestLine {
            method,
            target,
            status,
            elapsed
        }
    );
}

/// A request's log line, formatted straight into the log record.
pub struct RequestLine<'a> {
    pub method: &'a Method,
    pub target: &'a str,
    pub status: u16,
    pub elapsed: Duration,
}

impl std::fmt::Display for RequestLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            method,
            target,
            status,
            elapsed,
        } = self;
        f.write_str(method.as_str())?;
        f.write_str(" ")?;
        // As `{target:?}` writes it (quoted, escaped), without running every character through
        // the escaper when none needs it: printable ASCII but `"` and `\`, which is what
        // nearly every request target is.
        // Without a short circuit, so the compiler checks many bytes at once.
        let needs_escape = target.bytes().fold(false, |any, b| {
            any | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
        });
        if !needs_escape {
            f.write_str("\"")?;
            f.write_str(target)?;
            f.write_str("\"")?;
        } else {
            write!(f, "{target:?}")?;
        }
        // ` {status} {micros}µs` without the formatting machinery (one line per request).
        let mut status_digits = itoa::Buffer::new();
        let mut micros = itoa::Buffer::new();
        f.write_str(" ")?;
        f.write_str(status_digits.format(*status))?;
        f.write_str(" ")?;
        f.write_str(micros.format(elapsed.as_micros()))?;
        f.write_str("µs")
    }
}

/// Binds the listener and builds the server (not yet running). Tests call this with
/// `127.0.0.1:0`; `main` with `server.bind`.
pub fn build_server(
    settings: Settings,
    store: Store,
    clock: clock::Clock,
    listener: TcpListener,
) -> Result<Server, StartError> {
    if !settings.server.static_dir.is_dir() {
        return Err(StartError::StaticDir(
            settings.server.static_dir.display().to_string(),
        ));
    }
    let workers = match settings.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n,
    };
    let shutdown = settings.server.shutdown_timeout;
    let limits = Limits::new(&settings.rate_limit);
    let pruned = limits.clone();
    actix_web::rt::spawn(async move {
        // Addresses that are back to a full burst are forgotten, so the limiters do not keep
        // every address they ever saw.
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            pruned.prune();
        }
    });
    let state = web::Data::new(AppState::new(settings, store, clock));
    let server = HttpServer::new(move || {
        let state = state.clone();
        let limits = limits.clone();
        App::new()
            .app_data(state.clone())
            .wrap_fn(move |req, srv| {
                // Only read the clock and copy request data when a line will be logged.
                let logged = log::log_enabled!(log::Level::Info).then(|| {
                    let target = req.uri().path_and_query().map(|p| p.as_str().to_owned());
                    (
                        Instant::now(),
                        req.method().clone(),
                        target.unwrap_or_default(),
                    )
                });
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    let status = res.status().as_u16();
                    // Borrowed from the request rather than cloned for every request.
                    if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
                        with_route_label(res.request(), |route| {
                            state.metrics.request(route, status)
                        });
                    }
                    if let Some((started, method, target)) = logged {
                        log_line(&method, &target, status, started.elapsed());
                    }
                    Ok(res)
                }
            })
            .configure(|cfg| configure(cfg, &state, &limits))
    })
    .workers(workers)
    .shutdown_timeout(shutdown)
    .listen(listener)
    .map_err(|e| StartError::Bind("listener".into(), e))?
    .run();
    Ok(server)
}

/// Opens the store and binds `server.bind`: what `doorman serve` runs.
pub fn start(settings: Settings) -> Result<(Server, std::net::SocketAddr), StartError> {
    let store = Store::open(&settings.storage)?;
    let bind = settings.server.bind.clone();
    let listener = TcpListener::bind(&bind).map_err(|e| StartError::Bind(bind.clone(), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(bind, e))?;
    if let Some(embedded) = store.embedded().cloned() {
        actix_web::rt::spawn(async move {
            // Not at start-up: reads ignore expired entries anyway, and a restarted server has
            // enough to do answering the clients that come back. Then every ten minutes.
            let every = Duration::from_secs(600);
            let first = actix_web::rt::time::Instant::now() + every;
            let mut tick = actix_web::rt::time::interval_at(first, every);
            loop {
                tick.tick().await;
                if let Err(e) = embedded.purge_expired().await {
                    log::warn!("purging expired entries failed: {e}");
                }
            }
        });
    }
    Ok((
        build_server(settings, store, clock::Clock::default(), listener)?,
        addr,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_quotes_its_target_as_debug_does() {
        for target in [
            "/authorize?client_id=abc&state=x%20y",
            "/a\"b",
            "/a\\b",
            "/t\tab",
            "/caf\u{e9}",
            "/\u{7f}",
            "",
        ] {
            let line = RequestLine {
                method: &Method::POST,
                target,
                status: 201,
                elapsed: Duration::from_micros(12),
            }
            .to_string();

            assert_eq!(line, format!("POST {target:?} 201 12µs"));
        }
    }

    #[test]
    fn request_data_cannot_forge_a_log_line() {
        let target = "/authorize?client_id=x\r\nINFO forged line&state=\u{1b}[31m";

        let line = RequestLine {
            method: &Method::GET,
            target,
            status: 400,
            elapsed: Duration::from_micros(7),
        }
        .to_string();

        assert!(
            !line.contains('\n') && !line.contains('\r') && !line.contains('\u{1b}'),
            "{line}"
        );
        assert!(
            line.starts_with("GET \"/authorize?client_id=x\\r\\nINFO forged line"),
            "{line}"
        );
    }
}
