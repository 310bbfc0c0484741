//! What checking a bearer token costs per request (issue 16): `flows::access::verify` for a JWT
//! and an opaque token in force, on the memory and embedded stores, next to the signature check
//! alone (what a resource server verifying by JWKS pays) and ES256 signing (what /token pays).
//!
//!     cargo run --release --example verify [-- ITERATIONS]
//!
//! Single-threaded, in-process (no HTTP): the figures are the work `verify` adds to a request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use doorman::flows::access;
use doorman::oauth::jwt;
use doorman::records::{Token, TokenKind};
use doorman::settings::Settings;
use doorman::state::AppState;
use doorman::store::{Backend, Store};

fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("DOORMAN__LOGIN__MODE", "dev"),
        ("DOORMAN__SERVER__STATIC_DIR", "static"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::load(None, Some(env)).expect("settings")
}

fn per_op(label: &str, n: u32, elapsed: Duration) {
    let us = elapsed.as_secs_f64() * 1e6 / f64::from(n);
    println!("{label:<48} {us:>9.2} µs/op   ({n} ops)");
}

async fn run(backend: &str, n: u32) {
    let dir = tempfile_dir();
    let path = format!("{dir}/verify-bench.redb");
    let s = settings(&[
        ("DOORMAN__STORAGE__BACKEND", backend),
        ("DOORMAN__STORAGE__PATH", &path),
    ]);
    let store = Store::open(&s.storage).expect("store");
    let state = AppState::new(s, store, doorman::clock::Clock::default());
    let created = doorman::admin::register(
        &state,
        &doorman::admin::NewClient {
            name: "bench".into(),
            resource_server: true,
            ..Default::default()
        },
        &mut std::io::sink(),
    )
    .await
    .expect("client");
    let ctx = state.ctx();
    let record = Token {
        client_id: created.client.client_id.clone(),
        subject: "alice".into(),
        scopes: vec!["mcp".into()],
        resource: Some("https://mcp.example.com/mcp".into()),
        family_id: Some("family".into()),
        grant_id: None,
        issued_at: ctx.now,
        expires_at: ctx.now + 3600,
        upstream: None,
    };
    let key = ctx.signing.signer(&ctx).await.expect("key");
    let claims = jwt::Claims {
        iss: ctx.endpoints.issuer.clone(),
        sub: record.subject.clone(),
        aud: "https://mcp.example.com/mcp".into(),
        client_id: record.client_id.clone(),
        scope: "mcp".into(),
        exp: record.expires_at,
        iat: record.issued_at,
        jti: "jti".into(),
        family: record.family_id.clone(),
        idp: None,
        name: None,
    };
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(key.pair.sign(&claims).unwrap());
    }
    per_op(
        &format!("[{backend}] ES256 sign (at /token)"),
        n,
        started.elapsed(),
    );

    let token = key.pair.sign(&claims).unwrap();
    let opaque = doorman::secret::ordered_token();
    for t in [&token, &opaque] {
        ctx.store
            .put_token(TokenKind::Access, t, &record, Duration::from_secs(3600))
            .await
            .unwrap();
    }
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(jwt::verify(&token, &key.pair, &ctx.endpoints.issuer).unwrap());
    }
    per_op(
        &format!("[{backend}] ES256 signature check alone (JWKS verifier)"),
        n,
        started.elapsed(),
    );
    for (label, t) in [("JWT", &token), ("opaque", &opaque)] {
        assert!(access::verify(&state.ctx(), t).await.unwrap().is_ok());
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(access::verify(&state.ctx(), t).await.unwrap().unwrap());
        }
        per_op(
            &format!("[{backend}] access::verify, {label} in force"),
            n,
            started.elapsed(),
        );
    }
    // Another signature of the right length: the signature part of a token for other claims.
    let other = key
        .pair
        .sign(&jwt::Claims {
            jti: "other".into(),
            ..claims.clone()
        })
        .unwrap();
    let forged = format!(
        "{}.{}",
        token.rsplit_once('.').unwrap().0,
        other.rsplit_once('.').unwrap().1
    );
    assert_eq!(
        access::verify(&state.ctx(), &forged).await.unwrap(),
        Err(access::Refusal::BadSignature)
    );
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            access::verify(&state.ctx(), &forged)
                .await
                .unwrap()
                .unwrap_err(),
        );
    }
    per_op(
        &format!("[{backend}] access::verify, JWT with a bad signature"),
        n,
        started.elapsed(),
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!("doorman-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.display().to_string()
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    actix_web::rt::System::new().block_on(async {
        for backend in ["memory", "embedded"] {
            run(backend, n).await;
        }
    });
}
