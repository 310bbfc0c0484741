//! Per-client-IP rate limits (a `governor` GCRA limiter per route) answering `429` with
//! `Retry-After` and an OAuth-style body, prebuilt: under a flood it is the answer given most.
//!
//! Our own small middleware rather than actix-governor's: that one asked `quanta` for a new
//! clock on every refused request, and a new clock probes the CPU with `cpuid`, which a virtual
//! machine traps — measured as the largest single cost of a 429 on this project's 2-core VM
//! (`perf`: 15 % of the server's time in `raw_cpuid`, plus the inlined remainder). Here the
//! limiter's own clock tells the wait.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use futures_util::future::{Either, MapOk, TryFutureExt};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::render::Json;
use crate::settings::{IpRange, RateLimit};

/// Keys requests by the client's IP address: the peer's, or — only when the peer is one of
/// the trusted proxies — the nearest untrusted address in `X-Forwarded-For`.
#[derive(Clone, Default)]
pub struct ClientIp {
    trusted: Arc<[IpRange]>,
}

impl ClientIp {
    pub fn new(trusted: &[IpRange]) -> Self {
        Self {
            trusted: trusted.into(),
        }
    }

    /// The client address for a request from `peer` carrying `forwarded_for` headers.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        client_address(&self.trusted, peer, forwarded_for)
    }
}

/// The address a request is counted against: the peer's, or — only when the peer is one of the
/// `trusted` proxies — the nearest untrusted address in `X-Forwarded-For`. An IPv6 address
/// counts as its /64, the block one subscriber is usually given (else one host could take a
/// new address per request).
pub fn client_address(trusted: &[IpRange], peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    let mut client = peer;
    if is_trusted(peer) {
        // Walk from the right (the hop nearest to us); the first address that is not one of
        // our proxies is the client. Anything unparsable ends the walk.
        let hops = forwarded_for
            .iter()
            .flat_map(|h| h.split(','))
            .map(str::trim);
        let hops: Vec<&str> = hops.collect();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !is_trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    match client {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl ClientIp {
    /// The address `req` is counted against; `None` without a peer address (no TCP peer).
    fn extract(&self, req: &ServiceRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        // X-Forwarded-For is read only from a trusted proxy; otherwise nothing to collect.
        if !self.trusted.iter().any(|r| r.contains(peer)) {
            return Some(self.client(peer, &[]));
        }
        let headers: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        Some(self.client(peer, &headers))
    }
}

/// One limiter: `burst` requests at once and one more every `period` per client address, for
/// some methods (preflights are not counted). Clones share the limiter, so one limiter can
/// guard several routes and mount points.
#[derive(Clone)]
pub struct Config {
    inner: Arc<Inner>,
}

struct Inner {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    methods: Vec<Method>,
    keys: ClientIp,
}

impl Config {
    /// Whether `req` may go on; else the prebuilt `429` with the seconds until it may.
    fn check(&self, req: &ServiceRequest) -> Result<(), u64> {
        let inner = &*self.inner;
        if !inner.methods.contains(req.method()) {
            return Ok(());
        }
        // Without a TCP peer (never on a real server) there is no address to count against.
        let Some(key) = inner.keys.extract(req) else {
            return Ok(());
        };
        inner.limiter.check_key(&key).map_err(|not_until| {
            not_until
                .wait_time_from(inner.limiter.clock().now())
                .as_secs()
                .max(1)
        })
    }
}

impl<S, B> Transform<S, ServiceRequest> for Config
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = Limited<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(Limited {
            service: Rc::new(service),
            config: self.clone(),
        }))
    }
}

/// A service behind its limiter.
pub struct Limited<S> {
    service: Rc<S>,
    config: Config,
}

type Passed<S, B> = MapOk<
    <S as Service<ServiceRequest>>::Future,
    fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B>>,
>;

impl<S, B> Service<ServiceRequest> for Limited<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Either<Passed<S, B>, Ready<Result<Self::Response, Self::Error>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match self.config.check(&req) {
            Ok(()) => Either::Left(
                self.service
                    .call(req)
                    .map_ok(ServiceResponse::map_into_left_body as fn(_) -> _),
            ),
            Err(wait) => {
                let answer = req.into_response(Json::too_many(wait));
                Either::Right(ready(Ok(answer.map_into_right_body())))
            }
        }
    }
}

/// The limiters of the endpoints that have one, built once and shared by every worker and
/// mount point; `None` when disabled.
#[derive(Clone)]
pub struct Limits {
    pub register: Option<Config>,
    pub token: Option<Config>,
    pub authorize: Option<Config>,
}

impl Limits {
    /// Drops the entries of addresses that are back to a full burst, so the limiters' maps do
    /// not grow with every address ever seen; the server calls this now and then.
    pub fn prune(&self) {
        for conf in [&self.register, &self.token, &self.authorize]
            .into_iter()
            .flatten()
        {
            conf.inner.limiter.retain_recent();
            conf.inner.limiter.shrink_to_fit();
        }
    }

    pub fn new(rl: &RateLimit) -> Self {
        let keys = ClientIp::new(&rl.trusted_proxies);
        let limit = |burst: u32, period_ms: u64, methods: &[actix_web::http::Method]| {
            config(
                burst,
                Duration::from_millis(period_ms),
                keys.clone(),
                methods,
            )
            .filter(|_| rl.enabled)
        };
        Self {
            register: limit(rl.register_burst, rl.register_period_ms, &[Method::POST]),
            token: limit(rl.token_burst, rl.token_period_ms, &[Method::POST]),
            authorize: limit(
                rl.authorize_burst,
                rl.authorize_period_ms,
                &[Method::GET, Method::POST],
            ),
        }
    }
}

/// The limiter for `methods` on one route: `burst` requests at once, one more every `period`
/// (preflights are not counted); `None` when either is zero.
pub fn config(burst: u32, period: Duration, keys: ClientIp, methods: &[Method]) -> Option<Config> {
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
    Some(Config {
        inner: Arc::new(Inner {
            limiter: RateLimiter::keyed(quota),
            methods: methods.to_vec(),
            keys,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let keys = ClientIp::new(&[IpRange::try_from("10.0.0.0/24".to_owned()).unwrap()]);
        let stranger: IpAddr = "192.0.2.7".parse().unwrap();

        assert_eq!(
            keys.client(stranger, &["203.0.113.9"]),
            stranger,
            "untrusted peer: header ignored"
        );
        assert_eq!(
            keys.client(proxy, &["198.51.100.1, 203.0.113.9"]),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            keys.client(proxy, &["203.0.113.9, 10.0.0.1"]),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(keys.client(proxy, &["garbage"]), proxy);
        assert_eq!(keys.client(proxy, &[]), proxy);
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64_block() {
        let keys = ClientIp::new(&[]);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();

        assert_eq!(keys.client(a, &[]), keys.client(b, &[]));
        assert_ne!(keys.client(a, &[]), keys.client(other, &[]));
        assert_eq!(
            keys.client("::ffff:192.0.2.7".parse().unwrap(), &[]),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
