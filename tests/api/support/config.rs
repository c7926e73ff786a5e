//! The broker's configuration file, built rather than pasted: [`BrokerToml`] writes the
//! TOML a test needs from typed parts ([`Target`], [`Issuer`], [`Grant`], [`Auditor`]) and
//! `key = value` settings for the single sections (`[server]`, `[audit]`, `[rate_limit]`,
//! ...). [`BrokerToml::raw`] appends text as written, for what the builder does not model
//! (a deliberate error, an unknown key).
//!
//! ```ignore
//! let toml = BrokerToml::new()
//!     .issuer(&idp)
//!     .target(Target::postgres("orders-db").db_users(["app_rw"]))
//!     .grant(Grant::new("corp", "svc-*").targets(["orders-db"]).db_users(["app_rw"]))
//!     .audit_sqlite(dir.path());
//! let app = TestApp::spawn_toml(toml).await;
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use toml::Value;

use super::idp::TestIdp;

/// The audience every test issuer accepts and every test JWT carries.
pub const AUDIENCE: &str = "rds-token-broker";

/// The single tables, in the order they are written.
const TABLES: [&str; 10] = [
    "server",
    "log",
    "aws",
    "tokens",
    "audit",
    "audit.checkpoints",
    "rate_limit",
    "ui",
    "ui.oidc",
    "notifications",
];

/// A whole configuration file. `Display` renders it.
///
/// The broker refuses a file without `[audit]`, so a file with no `[audit]` key set says
/// `[audit] enabled = false` (the tests that need a trail set a store with
/// [`BrokerToml::audit_sqlite`] and the like); [`BrokerToml::without_audit_section`] and
/// [`BrokerToml::raw_only`] leave the section out.
#[derive(Clone, Debug, Default)]
pub struct BrokerToml {
    /// `[server]`, `[audit]`, ...: one of [`TABLES`] each, present once a key is set.
    tables: BTreeMap<&'static str, Section>,
    /// Leave `[audit]` out when no key of it is set (instead of `enabled = false`).
    no_audit_section: bool,
    issuers: Vec<Issuer>,
    targets: Vec<Target>,
    grants: Vec<Grant>,
    auditors: Vec<Auditor>,
    raw: Vec<String>,
}

impl BrokerToml {
    /// Listens on a free loopback port; nothing else is configured.
    pub fn new() -> Self {
        Self::default().server("listen", "127.0.0.1:0")
    }

    /// The usual in-process configuration: no caller authentication (the anonymous
    /// caller may use every target and is an auditor), `/metrics` on the API listener,
    /// [`Target::orders_db`] and [`Target::ledger`], and a per-caller limit high enough
    /// for load tests that send thousands of requests as one caller at one frozen instant
    /// (the limit has its own tests).
    pub fn unauthenticated() -> Self {
        Self::new()
            .server("allow_unauthenticated", true)
            .server("metrics_on_listen", true)
            .auditor(Auditor::anonymous())
            .target(Target::orders_db())
            .target(Target::ledger())
            .rate_limit("per_principal_per_second", 1_000_000)
    }

    /// Only what `text` says (the escape hatch for a file that is wrong on purpose).
    pub fn raw_only(text: impl Into<String>) -> Self {
        Self::default().without_audit_section().raw(text)
    }

    /// No `[audit]` section at all unless a key of it is set: the file the broker refuses.
    pub fn without_audit_section(mut self) -> Self {
        self.no_audit_section = true;
        self
    }

    /// Sets `key` under `[table]` (one of [`TABLES`]), replacing an earlier value.
    pub fn set(mut self, table: &'static str, key: &str, value: impl Into<Value>) -> Self {
        assert!(
            TABLES.contains(&table),
            "no table [{table}] in the broker's config"
        );
        self.tables.entry(table).or_default().set(key, value);
        self
    }

    /// Removes `key` from `[table]`.
    pub fn unset(mut self, table: &'static str, key: &str) -> Self {
        if let Some(t) = self.tables.get_mut(table) {
            t.remove(key);
        }
        self
    }

    /// Sets `key` under `[server]`.
    pub fn server(self, key: &str, value: impl Into<Value>) -> Self {
        self.set("server", key, value)
    }

    /// Removes `key` from `[server]`.
    pub fn without_server(self, key: &str) -> Self {
        self.unset("server", key)
    }

    /// JSON log lines (`[log] format = "json"`), as in production.
    pub fn json_logs(self) -> Self {
        self.set("log", "format", "json")
    }

    /// Sets `key` under `[aws]`.
    pub fn aws(self, key: &str, value: impl Into<Value>) -> Self {
        self.set("aws", key, value)
    }

    /// The audit trail at `url` (`sqlite://...` or `postgres://...`).
    pub fn audit_url(self, url: impl Into<String>) -> Self {
        self.audit("url", url.into())
    }

    /// The audit trail in `dir/audit.db`.
    pub fn audit_sqlite(self, dir: &Path) -> Self {
        self.audit_url(format!("sqlite://{}/audit.db", dir.display()))
    }

    /// The audit trail in the PostgreSQL database at `url`.
    pub fn audit_postgres(self, url: impl Into<String>) -> Self {
        self.audit_url(url)
    }

    /// Sets `key` under `[audit]` (`retention_days`, `mirror`, ...).
    pub fn audit(self, key: &str, value: impl Into<Value>) -> Self {
        self.set("audit", key, value)
    }

    /// Sets `key` under `[audit.checkpoints]`.
    pub fn checkpoints(self, key: &str, value: impl Into<Value>) -> Self {
        self.set("audit.checkpoints", key, value)
    }

    /// Sets `key` under `[rate_limit]`.
    pub fn rate_limit(self, key: &str, value: impl Into<Value>) -> Self {
        self.set("rate_limit", key, value)
    }

    /// Sets `key` under `[ui]`.
    pub fn ui(self, key: &str, value: impl Into<Value>) -> Self {
        self.set("ui", key, value)
    }

    /// Sets `key` under `[ui.oidc]`.
    pub fn ui_oidc(self, key: &str, value: impl Into<Value>) -> Self {
        self.set("ui.oidc", key, value)
    }

    /// Adds an `[[issuers]]` entry (a [`TestIdp`] converts to issuer `corp`).
    pub fn issuer(mut self, issuer: impl Into<Issuer>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Adds a `[[targets]]` entry.
    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// Adds a `[[grants]]` entry.
    pub fn grant(mut self, grant: Grant) -> Self {
        self.grants.push(grant);
        self
    }

    /// Adds an `[[auditors]]` entry.
    pub fn auditor(mut self, auditor: Auditor) -> Self {
        self.auditors.push(auditor);
        self
    }

    /// Drops every `[[auditors]]` entry so far.
    pub fn without_auditors(mut self) -> Self {
        self.auditors.clear();
        self
    }

    /// Appends `text` as written, after everything the builder renders. It should open
    /// with a table header of its own (bare keys would land in the last table written).
    pub fn raw(mut self, text: impl Into<String>) -> Self {
        self.raw.push(text.into());
        self
    }

    /// Writes the file as `dir/broker.toml` and returns its path.
    pub fn write_to(&self, dir: &Path) -> PathBuf {
        let path = dir.join("broker.toml");
        std::fs::write(&path, self.to_string()).unwrap();
        path
    }
}

impl fmt::Display for BrokerToml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for name in TABLES {
            match self.tables.get(name) {
                Some(table) => table.write(f, &format!("[{name}]"))?,
                None if name == "audit" && !self.no_audit_section => {
                    writeln!(f, "[audit]\nenabled = false\n")?;
                }
                None => {}
            }
        }
        for i in &self.issuers {
            i.section().write(f, "[[issuers]]")?;
        }
        for t in &self.targets {
            t.section().write(f, "[[targets]]")?;
        }
        for g in &self.grants {
            g.section().write(f, "[[grants]]")?;
        }
        for a in &self.auditors {
            a.section().write(f, "[[auditors]]")?;
        }
        for r in &self.raw {
            writeln!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Ordered `key = value` lines.
#[derive(Clone, Debug, Default)]
struct Section(Vec<(String, Value)>);

impl Section {
    fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    fn opt(&mut self, key: &str, value: Option<impl Into<Value>>) {
        if let Some(v) = value {
            self.set(key, v);
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, header: &str) -> fmt::Result {
        writeln!(f, "{header}")?;
        for (k, v) in &self.0 {
            // Values render inline (`{ a = 1 }` for tables), keys bare.
            writeln!(f, "{k} = {v}")?;
        }
        f.write_char('\n')
    }
}

fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

fn array(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(s.as_str())).collect())
}

/// A `[[targets]]` entry. Constructors give a test database whose host is derived from
/// the name; the setters change one key each.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    /// `kind`, written only when set (the broker's default is `rds`).
    pub kind: Option<String>,
    pub host: String,
    /// Written only when set: DSQL and cache targets have a default port.
    pub port: Option<i64>,
    /// Written only when set: DSQL and cache targets have a default engine.
    pub engine: Option<String>,
    pub region: Option<String>,
    pub cache_name: Option<String>,
    pub serverless: Option<bool>,
    pub token_lifetime_seconds: Option<i64>,
    pub db_users: Vec<String>,
    pub role_arn: Option<String>,
    pub resource_id: Option<String>,
    pub external_id: Option<String>,
    pub max_connections_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub share_tokens: Option<bool>,
    /// Any other keys (one the broker does not know, for a test that it says so).
    extra: Section,
}

impl Target {
    /// A PostgreSQL target `name` on `NAME.cluster-abc123xyz.eu-west-1.rds.amazonaws.com`
    /// (without a `-db` suffix) port 5432, with one DB user `app`.
    pub fn postgres(name: &str) -> Self {
        let stem = name.strip_suffix("-db").unwrap_or(name);
        Self {
            name: name.to_owned(),
            kind: None,
            host: format!("{stem}.cluster-abc123xyz.eu-west-1.rds.amazonaws.com"),
            port: Some(5432),
            engine: Some("postgres".into()),
            region: None,
            cache_name: None,
            serverless: None,
            token_lifetime_seconds: None,
            db_users: vec!["app".into()],
            role_arn: None,
            resource_id: None,
            external_id: None,
            max_connections_per_second: None,
            burst: None,
            share_tokens: None,
            extra: Section::default(),
        }
    }

    /// Like [`Target::postgres`], MySQL on port 3306.
    pub fn mysql(name: &str) -> Self {
        Self {
            port: Some(3306),
            engine: Some("mysql".into()),
            ..Self::postgres(name)
        }
    }

    /// An Aurora DSQL target `name` (`kind = "dsql"`) on the cluster
    /// `abcdefghijklmnopqrst123456` in us-east-1, with the default port, engine, lifetime
    /// and budget, and the Postgres roles `app` and `admin`.
    pub fn dsql(name: &str) -> Self {
        Self {
            kind: Some("dsql".into()),
            host: "abcdefghijklmnopqrst123456.dsql.us-east-1.on.aws".into(),
            port: None,
            engine: None,
            db_users: vec!["app".into(), "admin".into()],
            ..Self::postgres(name)
        }
    }

    /// An ElastiCache target `name` (`kind = "elasticache"`): the node-based cache
    /// `my-redis-cluster` in us-east-1 behind `master.my-redis-cluster.abc123.use1.cache.amazonaws.com`
    /// (default port and engine), user id `app-user`.
    pub fn elasticache(name: &str) -> Self {
        Self {
            kind: Some("elasticache".into()),
            host: "master.my-redis-cluster.abc123.use1.cache.amazonaws.com".into(),
            port: None,
            engine: None,
            region: Some("us-east-1".into()),
            cache_name: Some("my-redis-cluster".into()),
            db_users: vec!["app-user".into()],
            ..Self::postgres(name)
        }
    }

    /// A MemoryDB target `name` (`kind = "memorydb"`): the cluster `ledger-cluster` in
    /// us-east-1, user `ledger_app`.
    pub fn memorydb(name: &str) -> Self {
        Self {
            kind: Some("memorydb".into()),
            host: "clustercfg.ledger-cluster.abc123.memorydb.us-east-1.amazonaws.com".into(),
            port: None,
            engine: None,
            region: Some("us-east-1".into()),
            cache_name: Some("ledger-cluster".into()),
            db_users: vec!["ledger_app".into()],
            ..Self::postgres(name)
        }
    }

    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.into());
        self
    }

    pub fn cache_name(mut self, name: &str) -> Self {
        self.cache_name = Some(name.into());
        self
    }

    pub fn serverless(mut self, serverless: bool) -> Self {
        self.serverless = Some(serverless);
        self
    }

    pub fn token_lifetime_seconds(mut self, seconds: i64) -> Self {
        self.token_lifetime_seconds = Some(seconds);
        self
    }

    /// Leaves `port` out (the kind's default).
    pub fn without_port(mut self) -> Self {
        self.port = None;
        self
    }

    /// Leaves `engine` out (the kind's default).
    pub fn without_engine(mut self) -> Self {
        self.engine = None;
        self
    }

    /// Leaves `region` out.
    pub fn without_region(mut self) -> Self {
        self.region = None;
        self
    }

    /// Leaves `cache_name` out.
    pub fn without_cache_name(mut self) -> Self {
        self.cache_name = None;
        self
    }

    /// `orders-db` of [`BrokerToml::unauthenticated`]: PostgreSQL in eu-west-1 (the host
    /// in mixed case), DB users `app_rw`, `app_ro` and `mario.rossi@example.com`.
    pub fn orders_db() -> Self {
        Self::postgres("orders-db")
            .host("Orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com")
            .db_users(["app_rw", "app_ro", "mario.rossi@example.com"])
    }

    /// `ledger` of [`BrokerToml::unauthenticated`]: MySQL on a custom DNS name in
    /// us-east-1, one DB user `ledger_svc`.
    pub fn ledger() -> Self {
        Self::mysql("ledger")
            .host("ledger.example.internal")
            .region("us-east-1")
            .db_users(["ledger_svc"])
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = host.into();
        self
    }

    pub fn port(mut self, port: i64) -> Self {
        self.port = Some(port);
        self
    }

    pub fn engine(mut self, engine: &str) -> Self {
        self.engine = Some(engine.into());
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        self.region = Some(region.into());
        self
    }

    pub fn db_users<S: Into<String>>(mut self, users: impl IntoIterator<Item = S>) -> Self {
        self.db_users = strings(users);
        self
    }

    pub fn role_arn(mut self, arn: &str) -> Self {
        self.role_arn = Some(arn.into());
        self
    }

    pub fn resource_id(mut self, id: &str) -> Self {
        self.resource_id = Some(id.into());
        self
    }

    pub fn external_id(mut self, id: &str) -> Self {
        self.external_id = Some(id.into());
        self
    }

    /// The target's token budget: `max_connections_per_second` and `burst`.
    pub fn budget(mut self, per_second: u32, burst: u32) -> Self {
        self.max_connections_per_second = Some(per_second);
        self.burst = Some(burst);
        self
    }

    pub fn share_tokens(mut self, share: bool) -> Self {
        self.share_tokens = Some(share);
        self
    }

    /// Sets any other key of the entry.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.set(key, value);
        self
    }

    fn section(&self) -> Section {
        let mut s = Section::default();
        s.set("name", self.name.as_str());
        s.opt("kind", self.kind.as_deref());
        s.set("host", self.host.as_str());
        s.opt("port", self.port);
        s.opt("engine", self.engine.as_deref());
        s.opt("region", self.region.as_deref());
        s.opt("cache_name", self.cache_name.as_deref());
        s.opt("serverless", self.serverless);
        s.opt("token_lifetime_seconds", self.token_lifetime_seconds);
        s.set("db_users", array(&self.db_users));
        s.opt("role_arn", self.role_arn.as_deref());
        s.opt("resource_id", self.resource_id.as_deref());
        s.opt("external_id", self.external_id.as_deref());
        s.opt(
            "max_connections_per_second",
            self.max_connections_per_second,
        );
        s.opt("burst", self.burst);
        s.opt("share_tokens", self.share_tokens);
        for (k, v) in &self.extra.0 {
            s.set(k, v.clone());
        }
        s
    }
}

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
pub enum Keys {
    /// `jwks_uri`.
    Uri(String),
    /// `jwks_file`.
    File(PathBuf),
    /// Neither: OIDC discovery from the issuer URL.
    Discovery,
}

/// An `[[issuers]]` entry; tokens for audience [`AUDIENCE`] unless changed.
#[derive(Clone, Debug)]
pub struct Issuer {
    pub name: String,
    pub issuer: String,
    pub keys: Keys,
    pub audiences: Vec<String>,
    /// Any other keys (`algorithms`, `leeway_seconds`, `insecure_http`, ...).
    extra: Section,
}

impl Issuer {
    /// Issuer `name` trusting tokens with `iss` = `iss`, keys found by discovery.
    pub fn discovery(name: &str, iss: &str) -> Self {
        Self {
            name: name.into(),
            issuer: iss.into(),
            keys: Keys::Discovery,
            audiences: vec![AUDIENCE.into()],
            extra: Section::default(),
        }
    }

    /// Issuer `name` with its keys at `jwks_uri`.
    pub fn jwks_uri(name: &str, iss: &str, jwks_uri: &str) -> Self {
        Self {
            keys: Keys::Uri(jwks_uri.into()),
            ..Self::discovery(name, iss)
        }
    }

    /// Issuer `name` with its keys in the file `path`.
    pub fn jwks_file(name: &str, iss: &str, path: &Path) -> Self {
        Self {
            keys: Keys::File(path.into()),
            ..Self::discovery(name, iss)
        }
    }

    /// `idp` (its JWKS URI) as issuer `name`.
    pub fn idp(name: &str, idp: &TestIdp) -> Self {
        Self::jwks_uri(name, &idp.issuer, &idp.jwks_uri())
    }

    /// Renamed (another entry for the same `iss`).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn audiences<S: Into<String>>(mut self, audiences: impl IntoIterator<Item = S>) -> Self {
        self.audiences = strings(audiences);
        self
    }

    /// Sets any other key of the entry.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.set(key, value);
        self
    }

    fn section(&self) -> Section {
        let mut s = Section::default();
        s.set("name", self.name.as_str());
        s.set("issuer", self.issuer.as_str());
        match &self.keys {
            Keys::Uri(u) => s.set("jwks_uri", u.as_str()),
            Keys::File(p) => s.set("jwks_file", p.display().to_string()),
            Keys::Discovery => {}
        }
        s.set("audiences", array(&self.audiences));
        for (k, v) in &self.extra.0 {
            s.set(k, v.clone());
        }
        s
    }
}

impl fmt::Display for Issuer {
    /// The `[[issuers]]` block.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.section().write(f, "[[issuers]]")
    }
}

impl From<&TestIdp> for Issuer {
    /// The IdP as issuer `corp`.
    fn from(idp: &TestIdp) -> Self {
        Self::idp("corp", idp)
    }
}

/// `claims = { k = v, ... }` of a grant or an auditor.
fn claims_value(claims: &[(String, Value)]) -> Value {
    Value::Table(claims.iter().cloned().collect())
}

/// A `[[grants]]` entry: callers of `issuer` whose subject matches `subject` (and whose
/// claims match) may have tokens for `targets` as `db_users`.
#[derive(Clone, Debug)]
pub struct Grant {
    pub issuer: String,
    pub subject: String,
    pub claims: Vec<(String, Value)>,
    pub targets: Vec<String>,
    pub db_users: Vec<String>,
    /// `[grants.conditions]` keys, when any.
    pub conditions: Vec<(String, Value)>,
    /// Further keys (`access`, `min_approvals`, ...), in order.
    pub extra: Vec<(String, Value)>,
    /// `approvers`, as `(issuer, subject)`.
    pub approvers: Vec<(String, String)>,
}

impl Grant {
    pub fn new(issuer: &str, subject: &str) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            claims: Vec::new(),
            targets: Vec::new(),
            db_users: Vec::new(),
            conditions: Vec::new(),
            extra: Vec::new(),
            approvers: Vec::new(),
        }
    }

    /// Sets `[grants.conditions] name = value`.
    pub fn condition(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.conditions.push((name.into(), value.into()));
        self
    }

    /// Sets another key of the grant (`access`, `min_approvals`, ...).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// Adds an approver `{ issuer, subject }`.
    pub fn approver(mut self, issuer: &str, subject: &str) -> Self {
        self.approvers.push((issuer.into(), subject.into()));
        self
    }

    /// Only for callers whose claim `name` matches `value`.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.push((name.into(), value.into()));
        self
    }

    pub fn targets<S: Into<String>>(mut self, targets: impl IntoIterator<Item = S>) -> Self {
        self.targets = strings(targets);
        self
    }

    pub fn db_users<S: Into<String>>(mut self, users: impl IntoIterator<Item = S>) -> Self {
        self.db_users = strings(users);
        self
    }

    fn section(&self) -> Section {
        let mut s = Section::default();
        s.set("issuer", self.issuer.as_str());
        s.set("subject", self.subject.as_str());
        if !self.claims.is_empty() {
            s.set("claims", claims_value(&self.claims));
        }
        s.set("targets", array(&self.targets));
        s.set("db_users", array(&self.db_users));
        if !self.conditions.is_empty() {
            s.set("conditions", claims_value(&self.conditions));
        }
        for (k, v) in &self.extra {
            s.set(k, v.clone());
        }
        if !self.approvers.is_empty() {
            let list = self
                .approvers
                .iter()
                .map(|(i, sub)| {
                    let mut t = toml::map::Map::new();
                    t.insert("issuer".into(), Value::from(i.as_str()));
                    t.insert("subject".into(), Value::from(sub.as_str()));
                    Value::Table(t)
                })
                .collect();
            s.set("approvers", Value::Array(list));
        }
        s
    }
}

/// An `[[auditors]]` entry: who may read the audit trail.
#[derive(Clone, Debug)]
pub struct Auditor {
    pub issuer: String,
    pub subject: String,
    pub claims: Vec<(String, Value)>,
}

impl Auditor {
    pub fn new(issuer: &str, subject: &str) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            claims: Vec::new(),
        }
    }

    /// The unauthenticated caller (only with `allow_unauthenticated`).
    pub fn anonymous() -> Self {
        Self::new("none", "anonymous")
    }

    /// Only for callers whose claim `name` matches `value`.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.push((name.into(), value.into()));
        self
    }

    fn section(&self) -> Section {
        let mut s = Section::default();
        s.set("issuer", self.issuer.as_str());
        s.set("subject", self.subject.as_str());
        if !self.claims.is_empty() {
            s.set("claims", claims_value(&self.claims));
        }
        s
    }
}
