//! `wasmcloud:postgres@0.2.0` from a `wasi:http/service@0.3.0` component
//! (wasip3 0.9): every call is an `async` function and a query's rows
//! arrive as a `stream<row>`.
//!
//! The request body's first line is SQL; each further line is a parameter
//! `TYPE:VALUE` (`null:`, `int8:5`, `int4:5`, `bool:true`, `text:hi`,
//! `numeric:1.5`, `text-array:a,b`).
//!
//! - `POST /query`: 200 with one line per row, each column `name=VALUE`
//!   (the value's debug form) joined by `, `, then the completion
//!   future's debug form on a last line.
//! - `POST /batch`, `POST /prepare`, `POST /exec?token=T`: as in
//!   `p2_postgres`.
//!
//! Any error answers 500 with the error's debug form.

#[path = "../shared/p3_response.rs"]
mod response;

use response::text_response;
use wasip3::http::types::{ErrorCode, Request, Response};

wit_bindgen_p3::generate!({
    inline: "
        package nimbus:test-postgres;
        world guest {
            import wasmcloud:postgres/query@0.2.0;
            import wasmcloud:postgres/prepared@0.2.0;
        }
    ",
    path: "../../capabilities/postgres/wit-0.2.0",
    world: "nimbus:test-postgres/guest",
    runtime_path: "wit_bindgen_p3::rt",
    generate_all,
});

use wasmcloud::postgres::types::PgValue;
use wasmcloud::postgres::{prepared, query};

struct Service;

wasip3::http::service::export!(Service);

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_and_query = request.get_path_with_query().unwrap_or_default();
        let (path, query_string) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query.as_str(), ""));
        let token = query_string
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .unwrap_or("")
            .to_string();
        let (body, _trailers) =
            Request::consume_body(request, wasip3::wit_future::new(|| Ok(())).1);
        let body = String::from_utf8_lossy(&body.collect().await).into_owned();
        let mut lines = body.lines();
        let outcome = match path {
            "/query" => {
                let sql = lines.next().unwrap_or("").to_string();
                match lines.map(param).collect::<Result<Vec<_>, _>>() {
                    Ok(params) => run_query(sql, params).await,
                    Err(bad) => Err(bad),
                }
            }
            "/batch" => query::query_batch(body.clone())
                .await
                .map(|()| "ok".to_string())
                .map_err(|e| format!("{e:?}")),
            "/prepare" => prepared::prepare(lines.next().unwrap_or("").to_string())
                .await
                .map_err(|e| format!("{e:?}")),
            "/exec" => match lines.map(param).collect::<Result<Vec<_>, _>>() {
                Ok(params) => prepared::exec(token, params)
                    .await
                    .map(|count| count.to_string())
                    .map_err(|e| format!("{e:?}")),
                Err(bad) => Err(bad),
            },
            _ => Err("no such route".into()),
        };
        Ok(match outcome {
            Ok(text) => text_response(200, format!("{text}\n").into_bytes()),
            Err(error) => text_response(500, format!("{error}\n").into_bytes()),
        })
    }
}

/// Runs a query and renders its rows, then how its completion future ended.
async fn run_query(sql: String, params: Vec<PgValue>) -> Result<String, String> {
    let (columns, rows, done) = query::query(sql, params)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let rows = rows.collect().await;
    let mut lines: Vec<String> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .zip(row)
                .map(|(name, value)| format!("{name}={value:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    lines.push(format!("done={:?}", done.await));
    Ok(lines.join("\n"))
}

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
        "bool" => PgValue::Bool(value == "true"),
        "text" => PgValue::Text(value.into()),
        "numeric" => PgValue::Numeric(value.into()),
        "text-array" => PgValue::TextArray(value.split(',').map(String::from).collect()),
        other => return Err(format!("unknown parameter type `{other}`")),
    })
}

fn main() {
    unreachable!("a wasi:http/service component is entered through its export")
}
