//! {{project-name}}: an HTTP component with several routes, JSON in and out.
//!
//! - `GET /`                → service info
//! - `GET /hello/{name}`    → `{"greeting": "Hello, {name}!"}`
//! - `POST /echo`           → the JSON body back, with its size
//! - anything else          → 404 `{"error": ...}`

use serde::{Deserialize, Serialize};
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

#[derive(Serialize)]
struct Info {
    service: &'static str,
    routes: [&'static str; 3],
}

#[derive(Serialize)]
struct Greeting {
    greeting: String,
}

#[derive(Serialize, Deserialize)]
struct Echo {
    received: serde_json::Value,
    bytes: usize,
}

#[derive(Serialize)]
struct Problem {
    error: String,
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::GET, [""]) => json(
            StatusCode::OK,
            &Info {
                service: "{{project-name}}",
                routes: ["GET /", "GET /hello/{name}", "POST /echo"],
            },
        ),
        (Method::GET, ["hello", name]) if !name.is_empty() => json(
            StatusCode::OK,
            &Greeting {
                greeting: format!("Hello, {name}!"),
            },
        ),
        (Method::POST, ["echo"]) => {
            let bytes = request.into_body().contents().await?.to_vec();
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(received) => json(
                    StatusCode::OK,
                    &Echo {
                        received,
                        bytes: bytes.len(),
                    },
                ),
                Err(e) => json(
                    StatusCode::BAD_REQUEST,
                    &Problem {
                        error: format!("body is not JSON: {e}"),
                    },
                ),
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &Problem {
                error: format!("no route for {path}"),
            },
        ),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, Error> {
    let body = serde_json::to_vec(value)?;
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))?)
}
