//! Per-client-IP rate limits (actix-governor) answering `429` with `Retry-After` and an
//! OAuth-style body.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_governor::{GovernorConfig, GovernorConfigBuilder, KeyExtractor, PeerIpKeyExtractor};
use actix_web::dev::ServiceRequest;
use actix_web::{HttpResponse, HttpResponseBuilder};
use governor::NotUntil;
use governor::clock::{Clock, DefaultClock, QuantaInstant};

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

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = <PeerIpKeyExtractor as KeyExtractor>::KeyExtractionError;

    fn extract(&self, req: &ServiceRequest) -> Result<Self::Key, Self::KeyExtractionError> {
        let peer = PeerIpKeyExtractor.extract(req)?;
        // X-Forwarded-For is read only from a trusted proxy; otherwise nothing to collect.
        if !self.trusted.iter().any(|r| r.contains(peer)) {
            return Ok(self.client(peer, &[]));
        }
        let headers: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(self.client(peer, &headers))
    }

    /// The prebuilt `429` (render::Json::too_many): the cheapest answer Doorman gives, since
    /// under a flood it is the one given most.
    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        _response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1);
        Json::too_many(wait)
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
            let limiter = conf.limiter();
            limiter.retain_recent();
            limiter.shrink_to_fit();
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
        use actix_web::http::Method;
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

/// A limiter configuration; clones share one limiter.
pub type Config = GovernorConfig<ClientIp, governor::middleware::NoOpMiddleware<QuantaInstant>>;

/// The limiter for `methods` on one route: `burst` requests at once, one more every `period`
/// (preflights are not counted).
pub fn config(
    burst: u32,
    period: Duration,
    key: ClientIp,
    methods: &[actix_web::http::Method],
) -> Option<Config> {
    GovernorConfigBuilder::default()
        .key_extractor(key)
        .methods(methods.to_vec())
        .period(period)
        .burst_size(burst)
        .finish()
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
