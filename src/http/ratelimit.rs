//! Per-client-IP rate limits (actix-governor) answering `429` with `Retry-After` and an
//! OAuth-style body.

use std::net::IpAddr;
use std::time::Duration;

use actix_governor::{GovernorConfig, GovernorConfigBuilder, KeyExtractor, PeerIpKeyExtractor};
use actix_web::dev::ServiceRequest;
use actix_web::http::header;
use actix_web::{HttpResponse, HttpResponseBuilder};
use governor::NotUntil;
use governor::clock::{Clock, DefaultClock, QuantaInstant};
use serde_json::json;

use crate::oauth::errors::ErrorCode;

/// Keys requests by the peer's IP address.
#[derive(Clone, Copy)]
pub struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = <PeerIpKeyExtractor as KeyExtractor>::KeyExtractionError;

    fn extract(&self, req: &ServiceRequest) -> Result<Self::Key, Self::KeyExtractionError> {
        PeerIpKeyExtractor.extract(req)
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1);
        response
            .insert_header((header::RETRY_AFTER, wait.to_string()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({
                "error": ErrorCode::TemporarilyUnavailable.as_str(),
                "error_description": format!("Too many requests from your address; retry in {wait} seconds."),
            }))
    }
}

/// A limiter configuration; clones share one limiter.
pub type Config = GovernorConfig<ClientIp, governor::middleware::NoOpMiddleware<QuantaInstant>>;

/// The limiter for POST on one route: `burst` requests at once, one more every `period`
/// (preflights and page views are not counted).
pub fn config(burst: u32, period: Duration) -> Option<Config> {
    GovernorConfigBuilder::default()
        .key_extractor(ClientIp)
        .methods(vec![actix_web::http::Method::POST])
        .period(period)
        .burst_size(burst)
        .finish()
}
