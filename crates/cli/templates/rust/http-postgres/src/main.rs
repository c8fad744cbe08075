//! {{project-name}}: a notes service on `wasmcloud:postgres`.
//!
//! - `GET /notes`: every note, as JSON.
//! - `POST /notes` (the body is the note): stores it, answers `{"id":N}`.
//! - `GET /notes/{id}`, `DELETE /notes/{id}`: one note.
//!
//! The `notes` table is made the first time a query finds it missing.
//! The host decides which server and database (see `.nimbus/config.yaml`).

wit_bindgen::generate!({
    inline: r#"
        package nimbus:notes-imports;

        world imports {
            import wasmcloud:postgres/query@0.1.1-draft;
        }
    "#,
    path: "wit/deps/postgres",
    world: "nimbus:notes-imports/imports",
    generate_all,
});

use wasmcloud::postgres::query::{self, PgValue, QueryError, ResultRow};
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, body text NOT NULL)";

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_string();
    let mut body = request.into_body();
    let text = String::from_utf8_lossy(body.contents().await?).into_owned();
    let id = path.strip_prefix("/notes/").map(|id| id.parse::<i64>());

    let answer = match (method, path.as_str(), id) {
        (Method::GET, "/notes", _) => run("SELECT id, body FROM notes ORDER BY id", vec![])
            .map(|rows| (StatusCode::OK, format!("[{}]", rows.iter().map(note).collect::<Vec<_>>().join(",")))),
        (Method::POST, "/notes", _) if text.is_empty() => {
            Ok((StatusCode::BAD_REQUEST, error_json("the note is empty")))
        }
        (Method::POST, "/notes", _) => run(
            "INSERT INTO notes (body) VALUES ($1) RETURNING id",
            vec![PgValue::Text(text)],
        )
        .map(|rows| {
            let id = rows.first().map(|row| int(row, "id")).unwrap_or_default();
            (StatusCode::CREATED, format!("{{\"id\":{id}}}"))
        }),
        (Method::GET, _, Some(Ok(id))) => {
            run("SELECT id, body FROM notes WHERE id = $1", vec![PgValue::Int8(id)]).map(|rows| {
                match rows.first() {
                    Some(row) => (StatusCode::OK, note(row)),
                    None => (StatusCode::NOT_FOUND, error_json("no such note")),
                }
            })
        }
        (Method::DELETE, _, Some(Ok(id))) => run(
            "DELETE FROM notes WHERE id = $1 RETURNING id",
            vec![PgValue::Int8(id)],
        )
        .map(|rows| match rows.is_empty() {
            false => (StatusCode::NO_CONTENT, String::new()),
            true => (StatusCode::NOT_FOUND, error_json("no such note")),
        }),
        (_, _, Some(Err(_))) => Ok((StatusCode::BAD_REQUEST, error_json("a note id is a number"))),
        _ => Ok((StatusCode::NOT_FOUND, error_json("try /notes"))),
    };
    let (status, json) = answer.unwrap_or_else(|error| match error {
        // The host could not reach the database, or lost it mid-call.
        QueryError::Unexpected(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            error_json(&format!("database unavailable: {why}")),
        ),
        QueryError::InvalidQuery(why) | QueryError::InvalidParams(why) => {
            (StatusCode::INTERNAL_SERVER_ERROR, error_json(&why))
        }
    });
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(json))?)
}

/// Runs a query; when the table is missing (SQLSTATE 42P01), makes it and
/// runs the query again.
fn run(sql: &str, params: Vec<PgValue>) -> Result<Vec<ResultRow>, QueryError> {
    match query::query(sql, &params) {
        Err(QueryError::InvalidQuery(why)) if why.contains("42P01") => {
            query::query_batch(SCHEMA)?;
            query::query(sql, &params)
        }
        other => other,
    }
}

fn note(row: &ResultRow) -> String {
    format!(
        "{{\"id\":{},\"body\":{}}}",
        int(row, "id"),
        json_string(&text(row, "body"))
    )
}

fn int(row: &ResultRow, column: &str) -> i64 {
    row.iter()
        .find(|entry| entry.column_name == column)
        .and_then(|entry| match entry.value {
            PgValue::Int8(n) => Some(n),
            _ => None,
        })
        .unwrap_or_default()
}

fn text(row: &ResultRow, column: &str) -> String {
    row.iter()
        .find(|entry| entry.column_name == column)
        .and_then(|entry| match &entry.value {
            PgValue::Text(text) => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn error_json(message: &str) -> String {
    format!("{{\"error\":{}}}", json_string(message))
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
