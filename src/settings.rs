//! Typed settings loaded with the `config` crate; one clear error line per bad key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../settings/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub issuer: String,
    pub server: Server,
    pub storage: Storage,
    pub registration: Registration,
    pub rate_limit: RateLimit,
    pub branding: Branding,
    pub scopes: Scopes,
    pub resources: Resources,
    pub login: Login,
    pub tokens: Tokens,
    pub metrics: Metrics,
    pub cimd: Cimd,
    pub gate: Gate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub bind: String,
    pub workers: usize,
    pub static_dir: PathBuf,
    pub shutdown_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Embedded,
    Redis,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    Single,
    Cluster,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub backend: Backend,
    pub path: PathBuf,
    pub redis_url: String,
    pub redis_mode: RedisMode,
    pub key_prefix: String,
    pub timeout_ms: u64,
    /// Redis (single server): client records cached in process, kept true by RESP3 client
    /// tracking (see `store/redis.rs`).
    pub redis_client_cache: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub enabled: bool,
    pub form: bool,
    pub initial_access_token: String,
    pub client_ttl: u64,
    pub unused_ttl: u64,
    pub idle_ttl: u64,
    pub allow_client_credentials: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub enabled: bool,
    pub register_burst: u32,
    pub register_period_ms: u64,
    pub token_burst: u32,
    pub token_period_ms: u64,
    pub authorize_burst: u32,
    pub authorize_period_ms: u64,
    pub login_burst: u32,
    pub login_period_ms: u64,
    pub login_user_burst: u32,
    pub login_user_period_ms: u64,
    pub trusted_proxies: Vec<IpRange>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    pub name: String,
    pub logo: String,
    pub documentation: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scopes {
    pub supported: Vec<String>,
    pub default: Vec<String>,
    /// What each scope lets an application do, in a sentence for the consent page.
    pub descriptions: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub allowed: Vec<String>,
    /// Refuse requests without `resource` (`invalid_target`) unless `default` is set.
    pub require: bool,
    /// The resource of requests that name none (old clients); "" = none.
    pub default: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMode {
    Password,
    Dev,
    /// Sign-in at the operator's identity providers (`login.providers`), docs/behaviour.md §14.
    Upstream,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub mode: LoginMode,
    pub users: Vec<User>,
    pub session_secret: String,
    pub session_ttl: u64,
    pub remember_consent_days: u64,
    pub max_failures: u32,
    pub password_checks: usize,
    /// The identity providers of `login.mode = "upstream"` (`[[login.providers]]`).
    #[serde(default)]
    pub providers: Vec<Provider>,
}

/// The kind of an upstream identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect, found by discovery from `issuer`.
    Oidc,
    /// GitHub's OAuth apps: OAuth 2 without OpenID Connect; the user from its REST API.
    Github,
}

/// A secret from the settings: read by the code that uses it, never written by `Debug`, so a
/// settings dump or a log line cannot carry it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

/// GitHub's public endpoints, the defaults of a `github` provider.
pub const GITHUB_AUTHORIZE_URL: &str = "https://github.com/login/oauth/authorize";
pub const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
pub const GITHUB_API_URL: &str = "https://api.github.com";

/// One identity provider people may sign in with (docs/behaviour.md §14).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Used in URLs (`/login/{id}`) and as the prefix of subjects (`{id}:{sub}`).
    pub id: String,
    /// The name on the sign-in button.
    pub name: String,
    pub kind: ProviderKind,
    /// OpenID Connect: the issuer, whose `/.well-known/openid-configuration` is read.
    #[serde(default)]
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Secret,
    /// A file holding the client secret (read at start-up; surrounding whitespace dropped).
    #[serde(default)]
    pub client_secret_file: String,
    /// Scopes asked for; empty = the kind's default (`openid email profile`; GitHub
    /// `read:user user:email`, plus `read:org` when `allowed_groups` is set).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// E-mail domains whose people may sign in (verified addresses only).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// People who may sign in: a subject, a username (`preferred_username`, GitHub login) or a
    /// verified e-mail address.
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// Groups whose members may sign in (`groups_claim`; GitHub: organisation logins).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Lets everyone the provider signs in through, when no allow-list is set.
    #[serde(default)]
    pub allow_everyone: bool,
    /// The claim that becomes the subject (default `sub`; GitHub: `id`), scoped as `{id}:{value}`.
    #[serde(default)]
    pub subject_claim: String,
    /// The claim holding the person's name as shown (default `name`).
    #[serde(default)]
    pub name_claim: String,
    /// The claim holding the e-mail address as shown and checked (default `email`).
    #[serde(default)]
    pub email_claim: String,
    /// The claim holding the groups (default `groups`).
    #[serde(default)]
    pub groups_claim: String,
    /// Milliseconds each call to the provider may take.
    #[serde(default = "default_provider_timeout")]
    pub timeout_ms: u64,
    /// GitHub: where people authorize (a loopback stand-in in tests).
    #[serde(default)]
    pub authorize_url: String,
    /// GitHub: where codes are exchanged.
    #[serde(default)]
    pub token_url: String,
    /// GitHub: the REST API's base URL.
    #[serde(default)]
    pub api_url: String,
}

fn default_provider_timeout() -> u64 {
    5000
}

impl Provider {
    /// The claim that becomes the subject.
    pub fn subject_claim(&self) -> &str {
        match (self.subject_claim.as_str(), self.kind) {
            ("", ProviderKind::Oidc) => "sub",
            ("", ProviderKind::Github) => "id",
            (claim, _) => claim,
        }
    }

    pub fn name_claim(&self) -> &str {
        or(&self.name_claim, "name")
    }

    pub fn email_claim(&self) -> &str {
        or(&self.email_claim, "email")
    }

    pub fn groups_claim(&self) -> &str {
        or(&self.groups_claim, "groups")
    }

    /// The scopes asked for.
    pub fn scopes(&self) -> Vec<String> {
        if !self.scopes.is_empty() {
            return self.scopes.clone();
        }
        let defaults: &[&str] = match self.kind {
            ProviderKind::Oidc => &["openid", "email", "profile"],
            ProviderKind::Github if self.allowed_groups.is_empty() => &["read:user", "user:email"],
            ProviderKind::Github => &["read:user", "user:email", "read:org"],
        };
        defaults.iter().map(|s| (*s).to_owned()).collect()
    }

    pub fn authorize_url(&self) -> &str {
        or(&self.authorize_url, GITHUB_AUTHORIZE_URL)
    }

    pub fn token_url(&self) -> &str {
        or(&self.token_url, GITHUB_TOKEN_URL)
    }

    pub fn api_url(&self) -> &str {
        or(&self.api_url, GITHUB_API_URL).trim_end_matches('/')
    }
}

fn or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub code_ttl: u64,
    pub refresh_grace: u64,
    /// What access tokens look like (docs/behaviour.md §13).
    pub format: TokenFormat,
    /// The algorithm of keys generated into the store, or of the key file.
    pub algorithm: crate::records::Algorithm,
    /// Where the signing key comes from.
    pub signing_key: KeySource,
    /// A PKCS#8 PEM private key file (`signing_key = "file"`, or `"auto"` when set).
    pub signing_key_file: PathBuf,
    /// The key file's contents, read at start-up.
    #[serde(skip)]
    pub signing_key_pem: String,
    /// Seconds between `doorman keys rotate` publishing a key and the key signing.
    pub rotation_delay: u64,
    /// Seconds a process keeps the key set before reading it from the store again.
    pub key_refresh: u64,
}

/// `tokens.format`: RFC 9068 JWTs, or opaque random strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    Jwt,
    Opaque,
}

/// `tokens.signing_key`: where the access-token signing key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// The file when `signing_key_file` is set, else keys generated into the store — refused
    /// with a public issuer and a shared (Redis) store, where the operator must choose.
    Auto,
    /// Keys generated into the store, rotated with `doorman keys rotate`.
    Store,
    /// `signing_key_file`.
    File,
}

impl Tokens {
    /// Whether the signing key is the file's (otherwise keys kept in the store).
    pub fn key_from_file(&self) -> bool {
        match self.signing_key {
            KeySource::File => true,
            KeySource::Store => false,
            KeySource::Auto => !self.signing_key_file.as_os_str().is_empty(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub token: String,
}

/// Client ID Metadata Documents (docs/behaviour.md §12).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cimd {
    pub enabled: bool,
    pub timeout_ms: u64,
    pub cache_min: u64,
    pub cache_max: u64,
    pub stale_if_error: u64,
    pub allow_domains: Vec<String>,
    pub allow_hosts: Vec<String>,
    pub allow_http_hosts: Vec<String>,
    pub ca_file: String,
    pub pinned: String,
}

/// The gate in front of MCP servers (docs/behaviour.md §13.2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub routes: Vec<GateRoute>,
    pub body_limit: usize,
    pub connect_timeout_ms: u64,
    pub first_byte_timeout_ms: u64,
    pub sse_keepalive_ms: u64,
    pub max_connections: usize,
    pub headers: GateHeaders,
}

/// One `[[gate.routes]]` entry: a public path, the MCP server behind it, and what a token
/// needs to pass.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRoute {
    pub path: String,
    pub upstream: String,
    /// The resource identifier (RFC 8707, RFC 9728); empty = the issuer's origin + `path`.
    #[serde(default)]
    pub resource: String,
    /// Shown on the page and as `resource_name`; empty = the path.
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_gate_scopes")]
    pub scopes: Vec<String>,
    /// Tool name → scopes needed besides `scopes` to call it (`tools/call`).
    #[serde(default)]
    pub tools: HashMap<String, Vec<String>>,
}

fn default_gate_scopes() -> Vec<String> {
    vec!["mcp".to_owned()]
}

/// The names of the headers that carry the caller's identity to the upstream; empty = none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateHeaders {
    pub subject: String,
    pub client_id: String,
    pub scopes: String,
}

/// Paths of Doorman's own that a gate route may not take.
const OWN_PATHS: &[&str] = &[
    "/authorize",
    "/token",
    "/register",
    "/revoke",
    "/introspect",
    "/login",
    "/consent",
    "/account",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static",
    "/.well-known",
];

impl Gate {
    /// The checks of the `[gate]` section; errors name the key (`gate.routes[N].key`).
    fn validate(&self, supported: &[String], issuer_path: &str) -> Result<(), SettingsError> {
        let invalid = |key, problem: String| SettingsError::Invalid { key, problem };
        if self.body_limit == 0 {
            return Err(invalid("gate.body_limit", "must be greater than 0".into()));
        }
        for (key, ms) in [
            ("gate.connect_timeout_ms", self.connect_timeout_ms),
            ("gate.first_byte_timeout_ms", self.first_byte_timeout_ms),
            ("gate.sse_keepalive_ms", self.sse_keepalive_ms),
        ] {
            if ms == 0 || ms > 3_600_000 {
                return Err(invalid(
                    key,
                    "must be between 1 and 3600000 milliseconds".into(),
                ));
            }
        }
        if self.max_connections == 0 {
            return Err(invalid(
                "gate.max_connections",
                "must be greater than 0".into(),
            ));
        }
        for (key, name) in [
            ("gate.headers.subject", &self.headers.subject),
            ("gate.headers.client_id", &self.headers.client_id),
            ("gate.headers.scopes", &self.headers.scopes),
        ] {
            if name.is_empty() {
                continue;
            }
            let Ok(header) = reqwest::header::HeaderName::from_bytes(name.as_bytes()) else {
                return Err(invalid(key, format!("{name:?} is not a header name")));
            };
            if matches!(
                header.as_str(),
                "authorization"
                    | "cookie"
                    | "host"
                    | "connection"
                    | "content-length"
                    | "content-type"
                    | "transfer-encoding"
                    | "mcp-session-id"
                    | "mcp-protocol-version"
            ) {
                return Err(invalid(
                    key,
                    format!(
                        "{name:?} is a header the gate passes on or removes; pick another name"
                    ),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (index, route) in self.routes.iter().enumerate() {
            let bad = |key: &str, problem: String| SettingsError::Gate {
                index,
                key: key.to_owned(),
                problem,
            };
            let path = route.path.as_str();
            if !path.starts_with('/')
                || path.len() < 2
                || path.ends_with('/')
                || path.contains(['?', '#', ' ', '{', '}', '\\'])
                || path.contains("//")
            {
                return Err(bad(
                    "path",
                    format!(
                        "{path:?} must be a path such as \"/mcp\": starting with a slash, not ending with one, no query"
                    ),
                ));
            }
            let own = |p: &str| {
                OWN_PATHS
                    .iter()
                    .any(|o| p == *o || p.starts_with(&format!("{o}/")))
            };
            let under_issuer = !issuer_path.is_empty()
                && (path == issuer_path || path.starts_with(&format!("{issuer_path}/")));
            if own(path) || under_issuer {
                return Err(bad(
                    "path",
                    format!("{path:?} is one of Doorman's own paths (or under the issuer's path)"),
                ));
            }
            if !seen.insert(path) {
                return Err(bad("path", format!("{path:?} is used by two routes")));
            }
            match url::Url::parse(&route.upstream) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.fragment().is_none() => {}
                _ => {
                    return Err(bad(
                        "upstream",
                        format!(
                            "{:?} must be an absolute http(s) URL without fragment",
                            route.upstream
                        ),
                    ));
                }
            }
            if !route.resource.is_empty()
                && crate::oauth::resource::normalize(&route.resource).is_none()
            {
                return Err(bad(
                    "resource",
                    format!(
                        "{:?} is not an absolute URI without fragment",
                        route.resource
                    ),
                ));
            }
            if route.name.chars().any(char::is_control) || route.name.chars().count() > 64 {
                return Err(bad(
                    "name",
                    "at most 64 characters, no control characters".into(),
                ));
            }
            if route.scopes.is_empty() {
                return Err(bad(
                    "scopes",
                    "name at least one scope a token must have".into(),
                ));
            }
            let scopes = route
                .scopes
                .iter()
                .map(|s| ("scopes", s))
                .chain(route.tools.values().flatten().map(|s| ("tools", s)));
            for (key, scope) in scopes {
                if !supported.contains(scope) {
                    return Err(bad(
                        key,
                        format!("{scope:?} is not in scopes.supported, so no token could carry it"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An address or a CIDR range (`10.0.0.1`, `172.16.0.0/12`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpRange {
    pub network: std::net::IpAddr,
    pub prefix: u8,
}

impl IpRange {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map(V4).unwrap_or(V6(v6)),
            v4 => v4,
        };
        match (self.network, ip) {
            (V4(n), V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (V6(n), V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for IpRange {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.as_str(), None),
        };
        let network: std::net::IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
        };
        Ok(Self { network, prefix })
    }
}

/// A settings problem, worded as the one line an operator reads at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("settings: key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
    /// A key of one `[[gate.routes]]` entry (`index` counts from 0).
    #[error("settings: key `gate.routes[{index}].{key}`: {problem}")]
    Gate {
        index: usize,
        key: String,
        problem: String,
    },
    /// A key of one `[[login.providers]]` entry (`index` counts from 0).
    #[error("settings: key `login.providers[{index}].{key}` (provider {id:?}): {problem}")]
    Provider {
        index: usize,
        id: String,
        key: &'static str,
        problem: String,
    },
}

impl Settings {
    /// Loads defaults, `settings/{DOORMAN_ENV}.toml`, the optional `--config` file and the
    /// `DOORMAN__*` environment variables (`env` replaces the process environment in tests).
    pub fn load(
        config_file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let env_map = env.unwrap_or_else(|| std::env::vars().collect());
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(name) = env_map.get("DOORMAN_ENV").filter(|n| !n.is_empty()) {
            builder =
                builder.add_source(File::with_name(&format!("settings/{name}")).required(false));
        }
        if let Some(path) = config_file {
            builder = builder.add_source(File::from(path).required(true));
        }
        let environment = Environment::with_prefix("DOORMAN")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("scopes.supported")
            .with_list_parse_key("scopes.default")
            .with_list_parse_key("resources.allowed")
            .with_list_parse_key("rate_limit.trusted_proxies")
            .with_list_parse_key("cimd.allow_domains")
            .with_list_parse_key("cimd.allow_hosts")
            .with_list_parse_key("cimd.allow_http_hosts")
            .source(Some(
                env_map
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("DOORMAN__"))
                    .collect(),
            ));
        let mut settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.read_secret_files()?;
        settings.validate()?;
        settings.read_signing_key()?;
        Ok(settings)
    }

    /// The defaults alone, for tests and tools.
    pub fn defaults() -> Result<Self, SettingsError> {
        Self::load(None, Some(HashMap::new()))
    }

    /// Reads `tokens.signing_key_file` and checks that it is a key of `tokens.algorithm`, and
    /// that the operator chose where keys come from when it matters (docs/security.md).
    fn read_signing_key(&mut self) -> Result<(), SettingsError> {
        let t = &mut self.tokens;
        let invalid = |key, problem: String| SettingsError::Invalid { key, problem };
        let file_set = !t.signing_key_file.as_os_str().is_empty();
        match t.signing_key {
            KeySource::File if !file_set => {
                return Err(invalid(
                    "tokens.signing_key_file",
                    "required when tokens.signing_key = \"file\"".into(),
                ));
            }
            KeySource::Store if file_set => {
                return Err(invalid(
                    "tokens.signing_key_file",
                    "set, but tokens.signing_key = \"store\" ignores it; choose one".into(),
                ));
            }
            _ => {}
        }
        if t.key_from_file() {
            let path = t.signing_key_file.display().to_string();
            let pem = std::fs::read_to_string(&t.signing_key_file)
                .map_err(|e| invalid("tokens.signing_key_file", format!("{path:?}: {e}")))?;
            crate::oauth::jwt::KeyPair::from_pem(&pem, t.algorithm)
                .map_err(|e| invalid("tokens.signing_key_file", format!("{path:?}: {e}")))?;
            t.signing_key_pem = pem;
            return Ok(());
        }
        let public = url::Url::parse(&self.issuer)
            .is_ok_and(|u| !crate::oauth::redirect_uri::is_loopback_host(&u));
        if t.format == TokenFormat::Jwt
            && t.signing_key == KeySource::Auto
            && public
            && self.storage.backend == Backend::Redis
        {
            return Err(invalid(
                "tokens.signing_key",
                "with a public issuer and a shared store, choose where the signing key comes from: \"store\" (generated once and kept in Redis, readable by anyone who can read Redis) or \"file\" with tokens.signing_key_file".into(),
            ));
        }
        Ok(())
    }

    /// Reads each provider's `client_secret_file` into its `client_secret`.
    fn read_secret_files(&mut self) -> Result<(), SettingsError> {
        for (index, p) in self.login.providers.iter_mut().enumerate() {
            if p.client_secret_file.is_empty() {
                continue;
            }
            let problem = |problem: String| SettingsError::Provider {
                index,
                id: p.id.clone(),
                key: "client_secret_file",
                problem,
            };
            if !p.client_secret.is_empty() {
                return Err(problem(
                    "set client_secret or client_secret_file, not both".into(),
                ));
            }
            let text = std::fs::read_to_string(&p.client_secret_file)
                .map_err(|e| problem(format!("cannot read {:?}: {e}", p.client_secret_file)))?;
            p.client_secret = Secret::new(text.trim());
        }
        Ok(())
    }

    /// The checks of `[[login.providers]]` (docs/behaviour.md §14).
    fn validate_providers(&self) -> Result<(), SettingsError> {
        let providers = &self.login.providers;
        let upstream = self.login.mode == LoginMode::Upstream;
        if upstream && providers.is_empty() {
            return Err(SettingsError::Invalid {
                key: "login.providers",
                problem: "login.mode = \"upstream\" needs at least one [[login.providers]] entry"
                    .into(),
            });
        }
        if !upstream && !providers.is_empty() {
            return Err(SettingsError::Invalid {
                key: "login.providers",
                problem: "providers are used only with login.mode = \"upstream\"".into(),
            });
        }
        for (index, p) in providers.iter().enumerate() {
            let bad = |key: &'static str, problem: &str| SettingsError::Provider {
                index,
                id: p.id.clone(),
                key,
                problem: problem.to_owned(),
            };
            let id_ok = (1..=32).contains(&p.id.len())
                && p.id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !id_ok {
                return Err(bad(
                    "id",
                    "1 to 32 characters of a-z, 0-9, - and _ (it appears in URLs and subjects)",
                ));
            }
            if providers[..index].iter().any(|q| q.id == p.id) {
                return Err(bad("id", "another provider has the same id"));
            }
            if p.name.trim().is_empty()
                || p.name.chars().count() > 64
                || p.name.chars().any(char::is_control)
            {
                return Err(bad("name", "1 to 64 characters without control characters"));
            }
            if p.client_id.is_empty() {
                return Err(bad(
                    "client_id",
                    "required: the client ID registered at the provider",
                ));
            }
            if p.client_secret.is_empty() {
                return Err(bad(
                    "client_secret",
                    "required: set client_secret or client_secret_file (the secret registered at the provider)",
                ));
            }
            let github_urls = [
                ("authorize_url", &p.authorize_url),
                ("token_url", &p.token_url),
                ("api_url", &p.api_url),
            ];
            match p.kind {
                ProviderKind::Oidc => {
                    if let Err(problem) = provider_url(&p.issuer) {
                        return Err(bad("issuer", &problem));
                    }
                    if let Some((key, _)) = github_urls.iter().find(|(_, v)| !v.is_empty()) {
                        return Err(bad(key, "only for kind = \"github\""));
                    }
                    if !p.scopes().iter().any(|s| s == "openid") {
                        return Err(bad(
                            "scopes",
                            "an OpenID Connect provider needs the scope openid",
                        ));
                    }
                }
                ProviderKind::Github => {
                    if !p.issuer.is_empty() {
                        return Err(bad(
                            "issuer",
                            "only for kind = \"oidc\" (GitHub has no OpenID Connect for people)",
                        ));
                    }
                    for (key, value) in github_urls {
                        if !value.is_empty()
                            && let Err(problem) = provider_url(value)
                        {
                            return Err(bad(key, &problem));
                        }
                    }
                    if !matches!(p.subject_claim(), "id" | "login") {
                        return Err(bad(
                            "subject_claim",
                            "for GitHub, id (the default; it never changes) or login",
                        ));
                    }
                }
            }
            if let Some(s) = p
                .scopes
                .iter()
                .find(|s| !crate::oauth::scope::is_scope_token(s))
            {
                return Err(bad("scopes", &format!("{s:?} is not a valid scope token")));
            }
            if let Some(d) = p
                .allowed_domains
                .iter()
                .find(|d| d.is_empty() || d.contains(['@', '/', ' ']) || d.starts_with('.'))
            {
                return Err(bad(
                    "allowed_domains",
                    &format!("{d:?} is not a domain name (write example.com)"),
                ));
            }
            if p.allowed_users
                .iter()
                .chain(&p.allowed_groups)
                .any(String::is_empty)
            {
                return Err(bad("allowed_users", "entries must not be empty"));
            }
            let listed = !(p.allowed_domains.is_empty()
                && p.allowed_users.is_empty()
                && p.allowed_groups.is_empty());
            if !listed && !p.allow_everyone {
                return Err(bad(
                    "allowed_domains",
                    "say who may sign in: set allowed_domains, allowed_users or allowed_groups, or allow_everyone = true to admit everyone the provider signs in",
                ));
            }
            if listed && p.allow_everyone {
                return Err(bad(
                    "allow_everyone",
                    "allow_everyone = true admits everyone: remove it or the allow-lists",
                ));
            }
            if !(1..=60_000).contains(&p.timeout_ms) {
                return Err(bad("timeout_ms", "must be between 1 and 60000"));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.validate_providers()?;
        let invalid = |key, problem: &str| SettingsError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        let issuer = url::Url::parse(&self.issuer)
            .map_err(|e| invalid("issuer", &format!("not an absolute URL ({e})")))?;
        if !matches!(issuer.scheme(), "http" | "https") {
            return Err(invalid(
                "issuer",
                "must use https (or http on a loopback host)",
            ));
        }
        if issuer.query().is_some()
            || issuer.fragment().is_some()
            || self.issuer.contains(['?', '#'])
        {
            return Err(invalid("issuer", "must not have a query or a fragment"));
        }
        if self.issuer.ends_with('/') {
            return Err(invalid("issuer", "must not end with a slash"));
        }
        if issuer.scheme() == "http" && !crate::oauth::redirect_uri::is_loopback_host(&issuer) {
            return Err(invalid(
                "issuer",
                "http is allowed only on a loopback host; use https",
            ));
        }
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.bind",
                "expected an address and port like 127.0.0.1:8080",
            ));
        }
        if self.storage.key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "storage.key_prefix",
                "must not contain braces (Redis hash tags)",
            ));
        }
        if self.storage.timeout_ms == 0 {
            return Err(invalid("storage.timeout_ms", "must be greater than 0"));
        }
        let rl = &self.rate_limit;
        for (key, burst, period) in [
            (
                "rate_limit.register_burst",
                rl.register_burst,
                rl.register_period_ms,
            ),
            ("rate_limit.token_burst", rl.token_burst, rl.token_period_ms),
            (
                "rate_limit.authorize_burst",
                rl.authorize_burst,
                rl.authorize_period_ms,
            ),
            ("rate_limit.login_burst", rl.login_burst, rl.login_period_ms),
            (
                "rate_limit.login_user_burst",
                rl.login_user_burst,
                rl.login_user_period_ms,
            ),
        ] {
            if burst == 0 || period == 0 {
                return Err(invalid(key, "burst and period must be greater than 0"));
            }
        }
        for scope in self.scopes.supported.iter().chain(&self.scopes.default) {
            if !crate::oauth::scope::is_scope_token(scope) {
                return Err(invalid(
                    "scopes.supported",
                    &format!("{scope:?} is not a valid scope token"),
                ));
            }
        }
        if let Some(s) = self
            .scopes
            .default
            .iter()
            .find(|s| !self.scopes.supported.contains(s))
        {
            return Err(invalid(
                "scopes.default",
                &format!("{s:?} is not in scopes.supported"),
            ));
        }
        for r in &self.resources.allowed {
            if crate::oauth::resource::normalize(r).is_none() {
                return Err(invalid(
                    "resources.allowed",
                    &format!("{r:?} is not an absolute URI without fragment"),
                ));
            }
        }
        if !self.resources.default.is_empty() {
            let served = crate::oauth::resource::normalize(&self.resources.default)
                .is_some_and(|n| crate::oauth::resource::is_served(&n, &self.resources.allowed));
            if !served {
                return Err(invalid(
                    "resources.default",
                    "must be an absolute URI without fragment that resources.allowed accepts",
                ));
            }
        }
        if self.tokens.key_refresh == 0 {
            return Err(invalid("tokens.key_refresh", "must be greater than 0"));
        }
        let loopback_issuer = crate::oauth::redirect_uri::is_loopback_host(&issuer);
        let loopback_bind = self
            .server
            .bind
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        if self.login.mode == LoginMode::Dev && !(loopback_issuer && loopback_bind) {
            return Err(invalid(
                "login.mode",
                "dev sign-in signs everyone in without a password, so it is allowed only with a loopback issuer and a loopback server.bind (127.0.0.1, [::1])",
            ));
        }
        if self.login.session_secret.is_empty()
            && self.storage.backend == Backend::Redis
            && !loopback_issuer
        {
            return Err(invalid(
                "login.session_secret",
                "set it (at least 32 random characters) when the issuer is public and the store is shared: a key kept in Redis would let anyone who can read Redis forge sessions",
            ));
        }
        if self.login.max_failures == 0 {
            return Err(invalid("login.max_failures", "must be greater than 0"));
        }
        if !self.login.session_secret.is_empty() && self.login.session_secret.len() < 32 {
            return Err(invalid(
                "login.session_secret",
                "must be at least 32 characters (or empty)",
            ));
        }
        for user in &self.login.users {
            if user.username.is_empty() || argon2::PasswordHash::new(&user.password_hash).is_err() {
                return Err(invalid(
                    "login.users",
                    &format!(
                        "user {:?} needs a username and an argon2 PHC password_hash (doorman hash-password)",
                        user.username
                    ),
                ));
            }
        }
        if self.login.session_ttl == 0 {
            return Err(invalid("login.session_ttl", "must be greater than 0"));
        }
        if self.tokens.code_ttl == 0 || self.tokens.code_ttl > 300 {
            return Err(invalid(
                "tokens.code_ttl",
                "must be between 1 and 300 seconds",
            ));
        }
        if self.tokens.access_ttl == 0 || self.tokens.refresh_ttl == 0 {
            return Err(invalid(
                "tokens.access_ttl",
                "token lifetimes must be greater than 0",
            ));
        }
        if self.branding.logo.contains(['/', '\\']) {
            return Err(invalid(
                "branding.logo",
                "must be a file name inside server.static_dir",
            ));
        }
        self.cimd.validate()?;
        self.gate
            .validate(&self.scopes.supported, issuer.path().trim_end_matches('/'))
    }
}

impl Cimd {
    /// The checks of the `[cimd]` section; the CA file and the pinned documents are read here
    /// once, so a wrong path or a broken file stops start-up with a line naming the key.
    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, problem: String| SettingsError::Invalid { key, problem };
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(invalid(
                "cimd.timeout_ms",
                "must be between 1 and 60000 milliseconds".into(),
            ));
        }
        if self.cache_min > self.cache_max {
            return Err(invalid(
                "cimd.cache_min",
                format!("must not exceed cimd.cache_max ({})", self.cache_max),
            ));
        }
        for (key, hosts) in [
            ("cimd.allow_domains", &self.allow_domains),
            ("cimd.allow_hosts", &self.allow_hosts),
            ("cimd.allow_http_hosts", &self.allow_http_hosts),
        ] {
            if let Some(bad) = hosts
                .iter()
                .find(|h| crate::oauth::cimd::normalize_host(h).is_none())
            {
                return Err(invalid(
                    key,
                    format!("{bad:?} is not a host name or IP address"),
                ));
            }
        }
        if !self.ca_file.is_empty() {
            let pem = std::fs::read(&self.ca_file).map_err(|e| {
                invalid(
                    "cimd.ca_file",
                    format!("cannot read {:?}: {e}", self.ca_file),
                )
            })?;
            if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |c| c.is_empty()) {
                return Err(invalid(
                    "cimd.ca_file",
                    format!("{:?} holds no PEM certificate", self.ca_file),
                ));
            }
        }
        self.pinned_documents()
            .map_err(|e| invalid("cimd.pinned", e))?;
        Ok(())
    }

    /// The pinned documents of `cimd.pinned`, by the URL each names in its `client_id`; empty
    /// when no folder is set.
    pub fn pinned_documents(&self) -> Result<HashMap<String, Vec<u8>>, String> {
        let mut docs = HashMap::new();
        if self.pinned.is_empty() {
            return Ok(docs);
        }
        let dir = Path::new(&self.pinned);
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read the folder {dir:?}: {e}"))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{dir:?}: {e}"))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let body = std::fs::read(&path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
            if body.len() > crate::oauth::cimd::MAX_DOCUMENT {
                return Err(format!("{path:?} is larger than 5 KiB"));
            }
            let url = crate::oauth::cimd::pinned_key(&body).map_err(|e| format!("{path:?} {e}"))?;
            if docs.insert(url.clone(), body).is_some() {
                return Err(format!("two files pin {url}"));
            }
        }
        Ok(docs)
    }
}

/// Checks a provider URL: absolute, https (or http on a loopback host), no fragment.
fn provider_url(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("required".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not an absolute URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if crate::oauth::redirect_uri::is_loopback_host(&url) => {}
        _ => {
            return Err(format!(
                "{raw:?} must use https (http only on a loopback host)"
            ));
        }
    }
    if url.fragment().is_some() || url.query().is_some() {
        return Err(format!("{raw:?} must not have a query or a fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::IpRange;

    #[test]
    fn ip_ranges_match_addresses_and_cidr_blocks() {
        let docker = IpRange::try_from("172.16.0.0/12".to_owned()).unwrap();
        let single = IpRange::try_from("10.0.0.1".to_owned()).unwrap();
        let v6 = IpRange::try_from("fd00::/8".to_owned()).unwrap();

        assert!(docker.contains("172.18.0.5".parse().unwrap()));
        assert!(!docker.contains("172.32.0.1".parse().unwrap()));
        assert!(
            docker.contains("::ffff:172.18.0.5".parse().unwrap()),
            "IPv4-mapped IPv6"
        );
        assert!(single.contains("10.0.0.1".parse().unwrap()));
        assert!(!single.contains("10.0.0.2".parse().unwrap()));
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(IpRange::try_from("10.0.0.0/33".to_owned()).is_err());
        assert!(IpRange::try_from("nope".to_owned()).is_err());
    }
}
