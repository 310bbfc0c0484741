//! `doorman clients …` and `doorman check-config`, run as the real binary against an embedded
//! store in a temp dir.

use std::process::{Command, Output};

fn doorman(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_doorman"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DOORMAN__STORAGE__PATH", dir.join("doorman.redb"))
        .env_remove("DOORMAN_ENV")
        .output()
        .expect("run doorman")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn clients_register_list_show_and_delete_against_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();

    let registered = doorman(
        dir.path(),
        &[
            "clients",
            "register",
            "--name",
            "Desk app",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--redirect-uri",
            "cursor://x/cb",
        ],
    );
    let confidential = doorman(
        dir.path(),
        &[
            "clients",
            "register",
            "--name",
            "Server",
            "--redirect-uri",
            "https://app.example/cb",
            "--confidential",
        ],
    );
    let list = doorman(dir.path(), &["clients", "list"]);

    assert!(registered.status.success(), "{}", stderr(&registered));
    let id = stdout(&registered)
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(stdout(&registered).contains("registration_access_token"));
    assert!(
        !stdout(&registered).contains("client_secret"),
        "public clients get no secret"
    );
    assert!(stdout(&confidential).contains("client_secret"));
    assert!(list.status.success());
    assert!(
        stdout(&list).contains(&id)
            && stdout(&list).contains("\"Desk app\"")
            && stdout(&list).contains("confidential")
    );
    assert!(stderr(&list).contains("2 clients"));

    let show = doorman(dir.path(), &["clients", "show", &id]);
    let doc: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(doc["client_id"], id.as_str());
    assert_eq!(doc["redirect_uris"][1], "cursor://x/cb");
    assert!(doc.get("client_secret").is_none() && doc.get("registration_access_token").is_none());

    let deleted = doorman(dir.path(), &["clients", "delete", &id]);
    let again = doorman(dir.path(), &["clients", "delete", &id]);
    let show_gone = doorman(dir.path(), &["clients", "show", &id]);
    assert!(deleted.status.success());
    assert!(!again.status.success() && stderr(&again).contains("no client with id"));
    assert!(!show_gone.status.success());
}

#[test]
fn clients_register_refuses_bad_metadata_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();

    let out = doorman(
        dir.path(),
        &[
            "clients",
            "register",
            "--name",
            "x",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
    );

    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid_redirect_uri"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn check_config_prints_the_effective_issuer_and_endpoints() {
    let dir = tempfile::tempdir().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_doorman"))
        .args(["check-config"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DOORMAN__ISSUER", "https://auth.example.com/tenant")
        .env("DOORMAN__STORAGE__PATH", dir.path().join("x.redb"))
        .output()
        .unwrap();

    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("issuer:                 https://auth.example.com/tenant"));
    assert!(
        text.contains("https://auth.example.com/.well-known/oauth-authorization-server/tenant")
    );
    assert!(text.contains("https://auth.example.com/tenant/token"));
}

/// `doorman grants list` and `revoke` on the store a server wrote: what a person allowed, and
/// its end.
#[actix_web::test]
async fn grants_list_and_revoke_what_a_person_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doorman.redb").display().to_string();
    let app =
        crate::flow::dev_app(&[("storage.backend", "embedded"), ("storage.path", &path)]).await;
    let client = crate::flow::public_client(&app).await;
    let (query, _) = crate::flow::approve_in(&app, None, &client.id, "").await;
    assert!(query.contains_key("code"));
    app.stop().await;

    let listed = doorman(dir.path(), &["grants", "list", "dev"]);
    let revoked = doorman(dir.path(), &["grants", "revoke", "dev", &client.id]);
    let again = doorman(dir.path(), &["grants", "list", "dev"]);
    let missing = doorman(dir.path(), &["grants", "revoke", "dev", &client.id]);

    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).contains(&client.id), "{}", stdout(&listed));
    assert!(stdout(&listed).contains("mcp"));
    assert!(stderr(&listed).contains("1 grants"));
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(!stdout(&again).contains(&client.id), "{}", stdout(&again));
    assert!(!missing.status.success(), "nothing left to revoke");
}
