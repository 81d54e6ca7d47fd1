//! The container deployment (docker-compose.yml, deploy/nginx.conf, Dockerfile) agrees with what
//! Gatehouse and the example resource server read. No container engine is needed: the files are
//! parsed, and the gatehouse service's environment is fed to `Settings::load_from`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gatehouse::config::Settings;
use gatehouse::keys::MasterKey;
use yaml_rust2::{Yaml, YamlLoader};

/// Environment variables Gatehouse reads besides `GATEHOUSE_SECTION__KEY`: the shortcuts of
/// `config.rs` (each checked below against the setting it overrides), the master key and log
/// filter read by `main.rs`, and the configuration file.
const SHORTCUTS: [&str; 4] = [
    "GATEHOUSE_DATABASE_URL",
    "GATEHOUSE_ISSUER",
    "GATEHOUSE_BIND",
    "GATEHOUSE_KEYS_DIR",
];
const OTHER_VARIABLES: [&str; 3] = ["GATEHOUSE_MASTER_KEY", "GATEHOUSE_CONFIG", "GATEHOUSE_LOG"];

/// What the operator exports before `docker compose up` (README): plausible values.
const POSTGRES_PASSWORD: &str = "4f9c2a7e1b3d5f608a9c";
const MASTER_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn host_env(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("POSTGRES_PASSWORD", POSTGRES_PASSWORD),
        ("GATEHOUSE_MASTER_KEY", MASTER_KEY),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.retain(|_, v| !v.is_empty());
    env
}

// ---- docker-compose.yml ---------------------------------------------------------------------

fn compose() -> Yaml {
    let docs = YamlLoader::load_from_str(&read("docker-compose.yml")).expect("valid YAML");
    docs.into_iter().next().expect("one YAML document")
}

fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
    let service = &compose["services"][name];
    assert!(
        service.as_hash().is_some(),
        "docker-compose.yml has no service {name:?}"
    );
    service
}

fn scalar(value: &Yaml) -> String {
    match value {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A service's `environment` (map or `KEY=value` list form), placeholders not yet expanded.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(map) => map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Yaml::Array(items) => items
            .iter()
            .map(|item| {
                let item = scalar(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Yaml::BadValue => BTreeMap::new(),
        other => panic!("environment is neither a map nor a list: {other:?}"),
    }
}

/// Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`. Err is compose's refusal.
fn interpolate(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let inner = &after[..end];
            rest = &after[end + 1..];
            let name_len = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(name_len);
            let value = env.get(name).map(String::as_str);
            let set_nonempty = value.is_some_and(|v| !v.is_empty());
            let expanded = if op.is_empty() {
                value.unwrap_or("").to_owned()
            } else if let Some(default) = op.strip_prefix(":-") {
                if set_nonempty {
                    value.unwrap_or("")
                } else {
                    default
                }
                .to_owned()
            } else if let Some(default) = op.strip_prefix('-') {
                value.unwrap_or(default).to_owned()
            } else if let Some(message) = op.strip_prefix(":?") {
                if !set_nonempty {
                    return Err(format!("{name}: {message}"));
                }
                value.unwrap_or("").to_owned()
            } else if let Some(message) = op.strip_prefix('?') {
                value
                    .ok_or_else(|| format!("{name}: {message}"))?
                    .to_owned()
            } else if let Some(alt) = op.strip_prefix(":+") {
                if set_nonempty { alt } else { "" }.to_owned()
            } else if let Some(alt) = op.strip_prefix('+') {
                if value.is_some() { alt } else { "" }.to_owned()
            } else {
                return Err(format!("unsupported substitution ${{{inner}}}"));
            };
            out.push_str(&expanded);
        } else {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push_str(env.get(&rest[..name_len]).map_or("", String::as_str));
            rest = &rest[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expanded_environment(
    service: &Yaml,
    host: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    environment(service)
        .into_iter()
        .map(|(k, v)| Ok((k, interpolate(&v, host)?)))
        .collect()
}

fn port_of(host_port: &str) -> u16 {
    let (_, port) = host_port
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{host_port:?} is not host:port"));
    port.parse()
        .unwrap_or_else(|e| panic!("{host_port:?}: bad port: {e}"))
}

/// The service's `ports` as (published, container) pairs.
fn published_ports(service: &Yaml) -> Vec<(u16, u16)> {
    let Some(ports) = service["ports"].as_vec() else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|p| {
            let p = scalar(p);
            let p = p.split('/').next().unwrap_or(&p).to_owned();
            let parts: Vec<&str> = p.split(':').collect();
            let container = parts.last().expect("a port").parse().expect("a number");
            let published = if parts.len() >= 2 {
                parts[parts.len() - 2].parse().expect("a number")
            } else {
                container
            };
            (published, container)
        })
        .collect()
}

fn command(service: &Yaml) -> Vec<String> {
    match &service["command"] {
        Yaml::Array(items) => items.iter().map(scalar).collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// `section.key` for every setting in config/default.toml (the built-in defaults).
fn documented_settings() -> BTreeSet<String> {
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in read("config/default.toml").lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
        } else if let Some((key, _)) = line.split_once('=') {
            if !line.starts_with('#') && !section.is_empty() {
                keys.insert(format!("{section}.{}", key.trim()));
            }
        }
    }
    assert!(
        keys.contains("server.bind"),
        "default.toml parsed: {keys:?}"
    );
    keys
}

fn load_gatehouse(env: &BTreeMap<String, String>) -> Settings {
    let gatehouse_only = env
        .iter()
        .filter(|(k, _)| k.starts_with("GATEHOUSE_"))
        .map(|(k, v)| (k.clone(), v.clone()));
    Settings::load_from(None, gatehouse_only)
        .unwrap_or_else(|e| panic!("Gatehouse refuses the compose environment: {e:#}\n{env:?}"))
}

#[test]
fn compose_has_the_four_services_and_only_nginx_publishes_ports() {
    let compose = compose();
    let names: BTreeSet<String> = compose["services"]
        .as_hash()
        .expect("a services map")
        .keys()
        .map(scalar)
        .collect();
    for name in ["gatehouse", "resource-server", "postgres", "nginx"] {
        assert!(names.contains(name), "service {name} missing: {names:?}");
    }
    for name in &names {
        let ports = published_ports(service(&compose, name));
        if name == "nginx" {
            assert!(!ports.is_empty(), "nginx publishes no port");
        } else {
            assert!(
                ports.is_empty(),
                "{name} publishes {ports:?}: only nginx may"
            );
        }
    }
    // The resource server runs from the image built for Gatehouse.
    let gatehouse = service(&compose, "gatehouse");
    let resource_server = service(&compose, "resource-server");
    assert_eq!(scalar(&gatehouse["build"]), ".");
    assert_eq!(
        scalar(&gatehouse["image"]),
        scalar(&resource_server["image"])
    );
    assert_eq!(command(gatehouse), ["gatehouse", "serve"]);
}

#[test]
fn gatehouse_environment_is_exactly_what_gatehouse_reads() {
    let compose = compose();
    let gatehouse = service(&compose, "gatehouse");
    let documented = documented_settings();
    for name in environment(gatehouse).keys() {
        let Some(rest) = name.strip_prefix("GATEHOUSE_") else {
            continue;
        };
        if SHORTCUTS.contains(&name.as_str()) || OTHER_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let (section, key) = rest
            .split_once("__")
            .unwrap_or_else(|| panic!("{name}: Gatehouse reads no such variable"));
        let setting = format!("{}.{}", section.to_lowercase(), key.to_lowercase());
        assert!(
            documented.contains(&setting),
            "{name}: no setting {setting} in config/default.toml"
        );
    }

    for host in [
        host_env(&[]),
        host_env(&[("GATEHOUSE_ISSUER", "https://auth.example.com")]),
    ] {
        let env = expanded_environment(gatehouse, &host).expect("compose interpolates");
        let settings = load_gatehouse(&env);
        // Each shortcut lands in the setting it names.
        let shortcuts = [
            ("GATEHOUSE_DATABASE_URL", settings.database.url.clone()),
            ("GATEHOUSE_ISSUER", settings.server.issuer.clone()),
            ("GATEHOUSE_BIND", settings.server.bind.clone()),
            (
                "GATEHOUSE_KEYS_DIR",
                settings.keys.dir.display().to_string(),
            ),
        ];
        for (var, setting) in shortcuts {
            if let Some(value) = env.get(var) {
                assert_eq!(&setting, value, "{var}");
            }
        }
        let expected = host.get("GATEHOUSE_ISSUER").map(String::as_str);
        assert_eq!(
            settings.server.issuer,
            expected.unwrap_or("http://localhost:8080")
        );
        assert!(
            settings.database.url.starts_with("postgres://"),
            "the compose setup runs on PostgreSQL"
        );
        let bind = settings.server.bind.clone();
        assert!(
            bind.starts_with("0.0.0.0:"),
            "inside a container Gatehouse must listen on every interface, not {bind}"
        );
        MasterKey::parse(&env["GATEHOUSE_MASTER_KEY"]).expect("the master key is accepted");
    }
}

#[test]
fn master_key_and_database_password_must_be_given() {
    let compose = compose();
    let gatehouse = service(&compose, "gatehouse");
    let postgres = service(&compose, "postgres");
    let raw = environment(gatehouse);
    assert!(
        raw["GATEHOUSE_MASTER_KEY"].starts_with("${GATEHOUSE_MASTER_KEY:?"),
        "GATEHOUSE_MASTER_KEY must use the required form ${{GATEHOUSE_MASTER_KEY:?message}}: {}",
        raw["GATEHOUSE_MASTER_KEY"]
    );
    let mut without_key = host_env(&[]);
    without_key.remove("GATEHOUSE_MASTER_KEY");
    expanded_environment(gatehouse, &without_key).expect_err("compose refuses to start without");
    let mut without_password = host_env(&[]);
    without_password.remove("POSTGRES_PASSWORD");
    expanded_environment(postgres, &without_password).expect_err("no database password");

    // The database URL names the postgres service and the user, database and password it creates.
    let host = host_env(&[]);
    let gatehouse_env = expanded_environment(gatehouse, &host).expect("interpolates");
    let postgres_env = expanded_environment(postgres, &host).expect("interpolates");
    let url = url::Url::parse(&gatehouse_env["GATEHOUSE_DATABASE_URL"]).expect("a URL");
    assert_eq!(url.scheme(), "postgres");
    assert_eq!(url.host_str(), Some("postgres"));
    assert_eq!(url.port(), Some(5432));
    assert_eq!(url.username(), postgres_env["POSTGRES_USER"]);
    assert_eq!(
        url.password(),
        Some(postgres_env["POSTGRES_PASSWORD"].as_str())
    );
    assert_eq!(url.path(), format!("/{}", postgres_env["POSTGRES_DB"]));

    // Gatehouse starts once PostgreSQL answers, and the data outlives the container.
    assert_eq!(
        scalar(&gatehouse["depends_on"]["postgres"]["condition"]),
        "service_healthy"
    );
    let healthcheck: Vec<String> = postgres["healthcheck"]["test"]
        .as_vec()
        .expect("a healthcheck")
        .iter()
        .map(scalar)
        .collect();
    assert!(
        healthcheck.iter().any(|part| part.contains("pg_isready")),
        "{healthcheck:?}"
    );
    let volume = scalar(&postgres["volumes"][0]);
    let (name, target) = volume.split_once(':').expect("name:path");
    assert_eq!(target, "/var/lib/postgresql/data");
    assert!(
        compose["volumes"]
            .as_hash()
            .is_some_and(|v| v.contains_key(&Yaml::String(name.to_owned()))),
        "volume {name} is not declared"
    );
}

#[test]
fn resource_server_trusts_the_gatehouse_issuer() {
    let compose = compose();
    let [gatehouse, resource_server] =
        ["gatehouse", "resource-server"].map(|s| service(&compose, s));
    let raw = environment(resource_server);
    for name in ["RS_BIND", "RS_ISSUER", "RS_AUDIENCE"] {
        assert!(raw.contains_key(name), "resource-server needs {name}");
    }
    assert_eq!(
        raw["RS_ISSUER"],
        environment(gatehouse)["GATEHOUSE_ISSUER"],
        "RS_ISSUER must be written exactly as GATEHOUSE_ISSUER"
    );
    assert_eq!(command(resource_server), ["resource_server"]);
    for host in [
        host_env(&[]),
        host_env(&[
            ("GATEHOUSE_ISSUER", "https://auth.example.com"),
            ("RS_AUDIENCE", "https://orders.example.com"),
        ]),
    ] {
        let rs = expanded_environment(resource_server, &host).expect("interpolates");
        let gh = expanded_environment(gatehouse, &host).expect("interpolates");
        assert_eq!(rs["RS_ISSUER"], load_gatehouse(&gh).server.issuer);
        let expected = host.get("RS_AUDIENCE").map(String::as_str);
        assert_eq!(
            rs["RS_AUDIENCE"],
            expected.unwrap_or("https://api.example.com")
        );
        url::Url::parse(&rs["RS_AUDIENCE"]).expect("the audience is a URI");
        assert!(rs["RS_BIND"].starts_with("0.0.0.0:"), "{}", rs["RS_BIND"]);
        // The issuer's host (localhost) is the container itself: the keys come from the
        // gatehouse service over the compose network.
        if let Some(jwks) = rs.get("RS_JWKS_URI") {
            assert_eq!(
                jwks,
                &format!(
                    "http://gatehouse:{}/.well-known/jwks.json",
                    port_of(&gh["GATEHOUSE_BIND"])
                )
            );
        }
    }
}

// ---- deploy/nginx.conf ------------------------------------------------------------------------

/// One nginx directive: `name args…;` or `name args… { block }`.
#[derive(Debug)]
struct Directive {
    name: String,
    args: Vec<String>,
    block: Vec<Directive>,
}

impl Directive {
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Directive> + 'a {
        self.block.iter().filter(move |d| d.name == name)
    }

    /// Every directive named `name` at any depth.
    fn deep<'a>(&'a self, name: &str, found: &mut Vec<&'a Directive>) {
        for d in &self.block {
            if d.name == name {
                found.push(d);
            }
            d.deep(name, found);
        }
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for line in text.lines() {
        let mut chars = line.chars().peekable();
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '#' if word.is_empty() => break,
                '"' | '\'' => {
                    for q in chars.by_ref() {
                        if q == c {
                            break;
                        }
                        word.push(q);
                    }
                    tokens.push(std::mem::take(&mut word));
                }
                ';' | '{' | '}' => {
                    if !word.is_empty() {
                        tokens.push(std::mem::take(&mut word));
                    }
                    tokens.push(c.to_string());
                }
                c if c.is_whitespace() => {
                    if !word.is_empty() {
                        tokens.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            tokens.push(word);
        }
    }
    tokens
}

fn parse_block(tokens: &mut std::vec::IntoIter<String>) -> Vec<Directive> {
    let mut block = Vec::new();
    let mut words: Vec<String> = Vec::new();
    while let Some(token) = tokens.next() {
        match token.as_str() {
            ";" => {
                let name = words.remove(0);
                block.push(Directive {
                    name,
                    args: std::mem::take(&mut words),
                    block: Vec::new(),
                });
            }
            "{" => {
                let name = words.remove(0);
                let inner = parse_block(tokens);
                block.push(Directive {
                    name,
                    args: std::mem::take(&mut words),
                    block: inner,
                });
            }
            "}" => break,
            _ => words.push(token),
        }
    }
    assert!(words.is_empty(), "unterminated directive {words:?}");
    block
}

fn nginx() -> Directive {
    let tokens = tokenize(&read("deploy/nginx.conf"));
    Directive {
        name: "main".into(),
        args: Vec::new(),
        block: parse_block(&mut tokens.into_iter()),
    }
}

fn http(conf: &Directive) -> &Directive {
    conf.all("http").next().expect("an http block")
}

/// listen port → every `host:port` its locations proxy to (upstream names resolved).
fn proxied(conf: &Directive) -> BTreeMap<u16, BTreeSet<String>> {
    let http = http(conf);
    let upstreams: BTreeMap<&str, Vec<String>> = http
        .all("upstream")
        .map(|u| {
            let servers = u.all("server").map(|s| s.args[0].clone()).collect();
            (u.args[0].as_str(), servers)
        })
        .collect();
    let mut map = BTreeMap::new();
    for server in http.all("server") {
        let listen = server.all("listen").next().expect("server without listen");
        let port: u16 = listen.args[0]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("listen {:?}: no port", listen.args));
        let mut passes = Vec::new();
        server.deep("proxy_pass", &mut passes);
        let targets: &mut BTreeSet<String> = map.entry(port).or_default();
        for pass in passes {
            let target = pass.args[0]
                .strip_prefix("http://")
                .expect("proxy_pass http://…")
                .trim_end_matches('/');
            match upstreams.get(target) {
                Some(servers) => targets.extend(servers.iter().cloned()),
                None => {
                    targets.insert(target.to_owned());
                }
            }
        }
    }
    map
}

#[test]
fn nginx_proxies_to_the_ports_the_services_listen_on() {
    let compose = compose();
    let nginx_service = service(&compose, "nginx");
    let host = host_env(&[]);
    let gatehouse_bind = port_of(
        &expanded_environment(service(&compose, "gatehouse"), &host).expect("env")
            ["GATEHOUSE_BIND"],
    );
    let rs_bind = port_of(
        &expanded_environment(service(&compose, "resource-server"), &host).expect("env")["RS_BIND"],
    );
    let routes = proxied(&nginx());
    let expected = |upstream: &str, port: u16| BTreeSet::from([format!("{upstream}:{port}")]);

    // Gatehouse behind the port the default issuer names, the resource server beside it.
    let issuer = url::Url::parse(
        &load_gatehouse(&expanded_environment(service(&compose, "gatehouse"), &host).expect("env"))
            .server
            .issuer,
    )
    .expect("issuer URL");
    let issuer_port = issuer.port_or_known_default().expect("a port");
    let published = published_ports(nginx_service);
    let to_container = |host_port: u16| {
        published
            .iter()
            .find(|(p, _)| *p == host_port)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("nginx does not publish {host_port}: {published:?}"))
    };
    assert_eq!(
        routes.get(&to_container(issuer_port)),
        Some(&expected("gatehouse", gatehouse_bind)),
        "the issuer's port must reach Gatehouse: {routes:?}"
    );
    assert_eq!(
        routes.get(&to_container(9090)),
        Some(&expected("resource-server", rs_bind)),
        "{routes:?}"
    );
    let listening: BTreeSet<u16> = routes.keys().copied().collect();
    let containers: BTreeSet<u16> = published.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        listening, containers,
        "published ports = nginx listen ports"
    );

    let mount = scalar(&nginx_service["volumes"][0]);
    assert!(
        mount.starts_with("./deploy/nginx.conf:/etc/nginx/"),
        "nginx mounts deploy/nginx.conf: {mount}"
    );
}

#[test]
fn nginx_rate_limits_token_and_login_posts_and_forwards_the_client() {
    let conf = nginx();
    let http = http(&conf);
    // zone name → key of its limit_req_zone
    let zones: BTreeMap<String, String> = http
        .all("limit_req_zone")
        .map(|z| {
            let zone = z
                .args
                .iter()
                .find_map(|a| a.strip_prefix("zone="))
                .expect("zone=");
            let name = zone.split(':').next().unwrap_or(zone).to_owned();
            (name, z.args[0].clone())
        })
        .collect();
    // map $request_method $var { POST $binary_remote_addr; default ""; } → $var
    let post_only_keys: BTreeSet<String> = http
        .all("map")
        .filter(|m| m.args[0] == "$request_method")
        .filter(|m| {
            let entry = |k: &str| m.all(k).next().map(|d| d.args.join(" "));
            entry("POST").as_deref() == Some("$binary_remote_addr")
                && entry("default").as_deref() == Some("")
        })
        .map(|m| m.args[1].clone())
        .collect();

    let gatehouse_server = http
        .all("server")
        .find(|s| s.all("listen").any(|l| l.args[0].ends_with("8080")))
        .expect("a server on 8080");
    let location = |path: &str| {
        gatehouse_server
            .all("location")
            .find(|l| l.args == ["=", path])
            .unwrap_or_else(|| panic!("no `location = {path}`"))
    };
    let zone_key = |path: &str| {
        let limit = location(path)
            .all("limit_req")
            .next()
            .unwrap_or_else(|| panic!("no limit_req on {path}"));
        let zone = limit
            .args
            .iter()
            .find_map(|a| a.strip_prefix("zone="))
            .expect("zone=");
        zones
            .get(zone)
            .unwrap_or_else(|| panic!("zone {zone} is not defined"))
            .clone()
    };
    assert_eq!(zone_key("/token"), "$binary_remote_addr");
    let login_key = zone_key("/login");
    assert!(
        post_only_keys.contains(&login_key),
        "/login must be limited per address for POST only, key {login_key}"
    );

    let header = |name: &str| {
        http.all("proxy_set_header")
            .find(|h| h.args[0] == name)
            .map(|h| h.args[1].clone())
            .unwrap_or_else(|| panic!("proxy_set_header {name} missing"))
    };
    assert_eq!(header("X-Forwarded-For"), "$proxy_add_x_forwarded_for");
    assert_eq!(header("X-Forwarded-Proto"), "$scheme");
    assert!(header("Host").contains("host"));
    // No location overrides the headers (proxy_set_header inherits only when none is set).
    let mut overriding = Vec::new();
    for server in http.all("server") {
        server.deep("proxy_set_header", &mut overriding);
    }
    assert!(overriding.is_empty(), "{overriding:?}");

    let body = http
        .all("client_max_body_size")
        .next()
        .expect("client_max_body_size");
    let limit = body.args[0]
        .strip_suffix('k')
        .and_then(|k| k.parse::<usize>().ok())
        .map(|k| k * 1024);
    assert_eq!(limit, Some(gatehouse::http::forms::MAX_BODY));
    for timeout in [
        "proxy_connect_timeout",
        "proxy_read_timeout",
        "client_body_timeout",
    ] {
        assert!(http.all(timeout).next().is_some(), "{timeout} missing");
    }
}

// ---- Dockerfile ---------------------------------------------------------------------------------

/// Dockerfile instructions (continuation lines joined), split into build stages.
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = read("Dockerfile");
    let mut joined = String::new();
    let mut instructions = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && joined.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            continue;
        }
        joined.push_str(trimmed);
        let line = std::mem::take(&mut joined);
        let (op, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        instructions.push((
            op.to_uppercase(),
            args.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
    }
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for instruction in instructions {
        if instruction.0 == "FROM" {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("FROM first").push(instruction);
    }
    stages
}

#[test]
fn dockerfile_builds_both_binaries_and_runs_unprivileged() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "a multi-stage build");
    let builder = &stages[0];
    let runtime = stages.last().expect("a runtime stage");
    assert!(
        builder[0].1.starts_with("rust:1-bookworm"),
        "{:?}",
        builder[0]
    );
    assert_eq!(runtime[0].1, "debian:bookworm-slim");

    let runs: String = builder
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, args)| args.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    // libpq is built from source and linked in (`pq-sys`'s `bundled`): only OpenSSL's headers.
    for needed in [
        "libssl-dev",
        "pkg-config",
        "cargo build --release --locked --bin gatehouse",
        "cargo build --release --locked --example resource_server --features verify",
    ] {
        assert!(runs.contains(needed), "the builder must run {needed:?}");
    }
    let runtime_runs: String = runtime
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, args)| args.as_str())
        .collect();
    for package in ["libssl3", "ca-certificates"] {
        assert!(runtime_runs.contains(package), "runtime lacks {package}");
    }
    assert!(
        !runtime_runs.contains("libpq"),
        "the binary links its own libpq: the runtime installs none"
    );
    let copied: Vec<&str> = runtime
        .iter()
        .filter(|(op, args)| op == "COPY" && args.starts_with("--from="))
        .filter_map(|(_, args)| args.split_whitespace().last())
        .collect();
    let compose = compose();
    for binary in [
        command(service(&compose, "gatehouse"))[0].clone(),
        command(service(&compose, "resource-server"))[0].clone(),
    ] {
        assert!(
            copied.contains(&format!("/usr/local/bin/{binary}").as_str()),
            "the image has no {binary} on PATH: {copied:?}"
        );
    }

    let user = runtime
        .iter()
        .rfind(|(op, _)| op == "USER")
        .map(|(_, user)| user.clone())
        .expect("a USER in the runtime stage");
    let name = user.split(':').next().unwrap_or(&user);
    assert!(name != "root" && name != "0", "runs as root: {user}");
    let last_user = runtime.iter().rposition(|(op, _)| op == "USER");
    let last_cmd = runtime.iter().rposition(|(op, _)| op == "CMD");
    assert!(last_user < last_cmd, "USER comes before CMD");

    let cmd = runtime
        .iter()
        .rfind(|(op, _)| op == "CMD")
        .map(|(_, args)| args.clone())
        .expect("a CMD");
    assert!(
        cmd.contains("\"gatehouse\", \"serve\"") || cmd.contains("gatehouse serve"),
        "{cmd}"
    );
    let exposed: Vec<u16> = runtime
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, args)| args.split_whitespace().map(|p| p.parse().expect("a port")))
        .collect();
    let host = host_env(&[]);
    let bind = expanded_environment(service(&compose, "gatehouse"), &host).expect("env")
        ["GATEHOUSE_BIND"]
        .clone();
    assert!(
        exposed.contains(&port_of(&bind)),
        "EXPOSE {exposed:?}, bind {bind}"
    );

    // Local key material and build output stay out of the build context.
    let ignored = read(".dockerignore");
    for pattern in ["keys/", "target/"] {
        assert!(ignored.lines().any(|l| l.trim() == pattern), "{pattern}");
    }
}
