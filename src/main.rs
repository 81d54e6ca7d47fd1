//! The `gatehouse` command: the server and its administration.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

mod cli_output;

use clap::{Args, Parser, Subcommand};
use gatehouse::audit::{self, AuditEvent};
use gatehouse::config::Settings;
use gatehouse::keys::{KeyInfo, MasterKey};
use gatehouse::oauth::model::{Client, GrantType};
use gatehouse::passwords::Passwords;
use gatehouse::registry::{self, By, NewClient};
use gatehouse::state::{now, AppState};
use gatehouse::store::keys::SigningKeyRow;
use gatehouse::store::users::User;
use gatehouse::store::{self, AnyConnection, ConnectionManager};

/// Gatehouse: an OAuth 2.0 authorization server (authorization code + PKCE, JWT access tokens,
/// rotating refresh tokens, JWKS).
#[derive(Parser)]
#[command(name = "gatehouse", version = gatehouse::version::LONG_VERSION, about, long_about = None)]
struct Cli {
    /// A TOML file layered over the built-in defaults (also GATEHOUSE_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default): migrates the database and creates the first signing key.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate {
        /// Print {"applied": [versions]} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register, list and delete clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Create users, change their profiles, roles and passwords, disable and unlock them.
    #[command(subcommand)]
    User(UserCommand),
    /// List and rotate signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the audit log of security events.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Initial access tokens for dynamic client registration (registration.mode = token or open).
    #[command(subcommand)]
    RegistrationToken(RegistrationTokenCommand),
    /// Audit the configuration and the database against RFC 9700 and the security checklist:
    /// each finding with its severity, rule and fix. Exits non-zero when a finding is at or
    /// above --fail-on (for CI).
    Doctor {
        /// Print {"findings": [...], "passed": [...]} as JSON.
        #[arg(long)]
        json: bool,
        /// Fail (exit 1) when a finding is this severe or worse.
        #[arg(
            long,
            value_name = "SEVERITY",
            default_value = "high",
            value_parser = ["info", "low", "medium", "high", "critical"]
        )]
        fail_on: String,
    },
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every setting's effective value and where it came from (default, file, env);
    /// a password in the database URL is shown as ***.
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RegistrationTokenCommand {
    /// Create an initial access token, printed once (only its hash is stored): a client sends it
    /// as `Authorization: Bearer …` to POST /register.
    Create {
        /// Lifetime: seconds, or a number with s, m, h or d (default registration.token_ttl_secs).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// How many clients it may register (default registration.token_max_uses).
        #[arg(long, value_name = "N")]
        max_uses: Option<i64>,
        /// Print {"token", "id", "expires_at", "max_uses"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List initial access tokens (ids, uses, expiry; never the tokens).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an initial access token by id; the clients it registered stay.
    Revoke {
        /// The token's id (iat_…).
        id: String,
        /// Print {"id", "revoked": true} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print recent security events, newest last (one line each, or JSON).
    Tail {
        /// Print a JSON array of events.
        #[arg(long)]
        json: bool,
        /// Only events about this user (by login name).
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
        /// Only events about this client_id.
        #[arg(long, value_name = "CLIENT_ID")]
        client: Option<String>,
        /// Only events of this name, e.g. sign_in or refresh_reuse_detected.
        #[arg(long, value_name = "EVENT")]
        event: Option<String>,
        /// Only events since then: unix seconds, or a duration back such as 30m, 1h or 2d.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most this many events (the most recent).
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its client_id (and, for a confidential client, its secret, once).
    Create(CreateClient),
    /// List registered clients.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a registered client; a list given replaces the current one, settings not given
    /// stay. Checked like a registration; instances see it within clients.cache_secs.
    Update(UpdateClient),
    /// Give a confidential client a new secret, shown once; the old one keeps working for the
    /// grace period (clients.secret_rotation_grace_secs, default 24 h).
    RotateSecret {
        /// The client_id.
        client_id: String,
        /// Seconds the old secret keeps working (0: it stops now).
        #[arg(long, value_name = "SECS")]
        grace_secs: Option<i64>,
        /// Print {"client_id", "client_secret", "previous_secret_expires_at"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client with its grants and tokens.
    Delete {
        /// The client_id to delete.
        client_id: String,
        /// Print {"client_id", "deleted": true} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct UpdateClient {
    /// The client_id to change.
    client_id: String,
    /// Name shown on the consent page.
    #[arg(long)]
    name: Option<String>,
    /// An exact redirect URI (repeat for several; replaces the list).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    #[arg(long = "grant-type", value_name = "GT", help = grant_type_help(false))]
    grant_types: Vec<String>,
    /// A scope the client may request (repeatable; replaces the list).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A resource server URI its tokens may be for (repeatable; replaces the list).
    #[arg(long = "audience", value_name = "URI")]
    audiences: Vec<String>,
    /// A browser origin allowed to call /token and /revoke (repeatable; replaces the list).
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Whether users signing in to it need a second factor.
    #[arg(long, value_name = "true|false")]
    require_mfa: Option<bool>,
    /// Whether it is a first-party client whose users are not asked for consent.
    #[arg(long, value_name = "true|false")]
    skip_consent: Option<bool>,
    /// An exact URI RP-initiated logout may return to (repeatable; replaces the list).
    #[arg(
        long = "post-logout-redirect-uri",
        value_name = "URI",
        conflicts_with = "no_post_logout_redirect_uris"
    )]
    post_logout_redirect_uris: Vec<String>,
    /// Remove every post-logout redirect URI.
    #[arg(long)]
    no_post_logout_redirect_uris: bool,
    /// Print the client as JSON.
    #[arg(long)]
    json: bool,
}

/// The `--grant-type` help, listing every grant type the token endpoint implements.
fn grant_type_help(create: bool) -> String {
    let all: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
    let public: Vec<&str> = GrantType::ALL
        .iter()
        .filter(|g| g.allowed_for_public_clients())
        .map(|g| g.as_str())
        .collect();
    format!(
        "Allowed grant type (repeatable{}), one of: {}. Public clients may have only {}.{}",
        if create { "" } else { "; replaces the list" },
        all.join(", "),
        public.join(" and "),
        if create {
            format!(" Default: {}.", public.join(" and "))
        } else {
            String::new()
        }
    )
}

#[derive(Args)]
struct CreateClient {
    /// Name shown on the consent page.
    #[arg(long)]
    name: String,
    /// An exact redirect URI (repeat for several): https, or http on a loopback address.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A confidential client (a server-side app) that authenticates with a secret.
    #[arg(long)]
    confidential: bool,
    #[arg(long = "grant-type", value_name = "GT", help = grant_type_help(true))]
    grant_types: Vec<String>,
    /// A scope the client may request (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A resource server URI its tokens may be for (repeatable; the first is the default `aud`).
    #[arg(long = "audience", value_name = "URI")]
    audiences: Vec<String>,
    /// A browser origin allowed to call /token and /revoke (CORS), e.g. http://127.0.0.1:5173.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Users signing in to this client need a second factor (TOTP); those without one set it
    /// up before consent.
    #[arg(long)]
    require_mfa: bool,
    /// A first-party client: its users are not asked for consent. Only for applications you
    /// operate yourself.
    #[arg(long)]
    skip_consent: bool,
    /// An exact URI RP-initiated logout (/end_session) may return to (repeat for several):
    /// https, or http on a loopback address.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// Print {"client_id": …, "client_secret": …} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        /// The login name.
        #[arg(long)]
        username: String,
        /// A role (repeatable), carried in access tokens as `roles`.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// The full name (OpenID Connect `name`, released with scope `profile`).
        #[arg(long)]
        name: Option<String>,
        /// The e-mail address (OpenID Connect `email`, released with scope `email`).
        #[arg(long)]
        email: Option<String>,
        /// The e-mail address was verified (`email_verified: true`).
        #[arg(long)]
        email_verified: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a user's profile: the name and e-mail address released to clients with scopes
    /// `profile` and `email`. A new or cleared address is unverified unless --email-verified
    /// says otherwise.
    Update {
        /// The login name.
        #[arg(long)]
        username: String,
        /// A new full name.
        #[arg(long)]
        name: Option<String>,
        /// Remove the full name.
        #[arg(long)]
        clear_name: bool,
        /// A new e-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Remove the e-mail address (and its verification).
        #[arg(long)]
        clear_email: bool,
        /// Whether the e-mail address was verified.
        #[arg(long, value_name = "true|false")]
        email_verified: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a user's roles (access tokens issued from now on carry them; none clears them).
    SetRoles {
        /// The login name.
        #[arg(long)]
        username: String,
        /// A role (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: no more logins or refreshes; every grant and session ends now.
    Disable {
        /// The login name.
        #[arg(long)]
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (read from standard input); every grant and session ends now.
    SetPassword {
        /// The login name.
        #[arg(long)]
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set up TOTP for a user and activate it now: prints the secret, the otpauth:// URL (for a
    /// QR code) and ten single-use recovery codes, once. Refused when the user already has TOTP.
    TotpEnroll {
        /// The login name.
        #[arg(long)]
        username: String,
        /// Print {"secret", "otpauth_url", "recovery_codes"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user's TOTP factor and recovery codes (for a lost device); the user signs in with
    /// the password alone again, or sets TOTP up again where it is required.
    TotpReset {
        /// The login name.
        #[arg(long)]
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List users by login name.
    List {
        /// Only users whose name contains this.
        #[arg(long)]
        search: Option<String>,
        /// At most this many (1 to 500).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Skip this many first (the next page).
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled user: they may sign in again.
    Enable {
        /// The login name.
        #[arg(long)]
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a user: their sessions, grants, refresh tokens and second factor end now.
    Delete {
        /// The login name.
        #[arg(long)]
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Clear a user's sign-in failure counts and locks, on every device and factor.
    Unlock {
        /// The login name.
        #[arg(long)]
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List signing keys with their state (published, signing, retired, expired) and dates.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a signing key (keys.algorithm): published at once, signing after keys.publish_delay_secs;
    /// the current key stops signing then and stays published until its tokens have expired.
    Rotate {
        /// Print the new key as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The 19 MiB argon2 buffers are freed once no login waits for a hash (`passwords::WorkingMemory`
/// hands them from one check to the next until then), and jemalloc gives them back to the
/// operating system; glibc's per-thread arenas kept them, and resident memory grew by that much
/// per blocking thread.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Whether the command prints JSON: then nothing but the JSON goes to standard output.
static JSON_OUTPUT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn json_output() -> bool {
    JSON_OUTPUT.get().copied().unwrap_or(false)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = JSON_OUTPUT.set(std::env::args().any(|a| a == "--json"));
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, None | Some(Command::Serve));
    init_tracing(&settings, serving);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let result = match cli.command {
        None | Some(Command::Serve) => serve(settings),
        Some(Command::Migrate { json }) => migrate(&settings, json),
        Some(Command::Client(c)) => client(&settings, c),
        Some(Command::User(u)) => user(&settings, u),
        Some(Command::Keys(k)) => keys(&settings, k),
        Some(Command::Audit(a)) => audit(&settings, a),
        Some(Command::RegistrationToken(c)) => registration_token(&settings, c),
        Some(Command::Config(ConfigCommand::Show { json })) => config_show(&settings, json),
        Some(Command::Doctor { json, fail_on }) => doctor(&settings, json, &fail_on),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(settings: &Settings, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let directives = gatehouse::logging::filter_directives(
        std::env::var("GATEHOUSE_LOG").ok(),
        std::env::var("RUST_LOG").ok(),
        default,
    );
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal, never in a file or a log collector.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr);
    if settings.server.json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Starts the server. In this order, so that a failed first start leaves nothing behind: the
/// database (one attempt, one line naming it when it fails), the port, then the master key, made
/// only for a database that holds no keys yet.
fn serve(settings: Settings) -> anyhow::Result<()> {
    let url = settings.database.url.clone();
    let database = describe_database(&url);
    store::create_sqlite_file(&url)
        .map_err(|e| anyhow::anyhow!("cannot create the database {database}: {e}"))?;
    let mut conn = ConnectionManager::new(store::with_connect_timeout(&url))
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {database}: {}", one_line(&e)))?;
    // The master key the stored signing keys are sealed under, if there are any.
    let sealed_under = store::with_startup_lock(&mut conn, |conn| {
        store::migrate(conn)?;
        Ok(SigningKeyRow::all(conn)?
            .first()
            .and_then(|row| MasterKey::sealed_under(&row.private_jwe)))
    })
    .map_err(|e| anyhow::anyhow!("the database {database}: {e:#}"))?;
    drop(conn);
    let bind = settings.server.bind.clone();
    let listener =
        TcpListener::bind(&bind).map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let metrics = match settings.metrics.bind() {
        Some(addr) => Some((
            addr.to_owned(),
            TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics.bind): {e}"))?,
        )),
        None => None,
    };
    let master = server_master_key(&settings, sealed_under)?;
    let state = AppState::init(settings, master)?;
    tracing::info!(
        version = gatehouse::version::VERSION,
        commit = gatehouse::version::COMMIT,
        bind = %bind,
        issuer = %state.issuer(),
        database = %database,
        "Gatehouse is listening"
    );
    // Two clients at most: whether any but the demo's exists, without reading them all.
    let registered = registry::list_clients(&mut *state.pool.get()?, None, 2, 0)?.items;
    if registered
        .iter()
        .all(|c| c.id.as_str() == registry::DEMO_CLIENT_ID)
    {
        tracing::info!(
            "next: register a client, e.g. gatehouse client create --name \"My SPA\" \
             --redirect-uri http://127.0.0.1:5173/callback --audience https://api.example.com \
             (see the README's quickstart)"
        );
    }
    actix_web::rt::System::new().block_on(async move {
        let state = actix_web::web::Data::new(state);
        let server = gatehouse::server::build(state.clone(), listener)?;
        let Some((addr, listener)) = metrics else {
            return server.await;
        };
        tracing::info!(bind = %addr, "metrics served at /metrics");
        let metrics = gatehouse::server::build_metrics(state, listener)?;
        // Either ending (a signal stops both) ends the process.
        tokio::try_join!(server, metrics).map(|_| ())
    })?;
    Ok(())
}

/// The server's master key: `GATEHOUSE_MASTER_KEY` or `keys/master.key`, which must be the one
/// the database's keys are sealed under; generated only for a database without keys.
fn server_master_key(
    settings: &Settings,
    sealed_under: Option<String>,
) -> anyhow::Result<MasterKey> {
    let dir = &settings.keys.dir;
    let loaded = MasterKey::load(std::env::var("GATEHOUSE_MASTER_KEY").ok(), dir)?;
    match (loaded, sealed_under) {
        (Some(loaded), Some(needed)) if loaded.key.id() != needed => anyhow::bail!(
            "the master key from {} is {}, but this database's keys are sealed under {needed}: \
             use the master key this database was set up with",
            loaded.source,
            loaded.key.id()
        ),
        (Some(loaded), _) => {
            if let Some(warning) = &loaded.warning {
                tracing::warn!("{warning}");
            }
            Ok(loaded.key)
        }
        (None, Some(needed)) => anyhow::bail!(
            "no master key, and this database's keys are sealed under master key {needed}: set \
             GATEHOUSE_MASTER_KEY, or put back {} (a new key could not open them)",
            dir.join("master.key").display()
        ),
        (None, None) => MasterKey::create(dir),
    }
}

/// `gatehouse config show`: reads no database and no key.
fn config_show(settings: &Settings, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(&settings.effective)?);
        return Ok(());
    }
    let width = settings
        .effective
        .iter()
        .map(|e| e.key.len())
        .max()
        .unwrap_or(0);
    for e in &settings.effective {
        let value = match &e.value {
            serde_json::Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        println!("{:width$}  {value}  ({})", e.key, e.source);
    }
    Ok(())
}

/// A driver's message on one line (libpq's span several).
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The database as a person finds it: a SQLite URL's file as an absolute path, a PostgreSQL URL
/// without its password.
fn describe_database(url: &str) -> String {
    match store::Backend::of(url) {
        store::Backend::Postgres => gatehouse::config::redact_password(url),
        store::Backend::Sqlite => {
            let path = std::path::Path::new(store::sqlite_path(url));
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            format!("sqlite://{}", absolute.display())
        }
    }
}

/// A connection with the schema up to date, for an administrative command. It never creates a
/// database: run from the wrong folder, a command would otherwise make an empty one beside the
/// server's. Human output names the database first.
fn connect(settings: &Settings) -> anyhow::Result<AnyConnection> {
    let url = &settings.database.url;
    let database = describe_database(url);
    if !store::database_exists(url) {
        anyhow::bail!(
            "no database at {database}: start the server once (gatehouse serve) or run \
             gatehouse migrate to create it, or point GATEHOUSE_DATABASE_URL (or --config) at \
             the server's database"
        );
    }
    if !json_output() {
        println!("database: {database}");
    }
    let mut conn = ConnectionManager::new(store::with_connect_timeout(url))
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {database}: {}", one_line(&e)))?;
    store::with_startup_lock(&mut conn, store::migrate)?;
    Ok(conn)
}

fn migrate(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let url = &settings.database.url;
    let database = describe_database(url);
    let created = store::create_sqlite_file(url)
        .map_err(|e| anyhow::anyhow!("cannot create the database {database}: {e}"))?;
    let mut conn = ConnectionManager::new(store::with_connect_timeout(url))
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {database}: {}", one_line(&e)))?;
    if !json {
        println!(
            "database: {database}{}",
            if created { " (created)" } else { "" }
        );
    }
    let applied = store::with_startup_lock(&mut conn, store::migrate)?;
    if json {
        println!("{}", serde_json::json!({ "applied": applied }));
    } else if applied.is_empty() {
        println!("database is up to date");
    } else {
        for v in applied {
            println!("applied {v}");
        }
    }
    Ok(())
}

fn client(settings: &Settings, command: ClientCommand) -> anyhow::Result<()> {
    let mut conn = connect(settings)?;
    match command {
        ClientCommand::Create(c) => {
            let req = NewClient {
                name: c.name,
                redirect_uris: c.redirect_uris,
                confidential: c.confidential,
                grant_types: c
                    .grant_types
                    .iter()
                    .map(|g| g.parse::<GrantType>())
                    .collect::<Result<_, _>>()?,
                scopes: c.scopes,
                audiences: c.audiences,
                allowed_origins: c.allowed_origins,
                require_mfa: c.require_mfa,
                skip_consent: c.skip_consent,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
            };
            let registered = registry::create_client(&mut conn, &req, &By::operator(now()))?;
            let secret = registered.secret.as_ref().map(|s| s.expose().to_owned());
            if c.json {
                let mut out = serde_json::json!({"client_id": registered.client.id});
                if let Some(s) = &secret {
                    out["client_secret"] = serde_json::Value::String(s.clone());
                }
                println!("{out}");
            } else {
                println!("client_id:     {}", registered.client.id);
                if let Some(s) = &secret {
                    println!("client_secret: {s}");
                    println!("(the secret is shown only now; Gatehouse stores only its hash)");
                }
            }
        }
        ClientCommand::Update(u) => {
            let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
            let grant_types = if u.grant_types.is_empty() {
                None
            } else {
                Some(
                    u.grant_types
                        .iter()
                        .map(|g| g.parse::<GrantType>())
                        .collect::<Result<_, _>>()?,
                )
            };
            let changes = registry::ClientChanges {
                name: u.name,
                redirect_uris: some(u.redirect_uris),
                grant_types,
                scopes: some(u.scopes),
                audiences: some(u.audiences),
                allowed_origins: some(u.allowed_origins),
                require_mfa: u.require_mfa,
                skip_consent: u.skip_consent,
                post_logout_redirect_uris: if u.no_post_logout_redirect_uris {
                    Some(Vec::new())
                } else {
                    some(u.post_logout_redirect_uris)
                },
            };
            let client =
                registry::update_client(&mut conn, &u.client_id, changes, &By::operator(now()))?;
            if u.json {
                println!("{}", serde_json::to_value(&client).unwrap_or_default());
            } else {
                println!("updated {} ({})", client.id, client.name);
            }
        }
        ClientCommand::RotateSecret {
            client_id,
            grace_secs,
            json,
        } => {
            let grace = grace_secs.unwrap_or(settings.clients.secret_rotation_grace_secs);
            let (client, secret) =
                registry::rotate_secret(&mut conn, &client_id, grace, &By::operator(now()))?;
            let until = client.previous_secret.as_ref().map(|p| p.until);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "client_id": client.id,
                        "client_secret": secret.expose(),
                        "previous_secret_expires_at": until,
                    })
                );
            } else {
                println!("client_id:     {}", client.id);
                println!("client_secret: {}", secret.expose());
                println!("(the secret is shown only now; Gatehouse stores only its hash)");
                match until {
                    Some(t) => {
                        println!("the old secret works until {}", cli_output::when(t, now()))
                    }
                    None => println!("the old secret no longer works"),
                }
            }
        }
        ClientCommand::List { json } => {
            let clients = Client::list(&mut conn)?;
            if json {
                let list: Vec<serde_json::Value> = clients
                    .iter()
                    .map(|c| {
                        let mut v = serde_json::to_value(c).unwrap_or_default();
                        v["confidential"] = serde_json::Value::Bool(c.is_confidential());
                        v
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if clients.is_empty() {
                println!("no clients registered");
            } else {
                print!("{}", client_table(&clients, now()));
            }
        }
        ClientCommand::Delete { client_id, json } => {
            if registry::delete_client(&mut conn, &client_id, &By::operator(now()))? {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"client_id": client_id, "deleted": true})
                    );
                } else {
                    println!("deleted {client_id}");
                }
            } else {
                anyhow::bail!("no client with id {client_id}");
            }
        }
    }
    Ok(())
}

/// `client list` for a person: a header, aligned columns, dates in UTC and from now.
fn client_table(clients: &[Client], now: i64) -> String {
    let mut table = cli_output::Table::new(&[
        "CLIENT_ID",
        "TYPE",
        "NAME",
        "GRANTS",
        "SCOPES",
        "AUDIENCES",
        "REDIRECT_URIS",
        "ORIGINS",
        "CONSENT",
        "POST_LOGOUT_URIS",
        "CREATED",
    ]);
    for c in clients {
        let grants: Vec<String> = c.grant_types.iter().map(ToString::to_string).collect();
        table.row(vec![
            c.id.to_string(),
            if c.is_confidential() {
                "confidential"
            } else {
                "public"
            }
            .to_owned(),
            c.name.clone(),
            cli_output::list(&grants),
            cli_output::list(&c.scopes),
            cli_output::list(&c.audiences),
            cli_output::list(&c.redirect_uris),
            cli_output::list(&c.allowed_origins),
            if c.skip_consent { "skipped" } else { "asked" }.to_owned(),
            cli_output::list(&c.post_logout_redirect_uris),
            cli_output::when(c.created_at, now),
        ]);
    }
    table.render()
}

/// A new password: asked twice without echo at a terminal (refused when the two differ), else
/// read from standard input without one trailing newline (from `echo` or a pipe). Checked
/// against the password policy before any database work.
fn read_new_password(passwords: &Passwords) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| anyhow::anyhow!("reading the password: {e}"))?;
        passwords.check_new(&first).map_err(anyhow::Error::msg)?;
        let again = rpassword::prompt_password("Repeat the password: ")
            .map_err(|e| anyhow::anyhow!("reading the password: {e}"))?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .map_err(|e| anyhow::anyhow!("reading the password from standard input: {e}"))?;
        if password.ends_with('\n') {
            password.pop();
            if password.ends_with('\r') {
                password.pop();
            }
        }
        password
    };
    passwords.check_new(&password).map_err(anyhow::Error::msg)?;
    Ok(password)
}

/// A user as the CLI's JSON shows it (unix seconds, never the password hash).
fn user_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "user_id": user.id,
        "username": user.username,
        "name": user.profile.name,
        "email": user.profile.email,
        "email_verified": user.profile.email_verified,
        "roles": user.roles,
        "disabled": user.disabled_at.is_some(),
        "created_at": user.created_at,
    })
}

/// A user's e-mail address for a table cell: "-" when none, marked when verified.
fn email_cell(profile: &registry::Profile) -> String {
    match (&profile.email, profile.email_verified) {
        (None, _) => "-".to_owned(),
        (Some(email), true) => format!("{email} (verified)"),
        (Some(email), false) => email.clone(),
    }
}

/// `user update`'s options as profile changes: a value and its `--clear-` option exclude each
/// other, and `--email-verified` is `true` or `false`.
fn profile_changes(
    name: Option<String>,
    clear_name: bool,
    email: Option<String>,
    clear_email: bool,
    email_verified: Option<&str>,
) -> anyhow::Result<registry::ProfileChanges> {
    let value_or_clear = |value: Option<String>, clear: bool, option: &str| match (value, clear) {
        (Some(_), true) => Err(anyhow::anyhow!(
            "give --{option} or --clear-{option}, not both"
        )),
        (Some(v), false) => Ok(Some(Some(v))),
        (None, true) => Ok(Some(None)),
        (None, false) => Ok(None),
    };
    let email_verified = match email_verified {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => anyhow::bail!("--email-verified is true or false, not {other:?}"),
    };
    Ok(registry::ProfileChanges {
        name: value_or_clear(name, clear_name, "name")?,
        email: value_or_clear(email, clear_email, "email")?,
        email_verified,
    })
}

/// Prints `value` as JSON, or `text` for a person.
fn report(json: bool, value: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

fn user(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            username,
            roles,
            name,
            email,
            email_verified,
            json,
        } => {
            let passwords = Passwords::new(&settings.passwords)?;
            registry::check_username(&username)?;
            let profile = registry::check_profile(&registry::Profile {
                name,
                email,
                email_verified,
            })?;
            let password = read_new_password(&passwords)?;
            let mut conn = connect(settings)?;
            let user = registry::create_user(
                &mut conn,
                &passwords,
                &username,
                &password,
                &roles,
                &profile,
                &By::operator(now()),
            )?;
            report(json, user_json(&user), || format!("user_id: {}", user.id));
        }
        UserCommand::Update {
            username,
            name,
            clear_name,
            email,
            clear_email,
            email_verified,
            json,
        } => {
            let changes = profile_changes(
                name,
                clear_name,
                email,
                clear_email,
                email_verified.as_deref(),
            )?;
            let mut conn = connect(settings)?;
            let user = registry::set_profile(&mut conn, &username, &changes, &By::operator(now()))?;
            report(json, user_json(&user), || {
                format!(
                    "{}: name {}, e-mail {}",
                    user.username,
                    user.profile.name.as_deref().unwrap_or("-"),
                    email_cell(&user.profile)
                )
            });
        }
        UserCommand::SetRoles {
            username,
            roles,
            json,
        } => {
            let mut conn = connect(settings)?;
            let user = registry::set_roles(&mut conn, &username, &roles, &By::operator(now()))?;
            report(json, user_json(&user), || {
                format!(
                    "{} now has roles: [{}]",
                    user.username,
                    user.roles.join(", ")
                )
            });
        }
        UserCommand::Disable { username, json } => {
            let mut conn = connect(settings)?;
            let user = registry::disable_user(&mut conn, &username, &By::operator(now()))?;
            report(json, user_json(&user), || {
                format!(
                    "disabled {} ({}); its sessions and tokens are revoked",
                    user.username, user.id
                )
            });
        }
        UserCommand::TotpEnroll { username, json } => {
            let master = existing_master_key(settings)?;
            let mut conn = connect(settings)?;
            let user = registry::find_user(&mut conn, &username)?;
            let Some(enrolled) = gatehouse::flows::mfa::enrol_now(
                &mut conn,
                &master,
                &settings.mfa.issuer_name,
                &user.id,
                &user.username,
                now(),
            )?
            else {
                anyhow::bail!(
                    "{} already has TOTP; remove it first with: gatehouse user totp-reset --username {}",
                    user.username,
                    user.username
                );
            };
            let codes: Vec<String> = enrolled
                .recovery_codes
                .iter()
                .map(|c| c.display())
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "secret": enrolled.enrolment.secret,
                        "otpauth_url": enrolled.enrolment.otpauth_url,
                        "recovery_codes": codes,
                    })
                );
            } else {
                println!("TOTP is on for {}.", user.username);
                println!("secret:      {}", enrolled.enrolment.secret);
                println!("otpauth URL: {}", enrolled.enrolment.otpauth_url);
                println!("recovery codes (each works once; shown only now):");
                for c in &codes {
                    println!("  {c}");
                }
            }
        }
        UserCommand::TotpReset { username, json } => {
            let mut conn = connect(settings)?;
            let user = registry::find_user(&mut conn, &username)?;
            let removed = gatehouse::flows::mfa::reset(
                &mut conn,
                &user.id,
                gatehouse::audit::Actor::Operator,
                now(),
            )?;
            let value = serde_json::json!({
                "user_id": user.id,
                "username": user.username,
                "removed": removed,
            });
            report(json, value, || {
                if removed {
                    format!("TOTP and recovery codes removed for {}", user.username)
                } else {
                    format!("{} has no TOTP; nothing to remove", user.username)
                }
            });
        }
        UserCommand::List {
            search,
            limit,
            offset,
            json,
        } => {
            let mut conn = connect(settings)?;
            let users = registry::list_users(&mut conn, search.as_deref(), limit, offset)?.items;
            if json {
                let list: Vec<serde_json::Value> = users.iter().map(user_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else if users.is_empty() {
                println!("no users");
            } else {
                let now = now();
                let mut table = cli_output::Table::new(&[
                    "USER_ID", "USERNAME", "NAME", "EMAIL", "ROLES", "STATE", "CREATED",
                ]);
                for u in &users {
                    table.row(vec![
                        u.id.clone(),
                        u.username.clone(),
                        u.profile.name.clone().unwrap_or_else(|| "-".to_owned()),
                        email_cell(&u.profile),
                        cli_output::list(&u.roles),
                        if u.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        }
                        .to_owned(),
                        cli_output::when(u.created_at, now),
                    ]);
                }
                print!("{}", table.render());
            }
        }
        UserCommand::Enable { username, json } => {
            let mut conn = connect(settings)?;
            let user = registry::enable_user(&mut conn, &username, &By::operator(now()))?;
            report(json, user_json(&user), || {
                format!(
                    "enabled {} ({}); they may sign in again",
                    user.username, user.id
                )
            });
        }
        UserCommand::Delete { username, json } => {
            let mut conn = connect(settings)?;
            let user = registry::delete_user(&mut conn, &username, &By::operator(now()))?;
            let value = serde_json::json!({
                "user_id": user.id,
                "username": user.username,
                "deleted": true,
            });
            report(json, value, || {
                format!(
                    "deleted {} ({}); its sessions and tokens are revoked",
                    user.username, user.id
                )
            });
        }
        UserCommand::Unlock { username, json } => {
            let mut conn = connect(settings)?;
            let (user, cleared) =
                registry::unlock_user(&mut conn, &username, &By::operator(now()))?;
            let value = serde_json::json!({"user_id": user.id, "username": user.username, "cleared": cleared});
            report(json, value, || {
                format!(
                    "unlocked {}: {cleared} failure counter(s) cleared; it may sign in again from any device",
                    user.username
                )
            });
        }
        UserCommand::SetPassword { username, json } => {
            let passwords = Passwords::new(&settings.passwords)?;
            let password = read_new_password(&passwords)?;
            let mut conn = connect(settings)?;
            let user = registry::set_password(
                &mut conn,
                &passwords,
                &username,
                &password,
                &By::operator(now()),
            )?;
            report(json, user_json(&user), || {
                format!(
                    "password changed for {}; its sessions and tokens are revoked",
                    user.username
                )
            });
        }
    }
    Ok(())
}

fn keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let json = match command {
        KeysCommand::List { json } => json,
        KeysCommand::Rotate { json } => return rotate_keys(settings, json),
    };
    let mut conn = connect(settings)?;
    let rows = SigningKeyRow::all(&mut conn)?;
    let infos = KeyInfo::list(&rows, now());
    if json {
        println!("{}", serde_json::to_string(&infos)?);
    } else if infos.is_empty() {
        println!("no signing keys yet: the server creates one on first start");
    } else {
        let now = now();
        let mut table = cli_output::Table::new(&[
            "KID",
            "ALG",
            "STATE",
            "CREATED",
            "SIGNS FROM",
            "RETIRES",
            "EXPIRES",
        ]);
        for k in infos {
            table.row(vec![
                k.kid,
                k.alg,
                k.state.to_owned(),
                cli_output::when(k.created_at, now),
                cli_output::when(k.activate_at, now),
                cli_output::when_opt(k.retire_at, now),
                cli_output::when_opt(k.expires_at, now),
            ]);
        }
        print!("{}", table.render());
    }
    Ok(())
}

fn audit(settings: &Settings, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Tail {
        json,
        user,
        client,
        event,
        since,
        limit,
    } = command;
    if !(1..=10_000).contains(&limit) {
        anyhow::bail!("--limit must be between 1 and 10000");
    }
    if let Some(name) = &event {
        if AuditEvent::parse(name).is_none() {
            let names: Vec<&str> = AuditEvent::ALL.iter().map(|e| e.as_str()).collect();
            anyhow::bail!("unknown event {name:?}: use one of {}", names.join(", "));
        }
    }
    let since = match since {
        Some(text) => Some(audit::parse_since(&text, now()).ok_or_else(|| {
            anyhow::anyhow!("--since {text:?} is neither unix seconds nor a duration like 1h or 2d")
        })?),
        None => None,
    };
    let mut conn = connect(settings)?;
    let user_id = match user {
        Some(name) => Some(
            User::find_by_username(&mut conn, &name)?
                .ok_or_else(|| anyhow::anyhow!("no user named {name:?}"))?
                .id,
        ),
        None => None,
    };
    let filter = store::audit::Filter {
        user_id,
        client_id: client,
        event,
        since,
        limit,
        ..Default::default()
    };
    let rows = store::audit::recent(&mut conn, &filter)?;
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no audit events");
    }
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    for r in rows {
        println!(
            "{}  {:22}  {:7}  actor={}  user={}  client={}  network={}  {}",
            audit::format_utc(r.at),
            r.event,
            r.outcome,
            r.actor,
            or_dash(&r.user_id),
            or_dash(&r.client_id),
            or_dash(&r.network),
            r.detail.unwrap_or_default(),
        );
    }
    Ok(())
}

/// `gatehouse keys rotate`: running instances pick the new key up at their next reload.
fn rotate_keys(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let mut conn = connect(settings)?;
    let master = existing_master_key(settings)?;
    let now = now();
    let info = gatehouse::flows::admin::rotate_key(
        &mut conn,
        &master,
        settings,
        gatehouse::audit::Actor::Operator,
        now,
    )?;
    if json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        println!(
            "published {} ({}): it signs from {}; the key signing now stops then and stays \
             published until its tokens have expired",
            info.kid,
            info.alg,
            cli_output::when(info.activate_at, now),
        );
    }
    Ok(())
}

/// The server's master key. Unlike `serve`, never creates one: a key sealed under a new master
/// key could not be read by the server.
fn existing_master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    let file = settings.keys.dir.join("master.key");
    match MasterKey::load(
        std::env::var("GATEHOUSE_MASTER_KEY").ok(),
        &settings.keys.dir,
    )? {
        Some(loaded) => Ok(loaded.key),
        None => anyhow::bail!(
            "no master key: set GATEHOUSE_MASTER_KEY as for the server, or keys.dir to where its \
             master.key is (looked for {})",
            file.display()
        ),
    }
}

fn registration_token(
    settings: &Settings,
    command: RegistrationTokenCommand,
) -> anyhow::Result<()> {
    use gatehouse::flows::registration as dcr;
    let mut conn = connect(settings)?;
    match command {
        RegistrationTokenCommand::Create {
            expires_in,
            max_uses,
            json,
        } => {
            let ttl = match expires_in {
                Some(text) => dcr::parse_duration(&text).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--expires-in {text:?} is not a duration: use seconds or e.g. 30m, 24h, 7d"
                    )
                })?,
                None => settings.registration.token_ttl_secs,
            };
            let max_uses = max_uses.unwrap_or(settings.registration.token_max_uses);
            let (row, token) =
                dcr::create_initial_token(&mut conn, ttl, max_uses, &By::operator(now()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "token": token.expose(),
                        "id": row.id,
                        "expires_at": row.expires_at,
                        "max_uses": row.max_uses,
                    })
                );
            } else {
                println!("token:      {}", token.expose());
                println!("id:         {}", row.id);
                println!("expires_at: {}", audit::format_utc(row.expires_at));
                println!("max_uses:   {}", row.max_uses);
                println!("(the token is shown only now; Gatehouse stores only its hash)");
            }
            if settings.registration.mode == gatehouse::config::RegistrationMode::Off {
                eprintln!(
                    "note: registration.mode is off: POST /register is not served until it is \
                     token or open"
                );
            }
        }
        RegistrationTokenCommand::List { json } => {
            let tokens = dcr::list_initial_tokens(&mut conn)?;
            if json {
                println!("{}", serde_json::to_string(&tokens)?);
            } else if tokens.is_empty() {
                println!("no initial access tokens");
            } else {
                let now = now();
                for t in tokens {
                    println!(
                        "{}  uses={}/{}  expires={}{}",
                        t.id,
                        t.uses,
                        t.max_uses,
                        cli_output::when(t.expires_at, now),
                        if t.expires_at <= now { "  expired" } else { "" }
                    );
                }
            }
        }
        RegistrationTokenCommand::Revoke { id, json } => {
            dcr::revoke_initial_token(&mut conn, &id, &By::operator(now()))?;
            if json {
                println!("{}", serde_json::json!({"id": id, "revoked": true}));
            } else {
                println!("revoked {id}");
            }
        }
    }
    Ok(())
}

/// `gatehouse doctor`: reads the database (never creating one), runs `gatehouse::doctor`'s
/// checks, prints the findings grouped by severity, and fails at `--fail-on` or worse.
fn doctor(settings: &Settings, json: bool, fail_on: &str) -> anyhow::Result<()> {
    use gatehouse::doctor::{self as checks, Severity};
    let fail_on = Severity::parse(fail_on).ok_or_else(|| {
        anyhow::anyhow!("--fail-on {fail_on:?}: use info, low, medium, high or critical")
    })?;
    // `connect` refuses a missing database: doctor reads an existing one, never creates it.
    let mut conn = connect(settings)?;
    let observed = gatehouse::flows::doctor::observe(&mut conn, settings, now())?;
    let report = checks::run(settings, &observed);
    let failing = report.at_or_above(fail_on);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "findings": report.findings,
                "passed": report.passed,
                "fail_on": fail_on,
                "failing": failing,
            })
        );
    } else {
        print!("{}", doctor_text(&report));
    }
    if failing > 0 {
        anyhow::bail!(
            "doctor: {failing} finding(s) at or above {}",
            fail_on.as_str()
        );
    }
    Ok(())
}

/// The doctor's report for a person: a summary line, findings grouped by severity (worst
/// first), then the checks that passed.
fn doctor_text(report: &gatehouse::doctor::Report) -> String {
    use gatehouse::doctor::Severity;
    use std::fmt::Write as _;
    let mut out = String::new();
    let counts: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter_map(|s| {
            let n = report.findings.iter().filter(|f| f.severity == *s).count();
            (n > 0).then(|| format!("{n} {}", s.as_str()))
        })
        .collect();
    let _ = writeln!(
        out,
        "Gatehouse doctor: {} finding(s){}; {} check(s) passed",
        report.findings.len(),
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        },
        report.passed.len()
    );
    for severity in Severity::ALL.iter().rev() {
        let group: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.severity == *severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", severity.as_str().to_uppercase());
        for f in group {
            let _ = writeln!(out, "  [{}] {}", f.check, f.message);
            let _ = writeln!(out, "      rule: {}", f.rule);
            let _ = writeln!(out, "      fix:  {}", f.fix);
        }
    }
    if !report.passed.is_empty() {
        let _ = writeln!(out, "\nPASSED");
        for p in &report.passed {
            let _ = writeln!(out, "  ok  [{}] {} ({})", p.check, p.summary, p.rule);
        }
    }
    out
}
