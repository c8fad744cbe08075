//! `wasi:http/incoming-handler@0.2` component (wstd) that runs SQL through
//! `wasmcloud:postgres@0.1.1-draft`, for the host's Postgres tests.
//!
//! The request body's first line is SQL; each further line is a parameter
//! written `TYPE:VALUE` (see `param`).
//!
//! - `POST /query`: runs it; 200 with one line per row, each column as
//!   `name=VALUE` (the value's debug form) joined by `, `.
//! - `POST /batch`: runs the SQL as a batch; 200 `ok`.
//! - `POST /prepare`: prepares the SQL; 200 with the token.
//! - `POST /exec?token=T`: every line of the body is a parameter of the
//!   prepared statement `T`; 200 with the count of rows changed.
//!
//! Any error answers 500 with the error's debug form.

wit_bindgen::generate!({
    path: "../../capabilities/postgres/wit",
    world: "wasmcloud:postgres/imports",
});

use wasmcloud::postgres::types::{Date, PgValue, Time, Timestamp};
use wasmcloud::postgres::{prepared, query};
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_string();
    let query_string = request.uri().query().unwrap_or("").to_string();
    let mut body = request.into_body();
    let body = String::from_utf8_lossy(body.contents().await?).into_owned();
    let mut lines = body.lines();
    let outcome = match path.as_str() {
        "/query" => {
            let sql = lines.next().unwrap_or("");
            match lines.map(param).collect::<Result<Vec<_>, _>>() {
                Ok(params) => query::query(sql, &params)
                    .map(|rows| render(&rows))
                    .map_err(|e| format!("{e:?}")),
                Err(bad) => Err(bad),
            }
        }
        "/batch" => query::query_batch(&body)
            .map(|()| "ok".to_string())
            .map_err(|e| format!("{e:?}")),
        "/prepare" => prepared::prepare(lines.next().unwrap_or("")).map_err(|e| format!("{e:?}")),
        "/exec" => {
            let token = query_string
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .unwrap_or("")
                .to_string();
            match lines.map(param).collect::<Result<Vec<_>, _>>() {
                Ok(params) => prepared::exec(&token, &params)
                    .map(|count| count.to_string())
                    .map_err(|e| format!("{e:?}")),
                Err(bad) => Err(bad),
            }
        }
        _ => Err("no such route".into()),
    };
    let (status, text) = match outcome {
        Ok(text) => (StatusCode::OK, text),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error),
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(format!("{text}\n")))?)
}

fn render(rows: &[Vec<wasmcloud::postgres::types::ResultRowEntry>]) -> String {
    rows.iter()
        .map(|row| {
            row.iter()
                .map(|entry| format!("{}={:?}", entry.column_name, entry.value))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `TYPE:VALUE`: `null:`, `int8:5`, `int4:5`, `int2:5`, `bool:true`,
/// `float8:1.5`, `numeric:12.50`, `text:hi`, `varchar:hi`, `json:{..}`,
/// `jsonb:{..}`, `uuid:…`, `bytea-hex:00ff`, `date:2024-02-29`,
/// `time:13:05:07`, `timestamp:2024-02-29 13:05:07`, `inet:10.0.0.1`,
/// `int8-array:1,2,3`, `text-array:a,b`.
fn param(line: &str) -> Result<PgValue, String> {
    let (kind, value) = line
        .split_once(':')
        .ok_or_else(|| format!("parameter `{line}` is not TYPE:VALUE"))?;
    let number = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("`{v}` is not an integer"))
    };
    Ok(match kind {
        "null" => PgValue::Null,
        "int8" => PgValue::Int8(number(value)?),
        "int4" => PgValue::Int4(number(value)? as i32),
        "int2" => PgValue::Int2(number(value)? as i16),
        "bool" => PgValue::Bool(value == "true"),
        "float8" => {
            let float: f64 = value
                .parse()
                .map_err(|_| format!("`{value}` is not a float"))?;
            PgValue::Float8(hashable(float))
        }
        "numeric" => PgValue::Numeric(value.into()),
        "text" => PgValue::Text(value.into()),
        "varchar" => PgValue::Varchar((None, value.as_bytes().to_vec())),
        "json" => PgValue::Json(value.into()),
        "jsonb" => PgValue::Jsonb(value.into()),
        "uuid" => PgValue::Uuid(value.into()),
        "inet" => PgValue::Inet(value.into()),
        "bytea-hex" => PgValue::Bytea(
            (0..value.len() / 2)
                .map(|i| u8::from_str_radix(&value[i * 2..i * 2 + 2], 16))
                .collect::<Result<_, _>>()
                .map_err(|_| format!("`{value}` is not hex"))?,
        ),
        "date" => PgValue::Date(date(value)?),
        "time" => PgValue::Time(time(value)?),
        "timestamp" => {
            let (day, clock) = value
                .split_once(' ')
                .ok_or_else(|| format!("`{value}` is not `DATE TIME`"))?;
            PgValue::Timestamp(Timestamp {
                date: date(day)?,
                time: time(clock)?,
            })
        }
        "int8-array" => PgValue::Int8Array(value.split(',').map(number).collect::<Result<_, _>>()?),
        "text-array" => PgValue::TextArray(value.split(',').map(String::from).collect()),
        other => return Err(format!("unknown parameter type `{other}`")),
    })
}

fn date(text: &str) -> Result<Date, String> {
    let parts: Vec<&str> = text.split('-').collect();
    match parts.as_slice() {
        [y, m, d] => Ok(Date::Ymd((
            y.parse().map_err(|_| format!("bad year in `{text}`"))?,
            m.parse().map_err(|_| format!("bad month in `{text}`"))?,
            d.parse().map_err(|_| format!("bad day in `{text}`"))?,
        ))),
        _ => Err(format!("`{text}` is not YYYY-MM-DD")),
    }
}

fn time(text: &str) -> Result<Time, String> {
    let parts: Vec<u32> = text
        .split(':')
        .map(|p| p.parse().map_err(|_| format!("`{text}` is not HH:MM:SS")))
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [hour, min, sec] => Ok(Time {
            hour: *hour,
            min: *min,
            sec: *sec,
            micro: 0,
        }),
        _ => Err(format!("`{text}` is not HH:MM:SS")),
    }
}

/// wasmCloud's `hashable-f64`: mantissa, exponent, sign.
fn hashable(value: f64) -> (u64, i16, i8) {
    let bits = value.to_bits();
    let sign = if bits >> 63 == 0 { 1 } else { -1 };
    let biased = ((bits >> 52) & 0x7ff) as i16;
    let fraction = bits & 0x000f_ffff_ffff_ffff;
    let mantissa = if biased == 0 {
        fraction << 1
    } else {
        fraction | 0x0010_0000_0000_0000
    };
    (mantissa, biased - 1075, sign)
}
