//! Settings (docs/behaviour.md §1, issue 2 item 2): keys, environment overrides, one-line errors, the
//! compose file and the binary's start-up failure.
#![allow(clippy::expect_used, clippy::unwrap_used)] // in tests, a failed expectation is a failed test

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use doorman::settings::{Backend, RedisMode, Settings, SettingsError};

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load(None, Some(env(vars)))
}

/// Runs the binary with only `vars` in its environment, in an empty directory; kills it if it
/// is still running after 20 s (a bad setting must stop it long before).
fn run_doorman(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_doorman"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .env("RUST_BACKTRACE", "1")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run doorman");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn defaults_need_no_environment() {
    let s = load(&[]).expect("defaults load");

    assert_eq!(s.issuer, "http://127.0.0.1:8080");
    assert_eq!(s.server.bind, "127.0.0.1:8080");
    assert_eq!(s.storage.backend, Backend::Embedded);
    assert_eq!(s.storage.redis_mode, RedisMode::Single);
    assert_eq!(s.storage.key_prefix, "doorman:");
    assert!(s.registration.enabled && s.registration.form);
    assert!(s.registration.initial_access_token.is_empty());
    assert_eq!(s.branding.name, "Doorman");
    assert_eq!(s.branding.logo, "logo.svg");
}

#[test]
fn every_public_key_is_overridable_from_the_environment() {
    let s = load(&[
        ("DOORMAN__ISSUER", "https://auth.example.com/tenant"),
        ("DOORMAN__SERVER__BIND", "0.0.0.0:9000"),
        ("DOORMAN__STORAGE__BACKEND", "redis"),
        ("DOORMAN__STORAGE__PATH", "/var/lib/doorman/db.redb"),
        (
            "DOORMAN__STORAGE__REDIS_URL",
            "redis://a:7000,redis://b:7000",
        ),
        ("DOORMAN__STORAGE__REDIS_MODE", "cluster"),
        ("DOORMAN__STORAGE__KEY_PREFIX", "prod:"),
        ("DOORMAN__REGISTRATION__ENABLED", "false"),
        ("DOORMAN__REGISTRATION__FORM", "false"),
        ("DOORMAN__REGISTRATION__INITIAL_ACCESS_TOKEN", "iat-123"),
        ("DOORMAN__BRANDING__NAME", "Acme"),
        ("DOORMAN__BRANDING__LOGO", "acme.svg"),
        ("DOORMAN__SCOPES__SUPPORTED", "mcp,tools.read"),
        (
            "DOORMAN__LOGIN__SESSION_SECRET",
            "a-session-secret-of-at-least-32-characters",
        ),
        ("DOORMAN__TOKENS__REFRESH_GRACE", "5"),
        ("DOORMAN__TOKENS__SIGNING_KEY", "store"),
        ("DOORMAN__METRICS__TOKEN", "scrape"),
    ])
    .expect("load");
    assert_eq!(s.tokens.signing_key, doorman::settings::KeySource::Store);

    assert_eq!(s.issuer, "https://auth.example.com/tenant");
    assert_eq!(s.server.bind, "0.0.0.0:9000");
    assert_eq!(s.storage.backend, Backend::Redis);
    assert_eq!(
        s.storage.path.display().to_string(),
        "/var/lib/doorman/db.redb"
    );
    assert_eq!(s.storage.redis_url, "redis://a:7000,redis://b:7000");
    assert_eq!(s.storage.redis_mode, RedisMode::Cluster);
    assert_eq!(s.storage.key_prefix, "prod:");
    assert!(!s.registration.enabled);
    assert!(!s.registration.form);
    assert_eq!(s.registration.initial_access_token, "iat-123");
    assert_eq!(s.branding.name, "Acme");
    assert_eq!(s.branding.logo, "acme.svg");
    assert_eq!(s.tokens.refresh_grace, 5);
    assert_eq!(s.metrics.token, "scrape");
    assert_eq!(s.scopes.supported, vec!["mcp", "tools.read"]);
}

#[test]
fn a_bad_value_is_one_line_naming_the_key() {
    let cases = [
        ("DOORMAN__SERVER__WORKERS", "abc", "server.workers"),
        ("DOORMAN__STORAGE__BACKEND", "mongo", "storage.backend"),
        (
            "DOORMAN__STORAGE__REDIS_MODE",
            "sharded",
            "storage.redis_mode",
        ),
        (
            "DOORMAN__REGISTRATION__ENABLED",
            "maybe",
            "registration.enabled",
        ),
        ("DOORMAN__STORAGE__BOGUS", "1", "bogus"),
        ("DOORMAN__BOGUS", "1", "bogus"),
        ("DOORMAN__ISSUER", "ftp://auth.example.com", "issuer"),
        ("DOORMAN__ISSUER", "https://auth.example.com/", "issuer"),
        ("DOORMAN__ISSUER", "http://auth.example.com", "issuer"),
        ("DOORMAN__SERVER__BIND", "localhost", "server.bind"),
        ("DOORMAN__BRANDING__LOGO", "../secret.svg", "branding.logo"),
        ("DOORMAN__SCOPES__DEFAULT", "admin", "scopes.default"),
    ];

    for (var, value, key) in cases {
        let err = load(&[(var, value)])
            .err()
            .unwrap_or_else(|| panic!("{var}={value} must be refused"));
        let line = err.to_string();

        assert!(
            line.contains(key),
            "{var}={value}: {line:?} does not name {key}"
        );
        assert!(
            !line.contains('\n'),
            "{var}={value}: one line, got {line:?}"
        );
    }
}

#[test]
fn unknown_key_in_a_section_is_refused_naming_the_key_and_its_section() {
    let err = load(&[("DOORMAN__STORAGE__BOGUS", "1")]).expect_err("refused");
    let line = err.to_string();

    assert!(
        line.contains("`bogus`") && line.contains("`storage`"),
        "{line}"
    );
    assert!(
        line.contains("key_prefix"),
        "it lists the keys that do exist: {line}"
    );
}

#[test]
fn config_file_is_loaded_and_the_environment_overrides_it() {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("tempfile");
    writeln!(
        file,
        "[branding]\nname = \"From the file\"\n[storage]\nkey_prefix = \"file:\""
    )
    .expect("write");

    let s = Settings::load(
        Some(file.path()),
        Some(env(&[("DOORMAN__STORAGE__KEY_PREFIX", "env:")])),
    )
    .expect("load");

    assert_eq!(s.branding.name, "From the file");
    assert_eq!(s.storage.key_prefix, "env:");
}

#[test]
fn config_file_with_a_bad_key_names_it() {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("tempfile");
    writeln!(file, "[storage]\nbackend = \"mongo\"").expect("write");

    let err = Settings::load(Some(file.path()), Some(HashMap::new())).expect_err("refused");

    assert!(err.to_string().contains("storage.backend"), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn doorman_env_selects_a_settings_file() {
    let s = load(&[("DOORMAN_ENV", "test")]).expect("load");

    assert_eq!(s.storage.backend, Backend::Memory);
    assert!(!s.rate_limit.enabled);
}

#[test]
fn default_toml_comments_every_key() {
    let mut previous = "";
    for line in doorman::settings::DEFAULT_TOML.lines().map(str::trim) {
        let is_key = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
        if is_key {
            assert!(
                previous.starts_with('#'),
                "key without a comment above it: {line:?}"
            );
        }
        if !line.is_empty() {
            previous = line;
        }
    }
}

#[test]
fn compose_file_sets_only_real_settings_keys() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("read compose")).expect("YAML");
    let mut vars: Vec<(String, String)> = Vec::new();
    let services = compose["services"].as_mapping().expect("services");
    for (_, service) in services {
        match &service["environment"] {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    let value = match v {
                        serde_yaml::Value::String(s) => s.clone(),
                        serde_yaml::Value::Bool(b) => b.to_string(),
                        serde_yaml::Value::Number(n) => n.to_string(),
                        other => panic!("unexpected value {other:?}"),
                    };
                    vars.push((k.as_str().expect("name").to_owned(), value));
                }
            }
            serde_yaml::Value::Sequence(list) => {
                for item in list {
                    let (k, v) = item
                        .as_str()
                        .and_then(|s| s.split_once('='))
                        .expect("NAME=value");
                    vars.push((k.to_owned(), v.to_owned()));
                }
            }
            _ => {}
        }
    }
    let doorman_vars: Vec<(&str, &str)> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("DOORMAN__"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    assert!(
        doorman_vars.len() >= 3,
        "the compose file configures doorman by DOORMAN__ variables: {vars:?}"
    );
    for (k, v) in &doorman_vars {
        // deny_unknown_fields: a variable that maps to no key fails to load.
        load(&[(k, v)]).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    let all = load(&doorman_vars).unwrap_or_else(|e| panic!("all together: {e}"));
    assert_eq!(all.storage.backend, Backend::Redis);
    let mut with_typo = doorman_vars.clone();
    with_typo.push(("DOORMAN__STORAGE__REDIS_URI", "redis://redis:6379"));
    assert!(load(&with_typo).is_err(), "a misspelt key would be caught");
}

#[test]
fn binary_stops_on_a_bad_setting_with_one_line_and_no_backtrace() {
    let cases = [
        ("DOORMAN__STORAGE__BACKEND", "mongo", "storage.backend"),
        ("DOORMAN__SERVER__WORKERS", "abc", "server.workers"),
    ];

    for (var, value, key) in cases {
        for args in [&[][..], &["check-config"][..]] {
            let (code, _, stderr) = run_doorman(
                args,
                &[(var, value), ("DOORMAN__SERVER__BIND", "127.0.0.1:0")],
            );
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();

            assert!(
                code.is_some_and(|c| c != 0),
                "{var} {args:?}: exit code {code:?}"
            );
            assert_eq!(lines.len(), 1, "{var} {args:?}: one line, got {stderr:?}");
            assert!(lines[0].contains(key), "{var} {args:?}: {stderr:?}");
            assert!(
                !stderr.contains("panicked") && !stderr.contains("backtrace"),
                "{var} {args:?}: {stderr:?}"
            );
        }
    }
}

#[test]
fn binary_check_config_accepts_good_settings() {
    let (code, stdout, _) = run_doorman(
        &["check-config"],
        &[("DOORMAN__ISSUER", "https://auth.example.com/auth")],
    );

    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("https://auth.example.com/auth/authorize"),
        "{stdout}"
    );
    assert!(
        stdout.contains("https://auth.example.com/.well-known/oauth-authorization-server/auth"),
        "{stdout}"
    );
}
