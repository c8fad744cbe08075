//! `wasmcloud:postgres/{types,query,prepared}` on PostgreSQL: `0.1.1-draft`
//! (P2 guests) and `0.2.0` (P3 guests, `async` functions; see `v2.rs`).
//!
//! A workload reaches a database through its `wasmcloud:postgres` host
//! interface entry; the host may give a default server (`--postgres-url`,
//! wash's `postgres_url`), and wasmCloud's `database` key picks the
//! database on it:
//!
//! ```yaml
//! hostInterfaces:
//!   - namespace: wasmcloud
//!     package: postgres
//!     interfaces: [query, prepared]
//!     config:
//!       database: shop                  # wasmCloud's key: the database on the server
//!       url: postgres://app@db:5432     # optional: this workload's own server (no password here)
//!       pool_size: "8"                  # connections per workload and server (default 10)
//!       statement_timeout_ms: "5000"    # per statement, enforced by the server (default 30000)
//!       connect_timeout_ms: "3000"      # to connect, or to wait for a free connection (default 5000)
//!       max_result_bytes: "16777216"    # largest result a query returns (default 32 MiB)
//!       ca_bundle: /etc/nimbus/db-ca.pem # with sslmode=require: a CA to trust beside the system's
//!     secretFrom:
//!       - name: shop-db                 # its `password` (or a whole `url`) is the credential
//! ```
//!
//! Credentials come from secrets only: a password written into a plain
//! `config.url` is refused, and no URL is ever logged with its password.
//! Each workload gets its own pool per server, database and user, so one
//! tenant cannot use up another's connections; pools connect lazily, so a
//! database that is down at start fails queries (with an error saying it
//! cannot be reached), not the workload, and pooled connections that broke
//! are replaced on the next query once the server is back.
//!
//! With `sslmode=require` in the URL the connection is TLS, and stricter
//! than libpq's `require`: the server's certificate must lead to the
//! system's roots or to `ca_bundle`, and name the URL's host (libpq's
//! `verify-full`). `sslmode=prefer` (the default) and `disable` connect in
//! plain text.
//!
//! Every call is bounded: the wait for a connection by the connect timeout,
//! each statement by `statement_timeout` on the server and, should the
//! server not answer, by the same time plus a grace period on the host
//! (that connection is then closed, not reused). Parameters are always
//! sent separately from the SQL (`$1`, `$2`, …); `query-batch` is the one
//! call without parameters. Prepared statements are kept per component (at
//! most [`MAX_PREPARED`]) and re-prepared on whichever pooled connection
//! runs them. The mapping between `pg-value` and column types is
//! [`values`]'.

mod v2;
pub mod values;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::TryStreamExt as _;
use nimbus_plugin::{BindContext, Binding, PluginCalls, PluginError, PluginState};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_postgres::types::{FromSql, ToSql, Type};

// The vendored WIT carries the interface without wasmCloud's doc comments
// (their prose is theirs), so the generated types have none.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasmcloud:postgres/imports",
        imports: { default: async | trappable },
        additional_derives: [PartialEq],
    });
}

/// `wasmcloud:postgres@0.2.0` (P3): here rather than in `v2` so that the
/// codec's `values::v2` and the host functions in `v2` both use it without
/// depending on each other.
mod bindings_v2 {
    wasmtime::component::bindgen!({
        path: "wit-0.2.0",
        world: "wasmcloud:postgres/imports",
        imports: { default: store | trappable },
        additional_derives: [PartialEq],
    });
}

/// The interface's types (`pg-value` and what it is made of).
pub use bindings::wasmcloud::postgres::types;
pub use bindings::wasmcloud::postgres::types::{
    PgValue, PreparedStatementExecError, QueryError, ResultRow, ResultRowEntry,
    StatementPrepareError,
};
use bindings::wasmcloud::postgres::{prepared, query};
pub use values::v1::{float_of, hashable_f32, hashable_f64};

const ID: &str = "postgres";
const QUERY: &str = "wasmcloud:postgres/query";
const PREPARED: &str = "wasmcloud:postgres/prepared";

/// Connections per workload and server, unless `pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 10;
/// The server-side `statement_timeout`, unless `statement_timeout_ms` says otherwise.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to connect or wait for a pooled connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest result (column bytes as the server sends them) one query returns.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 32 << 20;
/// Prepared statements one component may hold.
pub const MAX_PREPARED: usize = 1024;
/// What the host waits beyond the statement timeout for a server that
/// does not answer at all.
const HOST_GRACE: Duration = Duration::from_secs(2);

const SETTINGS: [&str; 7] = [
    "database",
    "url",
    "pool_size",
    "statement_timeout_ms",
    "connect_timeout_ms",
    "max_result_bytes",
    "ca_bundle",
];

/// Serves `wasmcloud:postgres` from per-workload pools.
pub struct PostgresPlugin {
    defaults: BTreeMap<String, String>,
    host_url: Option<nimbus_model::secret::Secret>,
    pools: Mutex<HashMap<PoolKey, Arc<Database>>>,
}

/// Where a workload's connection string came from (errors name it, never
/// its text).
#[derive(Clone, Copy)]
enum Url<'a> {
    Plain(&'a str),
    Secret(&'a str),
    Host(&'a str),
}

/// One pool: a workload's connections to one server, database and user
/// with one set of limits (the password only as a digest, in memory).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    workload: String,
    settings: String,
    password_digest: u64,
}

impl PostgresPlugin {
    /// The plugin with the host's defaults for it (limits such as
    /// `pool_size`), and the host's server (`--postgres-url`) for workloads
    /// that name none: a secret, since it usually holds a password.
    pub fn new(
        defaults: BTreeMap<String, String>,
        host_url: Option<nimbus_model::secret::Secret>,
    ) -> Self {
        Self {
            defaults,
            host_url,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<PoolKey, Arc<Database>>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: PluginState> nimbus_plugin::Plugin<T> for PostgresPlugin {
    fn id(&self) -> &'static str {
        ID
    }

    fn interfaces(&self) -> &'static [&'static str] {
        &[
            "wasmcloud:postgres/types@0.1.1-draft",
            "wasmcloud:postgres/query@0.1.1-draft",
            "wasmcloud:postgres/prepared@0.1.1-draft",
            "wasmcloud:postgres/types@0.2.0",
            "wasmcloud:postgres/query@0.2.0",
            "wasmcloud:postgres/prepared@0.2.0",
        ]
    }

    fn add_to_linker(&self, linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
        fn view<T: PluginState>(state: &mut T) -> PostgresView<'_> {
            let (_, bindings, calls) = state.plugin_parts();
            PostgresView {
                binding: bindings.get::<PostgresBinding>(ID),
                calls,
            }
        }
        types::add_to_linker::<T, HasPostgres>(linker, view::<T>)?;
        query::add_to_linker::<T, HasPostgres>(linker, view::<T>)?;
        prepared::add_to_linker::<T, HasPostgres>(linker, view::<T>)?;
        v2::add_to_linker::<T>(linker, view::<T>)
    }

    fn bind(&self, ctx: &BindContext<'_>) -> Result<Binding, PluginError> {
        let error = |message: String| PluginError::new(ID, message);
        let workload = ctx.interface_config("wasmcloud", "postgres")?;
        if let Some(key) = workload.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
            return Err(error(format!(
                "unknown setting `{key}` (known: {})",
                SETTINGS.join(", ")
            )));
        }
        if workload.get("url").is_some_and(|url| has_password(url)) {
            return Err(error(
                "`config.url` holds a password, which would be stored and shown as plain \
                 config; give the password (or the whole url) through secretFrom"
                    .into(),
            ));
        }
        let secrets = ctx.interface_secrets("wasmcloud", "postgres")?;
        // The workload's own server (secret, then plain), else the host's.
        let url = match (secrets.get("url"), workload.get("url"), &self.host_url) {
            (Some(secret), _, _) => Url::Secret(secret.expose()),
            (None, Some(plain), _) => Url::Plain(plain),
            (None, None, Some(host)) => Url::Host(host.expose()),
            (None, None, None) => {
                return Err(error(
                    "no database server: set `url` in the interface's config or secretFrom, \
                     or start the host with --postgres-url"
                        .into(),
                ));
            }
        };
        let mut config = self.defaults.clone();
        config.extend(workload.clone());
        let settings = Settings::resolve(url, &config, secrets.get("password")).map_err(error)?;
        let key = PoolKey {
            workload: ctx.workload.to_string(),
            settings: settings.describe(),
            password_digest: settings.password_digest(),
        };
        let database = {
            let mut pools = self.pools();
            match pools.get(&key) {
                Some(database) => database.clone(),
                None => {
                    let database = Arc::new(Database::open(&settings).map_err(error)?);
                    pools.insert(key, database.clone());
                    database
                }
            }
        };
        tracing::debug!(
            workload = ctx.workload,
            component = ctx.component,
            target = %database.target,
            "postgres bound"
        );
        Ok(Arc::new(PostgresBinding(Arc::new(Shared {
            database,
            prepared: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
        }))))
    }

    fn unbind(&self, workload: &str) {
        // Bindings still held by draining instances keep their pool alive
        // until they finish; a new start makes a fresh pool.
        self.pools().retain(|key, _| key.workload != workload);
    }
}

/// Whether a connection string carries a password.
fn has_password(url: &str) -> bool {
    url.parse::<tokio_postgres::Config>()
        .map(|config| config.get_password().is_some())
        .unwrap_or(false)
}

/// A workload's connection settings, resolved from the host's defaults,
/// its config and its secrets.
struct Settings {
    config: tokio_postgres::Config,
    /// With `sslmode=require`: how the server is checked.
    tls: Option<rustls::ClientConfig>,
    pool_size: usize,
    statement_timeout: Duration,
    connect_timeout: Duration,
    max_result_bytes: usize,
}

impl Settings {
    fn resolve(
        url: Url<'_>,
        config: &BTreeMap<String, String>,
        password: Option<&nimbus_model::secret::Secret>,
    ) -> Result<Self, String> {
        let (text, what) = match url {
            Url::Plain(text) => (text, "`url`"),
            Url::Secret(text) => (text, "the `url` secret"),
            Url::Host(text) => (text, "--postgres-url"),
        };
        // The parser's message never repeats the string, so no password
        // reaches the error.
        let mut pg: tokio_postgres::Config = text
            .parse()
            .map_err(|e| format!("{what} is not a PostgreSQL connection string: {e}"))?;
        if pg.get_hosts().is_empty() {
            return Err("the database url names no host".into());
        }
        let tls = match pg.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => {
                let bundle = config
                    .get("ca_bundle")
                    .map(|path| ("ca_bundle", std::path::Path::new(path)));
                let roots = nimbus_plugin::roots::trusted_roots(true, bundle)?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let client = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS versions: {e}"))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(client)
            }
            _ if config.contains_key("ca_bundle") => {
                return Err("ca_bundle is set but the url's sslmode is not `require`".into());
            }
            _ => None,
        };
        if let Some(database) = config.get("database") {
            pg.dbname(database);
        }
        if let Some(password) = password {
            pg.password(password.expose());
        }
        let number = |key: &str, default: u64| -> Result<u64, String> {
            match config.get(key) {
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{key} `{value}` is not a positive number")),
                None => Ok(default),
            }
        };
        let pool_size = number("pool_size", DEFAULT_POOL_SIZE as u64)?;
        if pool_size > 1000 {
            return Err(format!("pool_size {pool_size} is over 1000"));
        }
        let statement_timeout = Duration::from_millis(number(
            "statement_timeout_ms",
            DEFAULT_STATEMENT_TIMEOUT.as_millis() as u64,
        )?);
        let connect_timeout = Duration::from_millis(number(
            "connect_timeout_ms",
            DEFAULT_CONNECT_TIMEOUT.as_millis() as u64,
        )?);
        let max_result_bytes = number("max_result_bytes", DEFAULT_MAX_RESULT_BYTES as u64)?;
        // The server cancels a statement over its time; set per connection.
        let options = format!(
            "{} -c statement_timeout={}",
            pg.get_options().unwrap_or(""),
            statement_timeout.as_millis()
        );
        pg.options(options.trim());
        pg.connect_timeout(connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("nimbus");
        }
        Ok(Self {
            config: pg,
            tls,
            pool_size: pool_size as usize,
            statement_timeout,
            connect_timeout,
            max_result_bytes: usize::try_from(max_result_bytes).unwrap_or(usize::MAX),
        })
    }

    /// `user@host:port/database`: what logs and errors name (no password).
    fn target(&self) -> String {
        let config = &self.config;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => String::new(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{host}:{port}/{}",
            config.get_user().unwrap_or(""),
            config.get_dbname().unwrap_or("")
        )
    }

    /// Everything that makes a pool different, but the password.
    fn describe(&self) -> String {
        format!(
            "{} {:?} {:?} {:?} {} {:?} {:?} {}",
            self.target(),
            self.config.get_hostaddrs(),
            self.config.get_hosts(),
            self.config.get_ports(),
            self.config.get_options().unwrap_or(""),
            self.statement_timeout,
            self.connect_timeout,
            self.pool_size
        ) + &format!(" {}", self.max_result_bytes)
    }

    fn password_digest(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.config.get_password().hash(&mut hasher);
        hasher.finish()
    }
}

/// A pool of connections to one database, with the bounds every call
/// keeps. Public for the conformance tests.
pub struct Database {
    pool: Pool,
    target: String,
    statement_timeout: Duration,
    max_result_bytes: usize,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Database {
    fn open(settings: &Settings) -> Result<Self, String> {
        let manager_config = || ManagerConfig {
            // A closed connection (the server restarted) is replaced; an
            // open one is reused without a round trip.
            recycling_method: RecyclingMethod::Fast,
        };
        let config = settings.config.clone();
        let manager = match &settings.tls {
            Some(tls) => Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone()),
                manager_config(),
            ),
            None => Manager::from_config(config, tokio_postgres::NoTls, manager_config()),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| format!("connection pool: {e}"))?;
        Ok(Self {
            pool,
            target: settings.target(),
            statement_timeout: settings.statement_timeout,
            max_result_bytes: settings.max_result_bytes,
        })
    }

    /// A database from a connection string and optional settings, outside
    /// any host: for tests and tools. `settings` takes the same keys as a
    /// workload's config (`database`, `statement_timeout_ms`, …).
    pub fn connect(url: &str, settings: &[(&str, &str)]) -> Result<Self, String> {
        let config: BTreeMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::open(&Settings::resolve(Url::Plain(url), &config, None)?)
    }

    /// `user@host:port/database`.
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, Failure> {
        self.pool.get().await.map_err(|e| {
            let why = match e {
                deadpool_postgres::PoolError::Timeout(_) => {
                    "no connection became free or could be made in time".to_string()
                }
                deadpool_postgres::PoolError::Backend(e) => describe_error(&e),
                other => other.to_string(),
            };
            Failure::Connection(format!("cannot reach the database {}: {why}", self.target))
        })
    }

    /// Runs `work` within the statement timeout plus a grace period; a
    /// connection whose server did not answer in time is closed.
    async fn bounded<R>(
        &self,
        client: deadpool_postgres::Client,
        work: impl AsyncFnOnce(&deadpool_postgres::Client) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        let limit = self.statement_timeout + HOST_GRACE;
        match tokio::time::timeout(limit, work(&client)).await {
            Ok(result) => result,
            Err(_) => {
                // Not back into the pool: it may still be mid-statement.
                drop(deadpool_postgres::Object::take(client));
                Err(Failure::Timeout(format!(
                    "the database {} did not answer within {} ms",
                    self.target,
                    limit.as_millis()
                )))
            }
        }
    }

    /// One parameterized statement: its column names and rows, each column
    /// read as a `C`.
    async fn rows<P, C>(
        &self,
        sql: &str,
        params: &[P],
    ) -> Result<(Vec<String>, Vec<Vec<C>>), Failure>
    where
        P: ToSql + Sync,
        C: for<'a> FromSql<'a>,
    {
        let client = self.client().await?;
        let max = self.max_result_bytes;
        self.bounded(client, async |client| {
            let statement = client.prepare_cached(sql).await.map_err(Failure::of)?;
            check_params(statement.params(), params)?;
            let columns: Vec<String> = statement
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            let rows = client
                .query_raw(&statement, params.iter())
                .await
                .map_err(Failure::of)?;
            futures::pin_mut!(rows);
            let mut result = Vec::new();
            let mut size = 0usize;
            while let Some(row) = rows.try_next().await.map_err(Failure::of)? {
                let mut values = Vec::with_capacity(columns.len());
                for (index, name) in columns.iter().enumerate() {
                    let column_error = |e: tokio_postgres::Error| {
                        Failure::Conversion(format!("column `{name}`: {}", source_text(&e)))
                    };
                    let RawLength(length) = row.try_get(index).map_err(column_error)?;
                    size += length + 8;
                    values.push(row.try_get::<_, C>(index).map_err(column_error)?);
                }
                if size > max {
                    return Err(Failure::TooLarge(format!(
                        "the result is over {max} bytes (max_result_bytes); page it with LIMIT"
                    )));
                }
                result.push(values);
            }
            Ok((columns, result))
        })
        .await
    }

    /// One parameterized statement; its rows, each column by name.
    pub async fn query(&self, sql: &str, params: &[PgValue]) -> Result<Vec<ResultRow>, QueryError> {
        let params: Vec<values::v1::Param<'_>> = params.iter().map(values::v1::Param).collect();
        let (columns, rows) = self
            .rows::<_, values::v1::Column>(sql, &params)
            .await
            .map_err(Failure::into_v1)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                columns
                    .iter()
                    .zip(row)
                    .map(|(name, values::v1::Column(value))| ResultRowEntry {
                        column_name: name.clone(),
                        value,
                    })
                    .collect()
            })
            .collect())
    }

    async fn batch_raw(&self, sql: &str) -> Result<(), Failure> {
        let client = self.client().await?;
        self.bounded(client, async |client| {
            client.batch_execute(sql).await.map_err(Failure::of)
        })
        .await
    }

    /// Statements without parameters, run as one batch.
    pub async fn batch(&self, sql: &str) -> Result<(), QueryError> {
        self.batch_raw(sql).await.map_err(Failure::into_v1)
    }

    async fn prepare_raw(&self, sql: &str) -> Result<Vec<Type>, Failure> {
        let client = self.client().await?;
        self.bounded(client, async |client| {
            client
                .prepare_cached(sql)
                .await
                .map(|statement| statement.params().to_vec())
                .map_err(Failure::of)
        })
        .await
    }

    /// Prepares `sql` to learn its parameter types.
    pub async fn prepare(&self, sql: &str) -> Result<Vec<Type>, String> {
        self.prepare_raw(sql)
            .await
            .map_err(|failure| failure.text())
    }

    async fn execute_raw<P: ToSql + Sync>(
        &self,
        sql: &str,
        types: &[Type],
        params: &[P],
    ) -> Result<u64, Failure> {
        check_params(types, params)?;
        let client = self.client().await?;
        self.bounded(client, async |client| {
            let statement = client
                .prepare_typed_cached(sql, types)
                .await
                .map_err(Failure::of)?;
            client
                .execute_raw(&statement, params.iter())
                .await
                .map_err(Failure::of)
        })
        .await
    }

    /// Runs a statement prepared before with `types`; the rows it changed.
    pub async fn execute(
        &self,
        sql: &str,
        types: &[Type],
        params: &[PgValue],
    ) -> Result<u64, QueryError> {
        let params: Vec<values::v1::Param<'_>> = params.iter().map(values::v1::Param).collect();
        self.execute_raw(sql, types, &params)
            .await
            .map_err(Failure::into_v1)
    }
}

/// Why a call failed, before it is put in one interface version's error
/// type.
#[derive(Debug)]
enum Failure {
    /// The parameters do not fit the statement (count or a value).
    Params(String),
    /// The server refused or failed the statement.
    Database(Box<tokio_postgres::error::DbError>),
    /// The server could not be reached, or the connection broke.
    Connection(String),
    /// The host's bound on the call ran out.
    Timeout(String),
    /// A column with no `pg-value`.
    Conversion(String),
    /// A result over `max_result_bytes`.
    TooLarge(String),
}

impl Failure {
    /// A client error: the server's own errors are about the statement,
    /// except classes 08 (connection exception) and 57P (the server is
    /// going away), which are about the connection.
    fn of(error: tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db)
                if !db.code().code().starts_with("08") && !db.code().code().starts_with("57P") =>
            {
                Self::Database(Box::new(db.clone()))
            }
            _ => Self::Connection(describe_error(&error)),
        }
    }

    /// One line saying what happened.
    fn text(&self) -> String {
        match self {
            Self::Database(db) => describe_db_error(db),
            Self::Params(text)
            | Self::Connection(text)
            | Self::Timeout(text)
            | Self::Conversion(text)
            | Self::TooLarge(text) => text.clone(),
        }
    }

    /// As `0.1.1-draft` says it: the statement's own faults are
    /// `invalid-query`, parameters `invalid-params`, the rest `unexpected`.
    fn into_v1(self) -> QueryError {
        match self {
            Self::Params(text) => QueryError::InvalidParams(text),
            Self::Database(db) => QueryError::InvalidQuery(describe_db_error(&db)),
            other => QueryError::Unexpected(other.text()),
        }
    }
}

/// Checks the count, then encodes each parameter once for its type, so a
/// value that does not fit is named by its number before anything runs.
fn check_params<P: ToSql>(types: &[Type], params: &[P]) -> Result<(), Failure> {
    if types.len() != params.len() {
        return Err(Failure::Params(format!(
            "the statement takes {} parameter(s), {} given",
            types.len(),
            params.len()
        )));
    }
    let mut scratch = bytes::BytesMut::new();
    for (index, (ty, param)) in types.iter().zip(params).enumerate() {
        scratch.clear();
        param.to_sql_checked(ty, &mut scratch).map_err(|e| {
            Failure::Params(format!("parameter ${} (`{}`): {e}", index + 1, ty.name()))
        })?;
    }
    Ok(())
}

/// A column's size on the wire, whatever its type.
struct RawLength(usize);

impl<'a> FromSql<'a> for RawLength {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw.len()))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(0))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn source_text(error: &tokio_postgres::Error) -> String {
    std::error::Error::source(error)
        .map(|source| source.to_string())
        .unwrap_or_else(|| error.to_string())
}

/// A server error as one line: severity, SQLSTATE, message, detail, hint.
fn describe_db_error(db: &tokio_postgres::error::DbError) -> String {
    let mut line = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        line.push_str(&format!(" ({detail})"));
    }
    if let Some(hint) = db.hint() {
        line.push_str(&format!("; hint: {hint}"));
    }
    line
}

/// A client error as one line: the server's (see [`describe_db_error`]),
/// or the client's own (a lost connection) as it is.
fn describe_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => describe_db_error(db),
        None if error.is_closed() => {
            "the connection to the database was lost; the next call reconnects".into()
        }
        None => {
            let text = error.to_string();
            match std::error::Error::source(error) {
                Some(source) if !text.contains(&source.to_string()) => format!("{text}: {source}"),
                _ => text,
            }
        }
    }
}

/// What one component's calls go to, shared by its instances.
struct PostgresBinding(Arc<Shared>);

struct Shared {
    database: Arc<Database>,
    prepared: Mutex<HashMap<String, Prepared>>,
    next_token: AtomicU64,
}

/// A prepared statement: its SQL and the parameter types the server gave.
#[derive(Clone)]
struct Prepared {
    sql: Arc<str>,
    types: Arc<[Type]>,
}

impl Shared {
    fn statements(&self) -> MutexGuard<'_, HashMap<String, Prepared>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prepares `sql` and keeps it under a new token.
    async fn prepare(&self, sql: String) -> Result<String, Failure> {
        if self.statements().len() >= MAX_PREPARED {
            return Err(Failure::TooLarge(format!(
                "this component holds {MAX_PREPARED} prepared statements, the most it may"
            )));
        }
        let types = self.database.prepare_raw(&sql).await?;
        let token = format!("stmt-{}", self.next_token.fetch_add(1, Ordering::Relaxed));
        self.statements().insert(
            token.clone(),
            Prepared {
                sql: sql.into(),
                types: types.into(),
            },
        );
        Ok(token)
    }

    /// The statement prepared under `token`, if this component made it.
    fn statement(&self, token: &str) -> Option<Prepared> {
        self.statements().get(token).cloned()
    }
}

struct PostgresView<'a> {
    binding: Option<&'a PostgresBinding>,
    calls: PluginCalls<'a>,
}

impl PostgresView<'_> {
    fn binding(&self) -> wasmtime::Result<&Arc<Shared>> {
        self.binding.map(|binding| &binding.0).ok_or_else(|| {
            wasmtime::format_err!("wasmcloud:postgres is not bound for this component")
        })
    }
}

impl types::Host for PostgresView<'_> {}

impl query::Host for PostgresView<'_> {
    async fn query(
        &mut self,
        sql: String,
        params: Vec<PgValue>,
    ) -> wasmtime::Result<Result<Vec<ResultRow>, QueryError>> {
        let database = &self.binding()?.database;
        Ok(self
            .calls
            .observe(QUERY, "query", database.query(&sql, &params))
            .await)
    }

    async fn query_batch(&mut self, sql: String) -> wasmtime::Result<Result<(), QueryError>> {
        let database = &self.binding()?.database;
        Ok(self
            .calls
            .observe(QUERY, "query-batch", database.batch(&sql))
            .await)
    }
}

impl prepared::Host for PostgresView<'_> {
    async fn prepare(
        &mut self,
        statement: String,
    ) -> wasmtime::Result<Result<String, StatementPrepareError>> {
        let shared = self.binding()?;
        let prepare = async {
            shared
                .prepare(statement)
                .await
                .map_err(|failure| StatementPrepareError::Unexpected(failure.text()))
        };
        Ok(self.calls.observe(PREPARED, "prepare", prepare).await)
    }

    async fn exec(
        &mut self,
        token: String,
        params: Vec<PgValue>,
    ) -> wasmtime::Result<Result<u64, PreparedStatementExecError>> {
        let shared = self.binding()?;
        let exec = async {
            let statement = shared
                .statement(&token)
                .ok_or(PreparedStatementExecError::UnknownPreparedQuery)?;
            shared
                .database
                .execute(&statement.sql, &statement.types, &params)
                .await
                .map_err(PreparedStatementExecError::QueryError)
        };
        Ok(self.calls.observe(PREPARED, "exec", exec).await)
    }
}

struct HasPostgres;

impl wasmtime::component::HasData for HasPostgres {
    type Data<'a> = PostgresView<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_model::secret::Secret;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_take_the_database_the_password_secret_and_the_limits() {
        let password = Secret::new("s3cret");
        let settings = Settings::resolve(
            Url::Plain("postgres://app@db.internal:6432"),
            &map(&[("database", "shop"), ("statement_timeout_ms", "1500")]),
            Some(&password),
        )
        .unwrap();
        assert_eq!(settings.target(), "app@db.internal:6432/shop");
        assert_eq!(settings.config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(
            settings.config.get_options(),
            Some("-c statement_timeout=1500")
        );
        assert!(!settings.describe().contains("s3cret"));
        assert_eq!(settings.pool_size, DEFAULT_POOL_SIZE);
    }

    #[test]
    fn bad_settings_are_named_without_the_url() {
        let error = Settings::resolve(
            Url::Secret("postgres://u:pw@h:notaport/db"),
            &map(&[]),
            None,
        )
        .err()
        .unwrap();
        assert!(error.starts_with("the `url` secret is not"), "{error}");
        assert!(!error.contains("pw"), "{error}");
        let error = Settings::resolve(
            Url::Plain("postgres://h/db"),
            &map(&[("pool_size", "0")]),
            None,
        )
        .err()
        .unwrap();
        assert_eq!(error, "pool_size `0` is not a positive number");
        let error = Settings::resolve(
            Url::Host("postgres://h/db?sslmode=require"),
            &map(&[("ca_bundle", "/nonexistent/ca.pem")]),
            None,
        )
        .err()
        .unwrap();
        assert!(
            error.starts_with("ca_bundle `/nonexistent/ca.pem`: "),
            "{error}"
        );
        let error = Settings::resolve(
            Url::Plain("postgres://h/db"),
            &map(&[("ca_bundle", "/etc/ssl/certs/ca-certificates.crt")]),
            None,
        )
        .err()
        .unwrap();
        assert_eq!(
            error,
            "ca_bundle is set but the url's sslmode is not `require`"
        );
        assert!(has_password("postgres://u:pw@h/db"));
        assert!(!has_password("postgres://u@h/db"));
    }
}
