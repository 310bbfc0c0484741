//! The README stays true: its settings table lists every key of settings/default.toml, and the
//! files the deployment refers to exist.

const README: &str = include_str!("../../README.md");

/// Every `section.key` (and top-level key) in the default settings: `[section]` headers and
/// `key = value` lines are all that file uses.
fn default_keys() -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in doorman::settings::DEFAULT_TOML.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            keys.push(if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    keys
}

#[test]
fn readme_settings_table_lists_every_default_key() {
    let keys = default_keys();

    assert!(keys.len() > 30, "parsed too few keys: {keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !README.contains(&format!("| `{k}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "README settings table lacks: {missing:?}"
    );
}

#[test]
fn readme_gives_the_two_commands() {
    assert!(README.contains("cargo run --release"));
    assert!(README.contains("scripts/test"));
    assert!(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test")).is_file());
}

#[test]
fn files_the_compose_file_mounts_exist() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

    let mut mounted = 0;
    for (_, service) in compose["services"].as_mapping().unwrap() {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with("./") {
                let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
                assert!(file.exists(), "{source} is mounted but missing");
                mounted += 1;
            }
        }
    }
    assert!(
        mounted >= 1,
        "the proxy config is mounted from the repository"
    );
    assert!(
        compose["services"]["doorman"]["build"].as_str() == Some("."),
        "doorman is built from the Dockerfile"
    );
}

#[test]
fn the_gate_compose_file_guards_an_mcp_server_with_settings_that_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("deploy/gate-compose.yml")).unwrap(),
    )
    .unwrap();
    let services = &compose["services"];

    assert_eq!(services["doorman"]["build"].as_str(), Some(".."));
    let everything = services["everything"]["command"].as_sequence().unwrap();
    assert!(
        everything
            .iter()
            .any(|a| a.as_str() == Some("@modelcontextprotocol/server-everything@2026.8.31")),
        "the example MCP server, pinned: {everything:?}"
    );
    assert!(
        services["everything"]["ports"].is_null(),
        "only Doorman reaches the MCP server"
    );
    let mut settings_file = None;
    for volume in services["doorman"]["volumes"].as_sequence().unwrap() {
        let source = volume.as_str().unwrap().split(':').next().unwrap();
        if let Some(rel) = source.strip_prefix("./") {
            let file = root.join("deploy").join(rel);
            assert!(file.exists(), "{source} is mounted but missing");
            settings_file = Some(file);
        }
    }
    let env: std::collections::HashMap<String, String> = services["doorman"]["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str().unwrap().starts_with("DOORMAN__"))
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let settings =
        doorman::settings::Settings::load(Some(&settings_file.expect("gate.toml")), Some(env))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings.gate.routes.len(), 1);
    assert_eq!(settings.gate.routes[0].path, "/mcp");
    assert_eq!(
        settings.gate.routes[0].upstream,
        "http://everything:3001/mcp"
    );
}

#[test]
fn the_readme_shows_the_three_line_gate_settings() {
    assert!(README.contains(
        "[[gate.routes]]\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n```"
    ));
    assert!(README.contains("deploy/gate-compose.yml"));
}
