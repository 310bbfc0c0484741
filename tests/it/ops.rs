//! Operations: /healthz, /readyz, /metrics (docs/behaviour.md §10).

use crate::support::{CHROME_ACCEPT, RedisServer, TestApp, header, json, text};

#[actix_web::test]
async fn healthz_and_readyz_answer_while_the_store_is_reachable() {
    let app = TestApp::spawn().await;

    let mut health = app.get("/healthz").send().await.unwrap();
    let mut ready = app.get("/readyz").send().await.unwrap();

    assert_eq!(health.status(), 200);
    assert_eq!(json(&mut health).await["status"], "ok");
    assert_eq!(ready.status(), 200);
    assert_eq!(json(&mut ready).await["storage"], "memory");
}

#[actix_web::test]
async fn readyz_is_503_while_redis_is_down_but_healthz_stays_up() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let app = TestApp::with(&[
        ("storage.backend", "redis"),
        ("storage.redis_url", &url),
        ("storage.timeout_ms", "500"),
    ])
    .await;
    redis.kill();

    let ready = app.get("/readyz").send().await.unwrap();
    let health = app.get("/healthz").send().await.unwrap();

    assert_eq!(ready.status(), 503);
    assert!(!header(&ready, "retry-after").is_empty());
    assert_eq!(health.status(), 200);
}

#[actix_web::test]
async fn metrics_count_requests_by_route_unregistered_answers_and_storage_latency() {
    let app = TestApp::with(&[("metrics.token", "scrape-token")]).await;
    app.get("/authorize?client_id=nobody").send().await.unwrap();
    app.get("/authorize?client_id=nobody").send().await.unwrap();
    app.get("/authorize?client_id=someone")
        .insert_header(("accept", CHROME_ACCEPT))
        .send()
        .await
        .unwrap();
    app.get("/no/such/path/42").send().await.unwrap();
    // Two paths of one pattern, one after the other: each is labelled by the pattern.
    app.get("/register/one").send().await.unwrap();
    app.get("/register/two").send().await.unwrap();
    app.get("/no/such/path/43").send().await.unwrap();

    let mut res = app
        .get("/metrics")
        .insert_header(("authorization", "Bearer scrape-token"))
        .send()
        .await
        .unwrap();
    let body = text(&mut res).await;

    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").starts_with("text/plain"));
    assert!(
        body.contains("doorman_http_requests_total{route=\"/authorize\",status=\"400\"} 3"),
        "{body}"
    );
    assert!(
        body.contains(
            "doorman_unregistered_client_responses_total{reason=\"unknown\",renderer=\"json\"} 2"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "doorman_unregistered_client_responses_total{reason=\"unknown\",renderer=\"html\"} 1"
        ),
        "{body}"
    );
    assert!(
        body.contains("doorman_storage_operation_seconds_count{backend=\"memory\"} 3"),
        "{body}"
    );
    assert!(
        body.contains(
            "doorman_http_requests_total{route=\"/register/{client_id}\",status=\"401\"} 2"
        ),
        "{body}"
    );
    assert!(
        body.contains("doorman_http_requests_total{route=\"(unmatched)\",status=\"404\"} 2"),
        "{body}"
    );
    assert!(
        !body.contains("/no/such/path/42") && !body.contains("/register/one"),
        "raw paths are never labels: {body}"
    );
}
