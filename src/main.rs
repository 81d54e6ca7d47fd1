//! The `gatehouse` command: the server and its administration.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

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
    Migrate,
    /// Register, list and delete clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Create users, change their roles and passwords, disable and unlock them.
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
    /// Allowed grant type (repeatable; replaces the list): authorization_code, refresh_token, and
    /// for confidential clients password and client_credentials.
    #[arg(long = "grant-type", value_name = "GT")]
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
    /// Print the client as JSON.
    #[arg(long)]
    json: bool,
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
    /// Allowed grant type (repeatable): authorization_code, refresh_token, and for confidential
    /// clients password and client_credentials. Default: authorization_code and refresh_token.
    #[arg(long = "grant-type", value_name = "GT")]
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
    },
    /// Disable a user: no more logins or refreshes; every grant and session ends now.
    Disable {
        /// The login name.
        #[arg(long)]
        username: String,
    },
    /// Set a new password (read from standard input); every grant and session ends now.
    SetPassword {
        /// The login name.
        #[arg(long)]
        username: String,
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
    },
    /// Delete a user: their sessions, grants, refresh tokens and second factor end now.
    Delete {
        /// The login name.
        #[arg(long)]
        username: String,
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

/// jemalloc returns the 19 MiB argon2 buffers to the operating system after each login; glibc's
/// per-thread arenas kept them, and resident memory grew by that much per blocking thread.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, None | Some(Command::Serve));
    init_tracing(&settings, serving);
    let result = match cli.command {
        None | Some(Command::Serve) => serve(settings),
        Some(Command::Migrate) => migrate(&settings),
        Some(Command::Client(c)) => client(&settings, c),
        Some(Command::User(u)) => user(&settings, u),
        Some(Command::Keys(k)) => keys(&settings, k),
        Some(Command::Audit(a)) => audit(&settings, a),
        Some(Command::RegistrationToken(c)) => registration_token(&settings, c),
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

fn master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    MasterKey::load_or_create(
        std::env::var("GATEHOUSE_MASTER_KEY").ok(),
        &settings.keys.dir,
    )
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let master = master_key(&settings)?;
    let bind = settings.server.bind.clone();
    let state = AppState::init(settings, master)?;
    let listener =
        TcpListener::bind(&bind).map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let metrics = match state.settings.metrics.bind() {
        Some(addr) => Some((
            addr.to_owned(),
            TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (metrics.bind): {e}"))?,
        )),
        None => None,
    };
    tracing::info!(bind = %bind, issuer = %state.issuer(), version = gatehouse::version::VERSION, commit = gatehouse::version::COMMIT, "Gatehouse is listening");
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

/// A connection with the schema up to date (every command may be the first one run).
fn connect(settings: &Settings) -> anyhow::Result<AnyConnection> {
    let url = &settings.database.url;
    let mut conn = ConnectionManager::new(url.clone())
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", redact(url)))?;
    store::with_startup_lock(&mut conn, store::migrate)?;
    Ok(conn)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = ConnectionManager::new(settings.database.url.clone())
        .connect()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open the database {}: {e}",
                redact(&settings.database.url)
            )
        })?;
    let applied = store::with_startup_lock(&mut conn, store::migrate)?;
    if applied.is_empty() {
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
                        println!("the old secret works until {t} (unix time), {grace} s from now")
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
                for c in clients {
                    println!(
                        "{}  {}  {}  grants={}  redirect_uris={}  audiences={}",
                        c.id,
                        if c.is_confidential() {
                            "confidential"
                        } else {
                            "public"
                        },
                        c.name,
                        c.grant_types
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                        c.redirect_uris.join(","),
                        c.audiences.join(","),
                    );
                }
            }
        }
        ClientCommand::Delete { client_id } => {
            if registry::delete_client(&mut conn, &client_id, &By::operator(now()))? {
                println!("deleted {client_id}");
            } else {
                anyhow::bail!("no client with id {client_id}");
            }
        }
    }
    Ok(())
}

/// The password on standard input, without one trailing newline (from `echo` or a terminal).
fn read_password() -> anyhow::Result<String> {
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
    Ok(password)
}

fn user(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let (username, roles, json) = match command {
        UserCommand::Create {
            username,
            roles,
            json,
        } => (username, roles, json),
        UserCommand::SetRoles { username, roles } => {
            let mut conn = connect(settings)?;
            let user = registry::set_roles(&mut conn, &username, &roles, &By::operator(now()))?;
            println!(
                "{} now has roles: [{}]",
                user.username,
                user.roles.join(", ")
            );
            return Ok(());
        }
        UserCommand::Disable { username } => {
            let mut conn = connect(settings)?;
            let user = registry::disable_user(&mut conn, &username, &By::operator(now()))?;
            println!(
                "disabled {} ({}); its sessions and tokens are revoked",
                user.username, user.id
            );
            return Ok(());
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
            return Ok(());
        }
        UserCommand::TotpReset { username } => {
            let mut conn = connect(settings)?;
            let user = registry::find_user(&mut conn, &username)?;
            if gatehouse::flows::mfa::reset(
                &mut conn,
                &user.id,
                gatehouse::audit::Actor::Operator,
                now(),
            )? {
                println!("TOTP and recovery codes removed for {}", user.username);
            } else {
                println!("{} has no TOTP; nothing to remove", user.username);
            }
            return Ok(());
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
                let list: Vec<serde_json::Value> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "user_id": u.id,
                            "username": u.username,
                            "roles": u.roles,
                            "disabled": u.disabled_at.is_some(),
                            "created_at": u.created_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if users.is_empty() {
                println!("no users");
            } else {
                for u in &users {
                    println!(
                        "{}  {}  roles=[{}]{}",
                        u.id,
                        u.username,
                        u.roles.join(","),
                        if u.disabled_at.is_some() {
                            "  disabled"
                        } else {
                            ""
                        }
                    );
                }
            }
            return Ok(());
        }
        UserCommand::Enable { username } => {
            let mut conn = connect(settings)?;
            let user = registry::enable_user(&mut conn, &username, &By::operator(now()))?;
            println!(
                "enabled {} ({}); they may sign in again",
                user.username, user.id
            );
            return Ok(());
        }
        UserCommand::Delete { username } => {
            let mut conn = connect(settings)?;
            let user = registry::delete_user(&mut conn, &username, &By::operator(now()))?;
            println!(
                "deleted {} ({}); its sessions and tokens are revoked",
                user.username, user.id
            );
            return Ok(());
        }
        UserCommand::Unlock { username, json } => {
            let mut conn = connect(settings)?;
            let (user, cleared) =
                registry::unlock_user(&mut conn, &username, &By::operator(now()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"user_id": user.id, "username": user.username, "cleared": cleared})
                );
            } else {
                println!(
                    "unlocked {}: {cleared} failure counter(s) cleared; it may sign in again from any device",
                    user.username
                );
            }
            return Ok(());
        }
        UserCommand::SetPassword { username } => {
            let password = read_password()?;
            let passwords = Passwords::new(&settings.passwords)?;
            let mut conn = connect(settings)?;
            let user = registry::set_password(
                &mut conn,
                &passwords,
                &username,
                &password,
                &By::operator(now()),
            )?;
            println!(
                "password changed for {}; its sessions and tokens are revoked",
                user.username
            );
            return Ok(());
        }
    };
    let password = read_password()?;
    let passwords = Passwords::new(&settings.passwords)?;
    let mut conn = connect(settings)?;
    let user = registry::create_user(
        &mut conn,
        &passwords,
        &username,
        &password,
        &roles,
        &By::operator(now()),
    )?;
    if json {
        println!(
            "{}",
            serde_json::json!({"user_id": user.id, "username": user.username, "roles": user.roles})
        );
    } else {
        println!("user_id: {}", user.id);
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
        let or_never = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
        for k in infos {
            println!(
                "{}  {}  {:9}  created={}  activates={}  retires={}  expires={}",
                k.kid,
                k.alg,
                k.state,
                k.created_at,
                k.activate_at,
                or_never(k.retire_at),
                or_never(k.expires_at)
            );
        }
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
            "published {} ({}): it signs from {} (in {} s); the key signing now stops then and \
             stays published until its tokens have expired",
            info.kid,
            info.alg,
            info.activate_at,
            info.activate_at - now
        );
    }
    Ok(())
}

/// The server's master key. Unlike `serve`, never creates one: a key sealed under a new master
/// key could not be read by the server.
fn existing_master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    let from_env = std::env::var("GATEHOUSE_MASTER_KEY").is_ok_and(|v| !v.trim().is_empty());
    let file = settings.keys.dir.join("master.key");
    if !from_env && !file.exists() {
        anyhow::bail!(
            "no master key: set GATEHOUSE_MASTER_KEY as for the server, or keys.dir to where its \
             master.key is (looked for {})",
            file.display()
        );
    }
    master_key(settings)
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
                        audit::format_utc(t.expires_at),
                        if t.expires_at <= now { "  expired" } else { "" }
                    );
                }
            }
        }
        RegistrationTokenCommand::Revoke { id } => {
            dcr::revoke_initial_token(&mut conn, &id, &By::operator(now()))?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
