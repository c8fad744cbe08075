//! The `pg-value` mapping and the call bounds against a real PostgreSQL
//! server: each mapped type sent as a parameter comes back as the variant
//! of its column type, unchanged; values are encoded for the parameter's
//! type; what has no mapping is refused with a reason; results, pools and
//! statements are bounded.

use nimbus_postgres::types::{
    Date, MacAddressEui48, MacAddressEui64, Offset, Time, TimeTz, Timestamp, TimestampTz,
};
use nimbus_postgres::{Database, PgValue, QueryError, hashable_f32, hashable_f64};
use test_programs::servers::{Kind, POSTGRES_PASSWORD, POSTGRES_USER, Server};

fn url(server: &Server) -> String {
    format!(
        "postgres://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{}/postgres",
        server.addr()
    )
}

/// `SELECT $1::TYPE AS v` → the value of `v`.
async fn echo(db: &Database, ty: &str, value: PgValue) -> Result<PgValue, QueryError> {
    let rows = db.query(&format!("SELECT $1::{ty} AS v"), &[value]).await?;
    let mut row = rows.into_iter().next().expect("one row");
    assert_eq!(row.len(), 1);
    assert_eq!(row[0].column_name, "v");
    Ok(row.remove(0).value)
}

fn point(x: f64, y: f64) -> nimbus_postgres::types::Point {
    (hashable_f64(x), hashable_f64(y))
}

fn time(hour: u32, min: u32, sec: u32, micro: u32) -> Time {
    Time {
        hour,
        min,
        sec,
        micro,
    }
}

#[tokio::test]
async fn every_mapped_type_comes_back_as_it_went() {
    let Some(server) = Server::start(Kind::Postgres) else {
        return;
    };
    let db = Database::connect(&url(&server), &[]).unwrap();
    db.batch(
        "CREATE EXTENSION hstore; CREATE TYPE mood AS ENUM ('calm', 'glad'); \
         CREATE DOMAIN positive AS int4 CHECK (VALUE > 0);",
    )
    .await
    .unwrap();
    let stamp = Timestamp {
        date: Date::Ymd((2024, 2, 29)),
        time: time(23, 59, 58, 123_456),
    };
    let same = [
        ("int2", PgValue::Int2(-7)),
        ("int4", PgValue::Int4(i32::MIN)),
        ("int8", PgValue::Int8(i64::MAX)),
        ("bool", PgValue::Bool(false)),
        ("float4", PgValue::Float4(hashable_f32(1.25))),
        ("float8", PgValue::Float8(hashable_f64(-1e-300))),
        (
            "numeric",
            PgValue::Numeric("-98765432109876543210.000123".into()),
        ),
        ("numeric", PgValue::Numeric("NaN".into())),
        ("money", PgValue::Money("-12.34".into())),
        ("text", PgValue::Text("héllo, 世界".into())),
        ("varchar", PgValue::Varchar((None, b"abc".to_vec()))),
        ("char(3)", PgValue::Char((3, b"ab ".to_vec()))),
        ("name", PgValue::Name("pg_class".into())),
        ("json", PgValue::Json("{\"a\":[1,2]}".into())),
        ("jsonb", PgValue::Jsonb("{\"a\": [1, 2]}".into())),
        ("bytea", PgValue::Bytea(vec![0, 1, 254, 255])),
        (
            "uuid",
            PgValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        ),
        ("date", PgValue::Date(Date::Ymd((1999, 12, 31)))),
        ("date", PgValue::Date(Date::PositiveInfinity)),
        ("time", PgValue::Time(time(13, 5, 7, 250))),
        (
            "timetz",
            PgValue::TimeTz(TimeTz {
                timesonze: "+05:30".into(),
                time: time(8, 0, 0, 0),
            }),
        ),
        ("timestamp", PgValue::Timestamp(stamp)),
        (
            "timestamptz",
            PgValue::TimestampTz(TimestampTz {
                timestamp: stamp,
                offset: Offset::EasternHemisphereSecs(0),
            }),
        ),
        ("inet", PgValue::Inet("10.1.2.3".into())),
        ("inet", PgValue::Inet("2001:db8::1/64".into())),
        ("cidr", PgValue::Cidr("10.1.0.0/16".into())),
        (
            "macaddr",
            PgValue::Macaddr(MacAddressEui48 {
                bytes: (8, 0, 0x2b, 1, 2, 3),
            }),
        ),
        (
            "macaddr8",
            PgValue::Macaddr8(MacAddressEui64 {
                bytes: (8, 0, 0x2b, 1, 2, 3, 4, 5),
            }),
        ),
        ("point", PgValue::Point(point(1.5, -2.0))),
        ("box", PgValue::Box((point(0.0, 0.0), point(2.0, 3.0)))),
        ("lseg", PgValue::Lseg((point(0.0, 0.0), point(2.0, 3.0)))),
        ("line", PgValue::Line((point(0.0, 0.0), point(1.0, 1.0)))),
        (
            "circle",
            PgValue::Circle((point(1.0, 1.0), hashable_f64(2.5))),
        ),
        (
            "path",
            PgValue::Path(vec![point(0.0, 0.0), point(1.0, 2.0)]),
        ),
        (
            "polygon",
            PgValue::Polygon(vec![point(0.0, 0.0), point(1.0, 0.0), point(0.0, 1.0)]),
        ),
        ("bit(4)", PgValue::Bit((4, vec![0xa0]))),
        ("varbit", PgValue::Varbit((Some(10), vec![0xff, 0xc0]))),
        ("pg_lsn", PgValue::PgLsn(0x16_b374_d848)),
        ("int2vector", PgValue::Int2Vector(vec![1, 2, 3])),
        (
            "hstore",
            PgValue::Hstore(vec![("a".into(), Some("1".into())), ("b".into(), None)]),
        ),
        ("int4[]", PgValue::Int4Array(vec![1, -2, 3])),
        ("int8[]", PgValue::Int8Array(vec![])),
        ("text[]", PgValue::TextArray(vec!["a".into(), "b c".into()])),
        ("bool[]", PgValue::BoolArray(vec![true, false])),
        ("float8[]", PgValue::Float8Array(vec![hashable_f64(0.5)])),
        (
            "numeric[]",
            PgValue::NumericArray(vec!["1.5".into(), "-2".into()]),
        ),
        (
            "uuid[]",
            PgValue::UuidArray(vec!["00000000-0000-0000-0000-000000000001".into()]),
        ),
        ("date[]", PgValue::DateArray(vec![Date::Ymd((2000, 1, 1))])),
        ("timestamp[]", PgValue::TimestampArray(vec![stamp])),
        ("jsonb[]", PgValue::JsonbArray(vec!["{\"k\": true}".into()])),
        ("inet[]", PgValue::InetArray(vec!["::1".into()])),
        ("bytea[]", PgValue::ByteaArray(vec![vec![1, 2], vec![]])),
        ("positive", PgValue::Int4(3)),
        ("int4", PgValue::Null),
    ];
    for (ty, value) in same {
        let back = echo(&db, ty, value.clone()).await;
        assert_eq!(back, Ok(value), "{ty}");
    }

    // Encoded for the parameter's type, decoded as the column's.
    let converted = [
        ("int8", PgValue::Int2(7), PgValue::Int8(7)),
        ("int2", PgValue::Int8(-300), PgValue::Int2(-300)),
        ("numeric", PgValue::Int4(42), PgValue::Numeric("42".into())),
        ("int4", PgValue::Numeric("42".into()), PgValue::Int4(42)),
        (
            "float8",
            PgValue::Int8(3),
            PgValue::Float8(hashable_f64(3.0)),
        ),
        (
            "numeric",
            PgValue::Float8(hashable_f64(2.5)),
            PgValue::Numeric("2.5".into()),
        ),
        (
            "uuid",
            PgValue::Text("67E55044-10B1-426F-9247-BB680E5FE0C8".into()),
            PgValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        ),
        ("text", PgValue::Uuid("u".into()), PgValue::Text("u".into())),
        (
            "mood",
            PgValue::Text("glad".into()),
            PgValue::Text("glad".into()),
        ),
        ("int4", PgValue::Serial(9), PgValue::Int4(9)),
        (
            "timestamptz",
            PgValue::TimestampTz(TimestampTz {
                timestamp: Timestamp {
                    date: Date::Ymd((2024, 1, 1)),
                    time: time(10, 0, 0, 0),
                },
                offset: Offset::EasternHemisphereSecs(2 * 3600),
            }),
            PgValue::TimestampTz(TimestampTz {
                timestamp: Timestamp {
                    date: Date::Ymd((2024, 1, 1)),
                    time: time(8, 0, 0, 0),
                },
                offset: Offset::EasternHemisphereSecs(0),
            }),
        ),
    ];
    for (ty, value, expected) in converted {
        assert_eq!(
            echo(&db, ty, value.clone()).await,
            Ok(expected),
            "{ty} from {value:?}"
        );
    }

    // What does not fit, or has no mapping, says so.
    let refused = [
        (
            "int2",
            PgValue::Int4(40_000),
            "40000 does not fit in `int2`",
        ),
        (
            "int4",
            PgValue::Text("1".into()),
            "text cannot be sent as `int4`",
        ),
        ("uuid", PgValue::Uuid("nope".into()), "`nope` is not a UUID"),
        (
            "date",
            PgValue::Date(Date::Ymd((2023, 2, 29))),
            "2023-2-29 is not a date",
        ),
        (
            "numeric",
            PgValue::Numeric("1e5".into()),
            "`1e5` is not a decimal number",
        ),
        (
            "int4",
            PgValue::Int4Array(vec![1]),
            "an array (this variant's) cannot be sent as `int4`",
        ),
    ];
    for (ty, value, why) in refused {
        match echo(&db, ty, value.clone()).await {
            Err(QueryError::InvalidParams(message)) => {
                assert!(message.ends_with(why), "{ty} from {value:?}: {message}")
            }
            other => panic!("{ty} from {value:?}: {other:?}"),
        }
    }
    let interval = db.query("SELECT interval '1 day' AS v", &[]).await;
    assert!(
        matches!(&interval, Err(QueryError::Unexpected(m)) if m.contains("type `interval` has no pg-value")),
        "{interval:?}"
    );
    let nulls = db.query("SELECT ARRAY[1, NULL]::int4[] AS v", &[]).await;
    assert!(
        matches!(&nulls, Err(QueryError::Unexpected(m)) if m.contains("NULL elements")),
        "{nulls:?}"
    );
}

#[tokio::test]
async fn results_pools_and_statements_are_bounded() {
    let Some(server) = Server::start(Kind::Postgres) else {
        return;
    };
    let db = Database::connect(
        &url(&server),
        &[
            ("max_result_bytes", "10000"),
            ("pool_size", "1"),
            ("connect_timeout_ms", "300"),
            ("statement_timeout_ms", "1000"),
        ],
    )
    .unwrap();
    // The pool waits 300 ms for a connection, which a loaded machine may
    // need more than to make the first (a server fork and SCRAM): make it
    // before anything that is checked.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while let Err(error) = db.query("SELECT 1", &[]).await {
        assert!(
            std::time::Instant::now() < deadline,
            "no connection within 20 s: {error:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A result over the cap is refused, not buffered.
    let big = db
        .query(
            "SELECT repeat('x', 100) AS v FROM generate_series(1, 1000)",
            &[],
        )
        .await;
    assert!(
        matches!(&big, Err(QueryError::Unexpected(m)) if m.contains("over 10000 bytes")),
        "{big:?}"
    );
    let small = db
        .query(
            "SELECT repeat('x', 100) AS v FROM generate_series(1, 10)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(small.len(), 10);

    // The server stops a statement over its timeout.
    let slow = db.query("SELECT pg_sleep(3)", &[]).await;
    assert!(
        matches!(&slow, Err(QueryError::InvalidQuery(m)) if m.starts_with("ERROR 57014")),
        "{slow:?}"
    );

    // The one connection busy: the next caller waits at most the connect timeout.
    let (held, waited) = tokio::join!(db.query("SELECT pg_sleep(0.6)", &[]), async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        db.query("SELECT 1", &[]).await
    });
    assert_eq!(
        held.map(|rows| rows[0][0].value.clone()),
        Ok(PgValue::Null),
        "pg_sleep returns void"
    );
    assert!(
        matches!(&waited, Err(QueryError::Unexpected(m)) if m.contains("no connection became free")),
        "{waited:?}"
    );
    // Free again afterwards.
    assert!(db.query("SELECT 1", &[]).await.is_ok());

    // A batch runs several statements; a parameterized statement is one.
    db.batch("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();
    let types = db.prepare("UPDATE t SET n = n + $1").await.unwrap();
    assert_eq!(
        db.execute("UPDATE t SET n = n + $1", &types, &[PgValue::Int4(1)])
            .await,
        Ok(2)
    );
    let many = db.query("SELECT 1; SELECT 2", &[]).await;
    assert!(
        matches!(&many, Err(QueryError::InvalidQuery(m)) if m.contains("42601")),
        "{many:?}"
    );
}

#[tokio::test]
async fn with_sslmode_require_the_server_certificate_is_checked() {
    use test_programs::tls_echo::TestCertificate;
    let Some(mut server) = Server::start(Kind::Postgres) else {
        return;
    };
    let issued = TestCertificate::issue(&["localhost"]);
    server.enable_postgres_tls(&issued.cert_pem, &issued.key_pem);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &issued.ca_pem).unwrap();
    let bundle = bundle.to_str().unwrap();
    let url = |host: &str, mode: &str| {
        format!(
            "postgres://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{host}:{}/postgres?hostaddr=127.0.0.1&sslmode={mode}",
            server.addr().port()
        )
    };
    let encrypted = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let ssl = async |db: &Database| {
        db.query(encrypted, &[])
            .await
            .map(|rows| rows[0][0].value.clone())
    };

    // Trusted through the bundle, and named: encrypted.
    let db = Database::connect(&url("localhost", "require"), &[("ca_bundle", bundle)]).unwrap();
    assert_eq!(ssl(&db).await, Ok(PgValue::Bool(true)));

    // The system's roots alone do not know the test CA.
    let db = Database::connect(&url("localhost", "require"), &[]).unwrap();
    let refused = ssl(&db).await;
    assert!(
        matches!(&refused, Err(QueryError::Unexpected(m)) if m.contains("invalid peer certificate: UnknownIssuer")),
        "{refused:?}"
    );

    // A host the certificate does not name.
    let db = Database::connect(
        &url("nimbus-test.localhost", "require"),
        &[("ca_bundle", bundle)],
    )
    .unwrap();
    let refused = ssl(&db).await;
    assert!(
        matches!(&refused, Err(QueryError::Unexpected(m)) if m.contains("certificate not valid for name")),
        "{refused:?}"
    );

    // sslmode=disable: plain, as asked.
    let db = Database::connect(&url("localhost", "disable"), &[]).unwrap();
    assert_eq!(ssl(&db).await, Ok(PgValue::Bool(false)));
}
