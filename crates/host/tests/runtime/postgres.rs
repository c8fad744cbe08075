//! `wasmcloud:postgres` against a real PostgreSQL server (a cluster of its
//! own, made by `initdb`): parameterized queries and the type mapping, the
//! database's errors, prepared statements, the statement timeout, the
//! password from a secret, and what a guest sees when the server goes away
//! and comes back.

use crate::accounting::{sample, scrape};
use crate::common::*;
use bytes::Bytes;
use nimbus_host::secret::Secret;
use nimbus_host::workload::{HostInterface, NamedSources, SourceRef, Workload};
use std::collections::BTreeMap;
use test_programs::servers::{Kind, POSTGRES_PASSWORD, Server};
use test_programs::{P2_POSTGRES, P3_POSTGRES};

/// The `p2_postgres` guest as workload `name` at `name.test`, reaching the
/// server at `url` with `config`; the password comes from the secret
/// source `db`.
fn postgres_workload(name: &str, url: &str, config: &[(&str, &str)]) -> Workload {
    guest_workload(P2_POSTGRES, name, url, config)
}

/// [`postgres_workload`] with another guest.
fn guest_workload(guest: &str, name: &str, url: &str, config: &[(&str, &str)]) -> Workload {
    let mut workload = http_workload(name, guest, &format!("{name}.test"));
    let mut settings: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings.insert("url".into(), url.into());
    workload.spec.host_interfaces.push(HostInterface {
        namespace: "wasmcloud".into(),
        package: "postgres".into(),
        interfaces: vec!["query".into(), "prepared".into()],
        config: settings,
        secret_from: vec![SourceRef { name: "db".into() }],
        ..Default::default()
    });
    workload
}

fn sources(password: &str) -> NamedSources {
    NamedSources {
        secrets: [(
            "db".to_string(),
            [("password".to_string(), Secret::new(password))].into(),
        )]
        .into(),
        ..Default::default()
    }
}

/// The server's URL without its database (the workload's `database` picks it).
fn server_url(server: &Server) -> String {
    format!("postgres://nimbus@{}", server.addr())
}

async fn post(t: &TestHost, workload: &str, path: &str, body: &str) -> (u16, String) {
    let host = format!("{workload}.test");
    let (status, text) = request(
        t.addr,
        Some(&host),
        "POST",
        path,
        Bytes::from(body.to_string()),
    )
    .await;
    (status, text.trim_end().to_string())
}

#[tokio::test]
pub(crate) async fn a_guest_queries_postgres_with_parameters_types_errors_and_prepared_statements()
{
    let Some(server) = Server::start(Kind::Postgres) else {
        return;
    };
    let t = accounting_host().await;
    t.host.set_sources(sources(POSTGRES_PASSWORD));
    let url = server_url(&server);
    t.host
        .start_workload(postgres_workload(
            "pg",
            &url,
            &[("database", "postgres"), ("statement_timeout_ms", "1000")],
        ))
        .await
        .unwrap();
    let run = async |path: &str, body: &str| post(&t, "pg", path, body).await;

    let schema = "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, \
                  price numeric(10,2), tags text[], meta jsonb, added date);";
    assert_eq!(run("/batch", schema).await, (200, "ok".into()));

    // Parameters travel apart from the SQL, each encoded for its column.
    let insert = "INSERT INTO items (name, price, tags, meta, added) VALUES ($1, $2, $3, $4, $5) \
                  RETURNING id, name, price, tags, meta, added\n\
                  text:apple\nnumeric:1.50\ntext-array:red,green\njsonb:{\"origin\": \"kent\"}\n\
                  date:2024-02-29";
    assert_eq!(
        run("/query", insert).await,
        (
            200,
            "id=PgValue::Int8(1), name=PgValue::Text(\"apple\"), price=PgValue::Numeric(\"1.50\"), \
             tags=PgValue::TextArray([\"red\", \"green\"]), \
             meta=PgValue::Jsonb(\"{\\\"origin\\\": \\\"kent\\\"}\"), \
             added=PgValue::Date(Date::Ymd((2024, 2, 29)))"
                .into()
        )
    );

    // An integer variant fits any integer column its value fits; the
    // server's types decide the columns' variants.
    let types = "SELECT $1::int2 AS small, $2::int8 AS big, $3::float8 AS f, $4::bool AS b, \
                 $5::uuid AS u, $6::inet AS a, $7::timestamp AS ts, $8::bytea AS raw, \
                 NULL::text AS nothing, 'x'::varchar AS v\n\
                 int8:7\nint4:-3\nfloat8:-6\nbool:true\n\
                 uuid:67e55044-10b1-426f-9247-bb680e5fe0c8\ninet:10.1.2.3\n\
                 timestamp:2024-02-29 13:05:07\nbytea-hex:00ff10";
    assert_eq!(
        run("/query", types).await,
        (
            200,
            "small=PgValue::Int2(7), big=PgValue::Int8(-3), \
             f=PgValue::Float8((6755399441055744, -50, -1)), b=PgValue::Bool(true), \
             u=PgValue::Uuid(\"67e55044-10b1-426f-9247-bb680e5fe0c8\"), \
             a=PgValue::Inet(\"10.1.2.3\"), \
             ts=PgValue::Timestamp(Timestamp { date: Date::Ymd((2024, 2, 29)), \
             time: Time { hour: 13, min: 5, sec: 7, micro: 0 } }), \
             raw=PgValue::Bytea([0, 255, 16]), nothing=PgValue::Null, \
             v=PgValue::Varchar((None, [120]))"
                .into()
        )
    );

    // A parameter is a value, never SQL.
    let injection = "SELECT name FROM items WHERE name = $1\ntext:apple' OR '1'='1";
    assert_eq!(run("/query", injection).await, (200, String::new()));

    // The database's own errors carry their SQLSTATE.
    let (status, body) = run("/query", insert).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.starts_with("QueryError::InvalidQuery(\"ERROR 23505: duplicate key value"),
        "{body}"
    );
    let (status, body) = run("/query", "SELEKT 1").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("ERROR 42601: syntax error"), "{body}");

    // A value that does not fit, or a missing one, is named before anything runs.
    let (status, body) = run("/query", "SELECT $1::int2\nint8:70000").await;
    assert_eq!(
        (status, body.as_str()),
        (
            500,
            "QueryError::InvalidParams(\"parameter $1 (`int2`): 70000 does not fit in `int2`\")"
        )
    );
    let (status, body) = run("/query", "SELECT $1::text, $2::text\ntext:a").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("takes 2 parameter(s), 1 given"), "{body}");

    // Columns the interface has no variant for say to cast them.
    let (status, body) = run("/query", "SELECT interval '1 day' AS span").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("column `span`: type `interval` has no pg-value"),
        "{body}"
    );

    // Prepared once, executed with different parameters.
    let (status, token) = run(
        "/prepare",
        "UPDATE items SET price = price + $1 WHERE name = $2",
    )
    .await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(
        run(&format!("/exec?token={token}"), "numeric:0.25\ntext:apple").await,
        (200, "1".into())
    );
    assert_eq!(
        run(&format!("/exec?token={token}"), "numeric:1\ntext:pear").await,
        (200, "0".into())
    );
    assert_eq!(
        run(
            "/query",
            "SELECT price FROM items WHERE name = $1\ntext:apple"
        )
        .await,
        (200, "price=PgValue::Numeric(\"1.75\")".into())
    );
    assert_eq!(
        run("/exec?token=stmt-999", "").await,
        (
            500,
            "PreparedStatementExecError::UnknownPreparedQuery".into()
        )
    );

    // The server cancels a statement over the workload's timeout.
    let (status, body) = run("/query", "SELECT pg_sleep(5)").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("57014"), "{body}");
    assert!(body.contains("statement timeout"), "{body}");
    // ...and the connection is good for the next one.
    assert_eq!(
        run("/query", "SELECT 1::int4 AS one").await,
        (200, "one=PgValue::Int4(1)".into())
    );

    // Every call is a plugin call, counted by outcome.
    let metrics = scrape(&t.host.metrics().encode());
    let calls = |interface: &'static str, outcome: &'static str| {
        let labels = [
            ("workload", "pg"),
            ("interface", interface),
            ("outcome", outcome),
        ];
        sample(&metrics, "nimbus_plugin_calls_total", &labels)
    };
    assert_eq!(calls("wasmcloud:postgres/query", "ok"), Some(6.0));
    assert_eq!(calls("wasmcloud:postgres/query", "error"), Some(6.0));
    assert_eq!(calls("wasmcloud:postgres/prepared", "ok"), Some(3.0));
    assert_eq!(calls("wasmcloud:postgres/prepared", "error"), Some(1.0));

    // A wrong password is the server's refusal, and the password is not in it.
    t.host.set_sources(sources("not-the-password"));
    t.host
        .start_workload(postgres_workload(
            "wrong",
            &url,
            &[("database", "postgres")],
        ))
        .await
        .unwrap();
    let (status, body) = post(&t, "wrong", "/query", "SELECT 1").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("28P01"), "{body}");
    assert!(!body.contains("not-the-password"), "{body}");
}

#[tokio::test]
async fn a_lost_server_is_an_error_and_queries_recover_when_it_returns() {
    let Some(mut server) = Server::start(Kind::Postgres) else {
        return;
    };
    let t = TestHost::dynamic().await;
    t.host.set_sources(sources(POSTGRES_PASSWORD));
    t.host
        .start_workload(postgres_workload(
            "pg",
            &server_url(&server),
            &[("database", "postgres"), ("connect_timeout_ms", "1000")],
        ))
        .await
        .unwrap();
    let one = "SELECT 1::int4 AS one";
    let ok = (200, "one=PgValue::Int4(1)".to_string());
    assert_eq!(post(&t, "pg", "/query", one).await, ok);

    server.stop();
    let (status, body) = post(&t, "pg", "/query", one).await;
    assert_eq!(status, 500, "{body}");
    // Refused at connect, or (had the pool not yet seen it close) lost
    // mid-call: either way an `unexpected` error that says so.
    assert!(body.starts_with("QueryError::Unexpected("), "{body}");
    assert!(
        body.contains("cannot reach the database nimbus@127.0.0.1:")
            || body.contains("the connection to the database was lost"),
        "{body}"
    );

    server.restart();
    assert_eq!(post(&t, "pg", "/query", one).await, ok);
}

#[tokio::test]
async fn postgres_settings_are_checked_when_the_workload_starts() {
    let t = TestHost::dynamic().await;
    t.host.set_sources(sources("unused"));
    let refused = async |workload: Workload| {
        t.host
            .start_workload(workload)
            .await
            .unwrap_err()
            .to_string()
    };
    let url = "postgres://nimbus@127.0.0.1:1";
    let message = refused(postgres_workload("bogus", url, &[("bogus", "1")])).await;
    assert!(
        message.contains("postgres: unknown setting `bogus`"),
        "{message}"
    );
    let message = refused(postgres_workload(
        "inline",
        "postgres://nimbus:hunter2@127.0.0.1:1",
        &[],
    ))
    .await;
    assert!(
        message.contains("`config.url` holds a password"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    let mut nowhere = postgres_workload("nowhere", url, &[]);
    for interface in &mut nowhere.spec.host_interfaces {
        interface.config.remove("url");
    }
    let message = refused(nowhere).await;
    assert!(message.contains("no database server"), "{message}");
}

#[tokio::test]
pub(crate) async fn a_p3_guest_gets_rows_as_a_stream_and_typed_errors() {
    let Some(mut server) = Server::start(Kind::Postgres) else {
        return;
    };
    let t = accounting_host().await;
    t.host.set_sources(sources(POSTGRES_PASSWORD));
    t.host
        .start_workload(guest_workload(
            P3_POSTGRES,
            "pg3",
            &server_url(&server),
            &[("database", "postgres"), ("statement_timeout_ms", "1000")],
        ))
        .await
        .unwrap();
    let run = async |path: &str, body: &str| post(&t, "pg3", path, body).await;

    let schema = "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);";
    assert_eq!(run("/batch", schema).await, (200, "ok".into()));
    let insert =
        "INSERT INTO items (name) VALUES ($1), ($2) RETURNING id, name\ntext:apple\ntext:pear";
    assert_eq!(
        run("/query", insert).await,
        (
            200,
            "id=PgValue::Int8(1), name=PgValue::Text(\"apple\")\n\
             id=PgValue::Int8(2), name=PgValue::Text(\"pear\")\n\
             done=Ok(())"
                .into()
        )
    );
    // No rows: the stream ends at once, the future still says how it ended.
    assert_eq!(
        run("/query", "SELECT id FROM items WHERE name = $1\ntext:plum").await,
        (200, "done=Ok(())".into())
    );

    // The server's error, field by field.
    let (status, body) = run("/query", "INSERT INTO items (name) VALUES ($1)\ntext:apple").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.starts_with("Error::QueryFailed(DbError { code: \"23505\", severity: \"ERROR\""),
        "{body}"
    );
    assert!(
        body.contains("(\"constraint\", \"items_name_key\")"),
        "{body}"
    );
    assert_eq!(
        run("/query", "SELECT $1::int2\nint4:70000").await,
        (
            500,
            "Error::InvalidParams(\"parameter $1 (`int2`): 70000 does not fit in `int2`\")".into()
        )
    );
    assert_eq!(
        run("/query", "SELECT pg_sleep(5)").await,
        (500, "Error::Timeout".into())
    );

    let (status, token) = run("/prepare", "DELETE FROM items WHERE name = $1").await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(
        run(&format!("/exec?token={token}"), "text:pear").await,
        (200, "1".into())
    );
    assert_eq!(
        run("/exec?token=stmt-999", "").await,
        (500, "Error::UnknownPreparedStatement".into())
    );

    // Counted like the P2 calls.
    let metrics = scrape(&t.host.metrics().encode());
    let labels = [
        ("workload", "pg3"),
        ("interface", "wasmcloud:postgres/query"),
        ("outcome", "ok"),
    ];
    assert_eq!(
        sample(&metrics, "nimbus_plugin_calls_total", &labels),
        Some(3.0)
    );

    server.stop();
    let (status, body) = run("/query", "SELECT 1").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("Error::ConnectionFailed("), "{body}");
}
