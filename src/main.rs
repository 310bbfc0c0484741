//! The `doorman` command: serve (default), check-config, healthcheck.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use doorman::settings::Settings;

#[derive(Parser)]
#[command(
    name = "doorman",
    version,
    about = "OAuth 2.1 authorization server for MCP clients and servers"
)]
struct Cli {
    /// A settings file loaded after settings/default.toml and settings/{DOORMAN_ENV}.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Validate the settings and print the effective issuer and endpoints.
    CheckConfig,
    /// Read a password from standard input and print its argon2 hash for login.users.
    HashPassword,
    /// Exit 0 when the server on server.bind answers /healthz (for container health checks).
    Healthcheck,
    /// Manage registered clients in the configured store.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// See and revoke what people allowed applications to do.
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// The keys that sign JWT access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Publish a new signing key now; it signs after tokens.rotation_delay seconds, and the
    /// key before it stays published until its last token has expired.
    Rotate,
    /// List the keys: kid, algorithm, from when each signs.
    List,
}

#[derive(Subcommand)]
enum GrantsCommand {
    /// List the applications a person allowed.
    List { username: String },
    /// End a person's grant for a client: every token of it stops working.
    Revoke { username: String, client_id: String },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// List every registered client.
    List,
    /// Show one client's registration.
    Show { client_id: String },
    /// Register a client the operator trusts and print its credentials (once).
    Register {
        #[arg(long)]
        name: String,
        /// A redirect URI; repeat for several (optional for a resource server).
        #[arg(long = "redirect-uri", required_unless_present = "resource_server")]
        redirect_uris: Vec<String>,
        /// A confidential client (gets a secret) instead of a public one.
        #[arg(long)]
        confidential: bool,
        #[arg(long)]
        scope: Option<String>,
        /// A resource server (MCP server): may introspect tokens and use client_credentials.
        #[arg(long)]
        resource_server: bool,
        /// A resource (RFC 8707) the resource server serves; repeat for several. Without any,
        /// it may introspect tokens for every resource.
        #[arg(long = "resource", requires = "resource_server")]
        resources: Vec<String>,
    },
    /// Delete a client.
    Delete { client_id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::HashPassword)) {
        return hash_password();
    }
    let logging = doorman::logging::Logging::init("info");
    let settings = match Settings::load(cli.config.as_deref(), None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("doorman: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::CheckConfig => check_config(&settings),
        Command::Healthcheck => healthcheck(&settings),
        Command::HashPassword => hash_password(),
        Command::Clients(cmd) => clients(settings, cmd),
        Command::Grants(cmd) => grants(settings, cmd),
        Command::Keys(cmd) => keys(settings, cmd),
    };
    // Every line logged is written before the process ends.
    logging.flush();
    code
}

/// Runs an operator's command on the configured store: exit 0, or 1 with one line.
fn admin_command<F>(settings: Settings, command: F) -> ExitCode
where
    F: AsyncFnOnce(&doorman::state::AppState) -> Result<(), doorman::admin::AdminError>,
{
    let system = actix_web::rt::System::new();
    let result = system.block_on(async move {
        let store = doorman::store::Store::open(&settings.storage)?;
        let state =
            doorman::state::AppState::new(settings, store, doorman::clock::Clock::default());
        command(&state).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("doorman: {e}");
            ExitCode::from(1)
        }
    }
}

fn clients(settings: Settings, cmd: ClientsCommand) -> ExitCode {
    use doorman::admin;
    admin_command(settings, async move |state| {
        let mut out = std::io::stdout().lock();
        match cmd {
            ClientsCommand::List => {
                let n = admin::list(state, &mut out, &mut std::io::stderr()).await?;
                eprintln!("{n} clients");
            }
            ClientsCommand::Show { client_id } => admin::show(state, &client_id, &mut out).await?,
            ClientsCommand::Register {
                name,
                redirect_uris,
                confidential,
                scope,
                resource_server,
                resources,
            } => {
                let new = admin::NewClient {
                    name,
                    redirect_uris,
                    confidential,
                    scope,
                    resource_server,
                    resources,
                };
                admin::register(state, &new, &mut out).await?;
            }
            ClientsCommand::Delete { client_id } => {
                admin::delete(state, &client_id).await?;
                println!("deleted {client_id}");
            }
        }
        Ok(())
    })
}

fn grants(settings: Settings, cmd: GrantsCommand) -> ExitCode {
    use doorman::admin;
    admin_command(settings, async move |state| {
        match cmd {
            GrantsCommand::List { username } => {
                let n = admin::list_grants(state, &username, &mut std::io::stdout().lock()).await?;
                eprintln!("{n} grants");
            }
            GrantsCommand::Revoke {
                username,
                client_id,
            } => {
                admin::revoke_grant(state, &username, &client_id).await?;
                println!("revoked {client_id} for {username:?}");
            }
        }
        Ok(())
    })
}

fn keys(settings: Settings, cmd: KeysCommand) -> ExitCode {
    use doorman::admin;
    admin_command(settings, async move |state| {
        let mut out = std::io::stdout().lock();
        match cmd {
            KeysCommand::Rotate => admin::rotate_keys(state, &mut out).await,
            KeysCommand::List => admin::list_keys(state, &mut out).await,
        }
    })
}

fn serve(settings: Settings) -> ExitCode {
    let system = actix_web::rt::System::new();
    let result = system.block_on(async move {
        let issuer = settings.issuer.clone();
        let backend = format!("{:?}", settings.storage.backend).to_lowercase();
        let (server, addr) = doorman::start(settings)?;
        log::info!("doorman listening on http://{addr} (issuer {issuer}, storage {backend})");
        server
            .await
            .map_err(|e| doorman::StartError::Bind(addr.to_string(), e))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("doorman: {e}");
            ExitCode::from(1)
        }
    }
}

fn check_config(settings: &Settings) -> ExitCode {
    let meta = doorman::metadata::Metadata::build(settings);
    let ep = &meta.endpoints;
    println!("settings are valid");
    println!("issuer:                 {}", ep.issuer);
    println!("metadata:               {}", ep.metadata);
    println!("authorization_endpoint: {}", ep.authorization);
    println!("token_endpoint:         {}", ep.token);
    println!(
        "registration_endpoint:  {}",
        ep.registration
            .as_deref()
            .unwrap_or("(registration disabled)")
    );
    println!("storage:                {:?}", settings.storage.backend);
    // The redirect URI to register at each identity provider (docs/behaviour.md §14).
    for p in &settings.login.providers {
        println!(
            "login provider {:?}: register {}",
            p.id,
            doorman::flows::upstream::callback_url(&ep.issuer, &p.id)
        );
    }
    ExitCode::SUCCESS
}

fn healthcheck(settings: &Settings) -> ExitCode {
    use std::io::{Read, Write};
    let addr = settings.server.bind.replace("0.0.0.0", "127.0.0.1");
    let ok = std::net::TcpStream::connect(&addr)
        .and_then(|mut s| {
            s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
            let mut buf = [0u8; 16];
            s.read_exact(&mut buf)?;
            Ok(buf.starts_with(b"HTTP/1.1 200"))
        })
        .unwrap_or(false);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn hash_password() -> ExitCode {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut password = String::new();
    if std::io::stdin().read_line(&mut password).is_err() {
        eprintln!("doorman: cannot read the password from standard input");
        return ExitCode::from(2);
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("doorman: the password is empty");
        return ExitCode::from(2);
    }
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let Ok(salt) = SaltString::encode_b64(&salt) else {
        eprintln!("doorman: cannot make a salt");
        return ExitCode::from(1);
    };
    match argon2::Argon2::default().hash_password(password.as_bytes(), &salt) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("doorman: hashing failed: {e}");
            ExitCode::from(1)
        }
    }
}
