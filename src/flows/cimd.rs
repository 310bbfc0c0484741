//! Client ID Metadata Documents, fetched safely and cached in the shared store
//! (docs/behaviour.md §12). The rules are in `oauth::cimd`; this is the I/O: a guarded HTTP
//! client (no redirects, a short timeout, at most 5 KiB, names resolved once by a resolver that
//! hands out only addresses the classifier allows), pinned copies, and a cache every process
//! shares, with stale-if-error and one fetch at a time across processes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION};

use super::clients::Lookup;
use super::{Ctx, Problem};
use crate::oauth::cimd::{self, DocumentUrl, Failure};
use crate::records::{CachedDocument, Client, RegisteredBy};
use crate::settings::Cimd as Settings;
use crate::store::Backend;

/// How often a process waiting for another one's fetch looks at the store again.
const WAIT_STEP: Duration = Duration::from_millis(25);

/// The document fetcher of one process: its HTTP client and the pinned copies, both made once
/// at start-up.
pub struct Documents {
    http: Option<reqwest::Client>,
    pinned: HashMap<String, Vec<u8>>,
}

impl Documents {
    /// Builds the fetcher from `[cimd]`. The settings were checked at start-up; should the CA
    /// file or a pinned document have become unreadable since, that is logged and fetching
    /// goes on without it.
    pub fn new(settings: &Settings) -> Self {
        let pinned = settings.pinned_documents().unwrap_or_else(|e| {
            log::error!("cimd.pinned: {e}");
            HashMap::new()
        });
        let resolver = Arc::new(GuardedResolver {
            allow_hosts: settings.allow_hosts.clone(),
        });
        let mut builder = reqwest::Client::builder()
            // A redirect could lead anywhere, the checked address included (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve names itself, unchecked.
            .no_proxy()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms))
            .user_agent(concat!(
                "Doorman/",
                env!("CARGO_PKG_VERSION"),
                " (OAuth client metadata document fetcher)"
            ))
            .dns_resolver(resolver);
        if !settings.ca_file.is_empty() {
            match std::fs::read(&settings.ca_file)
                .map_err(|e| e.to_string())
                .and_then(|pem| {
                    reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())
                }) {
                Ok(certs) => {
                    for cert in certs {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                Err(e) => log::error!("cimd.ca_file {:?}: {e}", settings.ca_file),
            }
        }
        let http = builder
            .build()
            .map_err(|e| log::error!("the metadata document client could not be built: {e}"))
            .ok();
        Self { http, pinned }
    }
}

/// Resolves a host name once, and hands the HTTP client only addresses the classifier allows
/// (or every address, for a host in `cimd.allow_hosts`): the connection goes to an address that
/// was checked, and nothing resolves the name a second time.
struct GuardedResolver {
    allow_hosts: Vec<String>,
}

/// A resolution refused by the guard, carried through the HTTP client's error.
#[derive(Debug)]
struct Refused(Failure);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Refused {}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allowed = self.allow_hosts.iter().any(|h| cimd::same_host(h, &host));
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(Iterator::collect);
            match guard(&host, allowed, found) {
                Ok(addrs) => {
                    let addrs: Addrs = Box::new(addrs.into_iter());
                    Ok(addrs)
                }
                Err(f) => Err(Box::new(Refused(f)) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// The addresses a resolved name may be connected to: all of them for a host in
/// `cimd.allow_hosts`, otherwise only when none is refused (one internal address among public
/// ones is refused too: a name that points inside is no client's public document host).
fn guard(
    host: &str,
    allowed: bool,
    found: std::io::Result<Vec<SocketAddr>>,
) -> Result<Vec<SocketAddr>, Failure> {
    let unresolved = || Failure::NameResolution {
        host: host.to_owned(),
    };
    let addrs = found.map_err(|_| unresolved())?;
    if addrs.is_empty() {
        return Err(unresolved());
    }
    if !allowed {
        for a in &addrs {
            if let Some(range) = cimd::refused_range(a.ip()) {
                return Err(Failure::RefusedAddress {
                    host: host.to_owned(),
                    address: a.ip(),
                    range,
                });
            }
        }
    }
    Ok(addrs)
}

/// A document as its host served it.
struct Fetched {
    body: Vec<u8>,
    cache_control: Option<String>,
    content_type: Option<String>,
}

/// The failure a request ended with: the guard's own, a timeout, or the connection's.
fn failure_of(e: &reqwest::Error, host: &str, timeout_ms: u64) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(err) = source {
        if let Some(Refused(f)) = err.downcast_ref::<Refused>() {
            return f.clone();
        }
        innermost = err.to_string();
        source = err.source();
    }
    if e.is_timeout() {
        Failure::Timeout { millis: timeout_ms }
    } else {
        Failure::Connection {
            host: host.to_owned(),
            why: innermost,
        }
    }
}

fn header(res: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// One GET of the document: `Accept: application/json`, no redirect followed, at most
/// `MAX_DOCUMENT` bytes read, within `timeout_ms` altogether.
async fn fetch(
    http: &reqwest::Client,
    doc: &DocumentUrl,
    timeout_ms: u64,
) -> Result<Fetched, Failure> {
    let failed = |e: reqwest::Error| failure_of(&e, &doc.host, timeout_ms);
    let mut res = http
        .get(doc.url.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(failed)?;
    let status = res.status();
    if status != reqwest::StatusCode::OK {
        return Err(Failure::HttpStatus {
            status: status.as_u16(),
            location: status
                .is_redirection()
                .then(|| header(&res, LOCATION))
                .flatten(),
        });
    }
    if res
        .content_length()
        .is_some_and(|n| n > cimd::MAX_DOCUMENT as u64)
    {
        return Err(Failure::TooLarge);
    }
    let cache_control = header(&res, CACHE_CONTROL);
    let content_type = header(&res, CONTENT_TYPE);
    let mut body = Vec::with_capacity(1024);
    while let Some(chunk) = res.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > cimd::MAX_DOCUMENT {
            return Err(Failure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        body,
        cache_control,
        content_type,
    })
}

/// The client a document describes: its URL is its client_id, it has no secret, and it is
/// trusted with nothing the operator did not grant everyone (docs/behaviour.md §11).
fn client(ctx: &Ctx<'_>, client_id: &str, body: &[u8], fetched_at: u64) -> Result<Client, Failure> {
    let metadata = cimd::validate_document(body, client_id, &ctx.settings.scopes.supported)?;
    Ok(Client {
        client_id: client_id.to_owned(),
        secret_hash: None,
        registration_token_hash: String::new(),
        metadata,
        issued_at: fetched_at,
        expires_at: 0,
        registered_by: RegisteredBy::Document,
        resource_server: None,
        // Never lapses for want of use: it is not a registration.
        used: true,
        last_used: 0,
    })
}

/// Resolves a client_id that is a document URL: the URL rules, the allowed domains, a pinned
/// copy, the shared cache, else a fetch. A storage failure is a `Problem` (503), never a
/// document failure.
pub async fn resolve(ctx: &Ctx<'_>, client_id: &str) -> Result<Lookup, Problem> {
    let s = &ctx.settings.cimd;
    let doc = match cimd::document_url(client_id, &s.allow_http_hosts) {
        Ok(d) => d,
        Err(f) => return Ok(Lookup::Failed(f)),
    };
    if !cimd::domain_allowed(&doc.host, &s.allow_domains) {
        return Ok(Lookup::Failed(Failure::DomainNotAllowed { host: doc.host }));
    }
    if let Some(body) = ctx.documents.pinned.get(client_id) {
        return Ok(found(client(ctx, client_id, body, ctx.now)));
    }
    // An IP literal is never resolved, so the guard checks it here, before any connection.
    let allowed_host = s.allow_hosts.iter().any(|h| cimd::same_host(h, &doc.host));
    if let Some(ip) = doc.ip.filter(|_| !allowed_host)
        && let Some(range) = cimd::refused_range(ip)
    {
        return Ok(Lookup::Failed(Failure::RefusedAddress {
            host: doc.host,
            address: ip,
            range,
        }));
    }
    let cached = ctx.store.document(client_id).await?;
    if let Some(c) = cached.as_ref().filter(|c| c.fresh_until > ctx.now) {
        return Ok(found(client(
            ctx,
            client_id,
            c.body.as_bytes(),
            c.fetched_at,
        )));
    }
    let fetched = fetch_once(ctx, client_id, &doc, cached.as_ref()).await?;
    if let Err(f) = &fetched {
        log::info!(
            "the metadata document of {client_id:?} could not be used: {:?}",
            f.to_string()
        );
    }
    Ok(match (fetched, cached) {
        (Ok(c), _) => found(client(ctx, client_id, c.body.as_bytes(), c.fetched_at)),
        // Stale-if-error: a document host that is down (or answering errors) does not lock the
        // client's users out until the stale time is over.
        (Err(f), Some(mut c)) if c.stale_until > ctx.now => {
            log::warn!(
                "serving the stale metadata document of {client_id:?} (fetched at {}): {:?}",
                c.fetched_at,
                f.to_string()
            );
            // Tried again no sooner than cache_min from now, by any process, so that every
            // sign-in does not wait for a host that is down.
            c.fresh_until = (ctx.now + s.cache_min).min(c.stale_until);
            let keep = Duration::from_secs(c.stale_until.saturating_sub(ctx.now) + 60);
            ctx.store.put_document(client_id, &c, keep).await?;
            found(client(ctx, client_id, c.body.as_bytes(), c.fetched_at))
        }
        (Err(f), _) => Lookup::Failed(f),
    })
}

fn found(client: Result<Client, Failure>) -> Lookup {
    match client {
        Ok(c) => Lookup::Found(Box::new(c)),
        Err(f) => Lookup::Failed(f),
    }
}

/// A fresh copy of the document: fetched by this process, or — when another process sharing
/// the store is fetching it — that process's copy once it is there (or meanwhile the stale
/// copy, when there is one). After claiming the fetch the store is read again, so a copy
/// another process stored meanwhile is not fetched twice.
async fn fetch_once(
    ctx: &Ctx<'_>,
    client_id: &str,
    doc: &DocumentUrl,
    stale: Option<&CachedDocument>,
) -> Result<Result<CachedDocument, Failure>, Problem> {
    let timeout_ms = ctx.settings.cimd.timeout_ms;
    let hold = Duration::from_millis(timeout_ms) + Duration::from_secs(2);
    let waited_since = std::time::Instant::now();
    loop {
        if ctx.store.claim_document_fetch(client_id, hold).await? {
            break;
        }
        if let Some(c) = ctx.store.document(client_id).await?
            && c.fresh_until > ctx.now
        {
            return Ok(Ok(c));
        }
        if let Some(c) = stale.filter(|c| c.stale_until > ctx.now) {
            return Ok(Ok(c.clone()));
        }
        if waited_since.elapsed() > hold {
            // The other fetch outlasted its mark: fetch anyway.
            break;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    let result = async {
        if let Some(c) = ctx.store.document(client_id).await?
            && c.fresh_until > ctx.now
        {
            return Ok(Ok(c));
        }
        fetch_and_keep(ctx, client_id, doc).await
    }
    .await;
    ctx.store.release_document_fetch(client_id).await?;
    result
}

/// Fetches, validates and keeps the document for everyone; only a valid document is kept.
async fn fetch_and_keep(
    ctx: &Ctx<'_>,
    client_id: &str,
    doc: &DocumentUrl,
) -> Result<Result<CachedDocument, Failure>, Problem> {
    let s = &ctx.settings.cimd;
    let Some(http) = &ctx.documents.http else {
        return Ok(Err(Failure::Connection {
            host: doc.host.clone(),
            why: "this server's document client could not be built; see its log".into(),
        }));
    };
    let fetched = match fetch(http, doc, s.timeout_ms).await {
        Ok(f) => f,
        Err(f) => return Ok(Err(f)),
    };
    if let Err(f) =
        cimd::validate_document(&fetched.body, client_id, &ctx.settings.scopes.supported)
    {
        return Ok(Err(match f {
            Failure::NotJson { .. } => Failure::NotJson {
                content_type: fetched.content_type,
            },
            other => other,
        }));
    }
    let fresh = cimd::lifetime(fetched.cache_control.as_deref(), s.cache_min, s.cache_max);
    let cached = CachedDocument {
        body: String::from_utf8_lossy(&fetched.body).into_owned(),
        fetched_at: ctx.now,
        fresh_until: ctx.now + fresh,
        stale_until: ctx.now + fresh + s.stale_if_error,
    };
    let keep = Duration::from_secs(fresh + s.stale_if_error + 60);
    ctx.store.put_document(client_id, &cached, keep).await?;
    Ok(Ok(cached))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> std::io::Result<Vec<SocketAddr>> {
        Ok(list
            .iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
            .collect())
    }

    #[test]
    fn the_guard_hands_out_only_public_addresses_unless_the_host_is_allowed() {
        assert_eq!(
            guard(
                "app.example",
                false,
                addrs(&["93.184.215.14", "2606:2800::1"])
            )
            .map(|a| a.len()),
            Ok(2)
        );
        let refused = guard("evil.example", false, addrs(&["93.184.215.14", "10.0.0.5"]));
        assert!(
            matches!(&refused, Err(Failure::RefusedAddress { address, range, .. })
                if address.to_string() == "10.0.0.5" && range.starts_with("private")),
            "{refused:?}"
        );
        assert_eq!(
            guard("localhost", true, addrs(&["127.0.0.1"])).map(|a| a.len()),
            Ok(1),
            "cimd.allow_hosts"
        );
        assert_eq!(
            guard(
                "nowhere.example",
                false,
                Err(std::io::Error::other("no such host"))
            ),
            Err(Failure::NameResolution {
                host: "nowhere.example".into()
            })
        );
        assert_eq!(
            guard("empty.example", false, addrs(&[])),
            Err(Failure::NameResolution {
                host: "empty.example".into()
            })
        );
    }
}
