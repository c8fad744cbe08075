//! {{project-name}}: files over HTTP on `wasi:blobstore`.
//!
//! - `PUT /{name}` stores the request body as object `name`,
//! - `GET /{name}` answers with it,
//! - `DELETE /{name}` removes it,
//! - `GET /` lists the objects, one per line.
//!
//! Bodies stream in both directions, so an object may be far larger than
//! the component's memory. Objects live in the container named by
//! `BLOB_CONTAINER` (default `files`, created on first use); the host
//! decides where (memory, a directory, NATS): see `dev.blobstore` in
//! `.nimbus/config.yaml`.

wit_bindgen::generate!({
    inline: r#"
        package nimbus:blobstore-imports;

        world imports {
            import wasi:blobstore/blobstore@0.2.0-draft;
        }
    "#,
    path: ["wit/deps/io", "wit/deps/blobstore"],
    world: "nimbus:blobstore-imports/imports",
    // wstd and the blobstore share one set of wasi:io stream types.
    with: {
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
    },
    generate_all,
});

use wasi::blobstore::blobstore;
use wasi::blobstore::container::Container;
use wasi::blobstore::types::{IncomingValue, OutgoingValue};
use wstd::http::{Body, BodyExt, Error, Method, Request, Response, StatusCode};
use wstd::io::{AsyncInputStream, AsyncOutputStream};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let name = request.uri().path().trim_start_matches('/').to_string();
    let container = match open_container() {
        Ok(container) => container,
        Err(e) => return failed(e),
    };
    match (request.method().clone(), name.as_str()) {
        (Method::GET, "") => match list(&container) {
            Ok(names) => text(StatusCode::OK, names),
            Err(e) => failed(e),
        },
        (_, "") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET / lists the objects\n".into(),
        ),
        (Method::PUT, _) => match upload(&container, &name, request.into_body()).await {
            Ok(size) => text(
                StatusCode::CREATED,
                format!("stored {name} ({size} bytes)\n"),
            ),
            Err(e) => failed(e),
        },
        (Method::GET, _) => match container.has_object(&name) {
            Ok(true) => match download(&container, &name) {
                Ok(body) => Ok(Response::builder()
                    .header("content-type", "application/octet-stream")
                    .body(body)?),
                Err(e) => failed(e),
            },
            Ok(false) => text(StatusCode::NOT_FOUND, format!("no object {name}\n")),
            Err(e) => failed(e),
        },
        (Method::DELETE, _) => match container.delete_object(&name) {
            Ok(()) => text(StatusCode::NO_CONTENT, String::new()),
            Err(e) => failed(e),
        },
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET, PUT or DELETE\n".into(),
        ),
    }
}

fn open_container() -> Result<Container, String> {
    let name = std::env::var("BLOB_CONTAINER").unwrap_or_else(|_| "files".into());
    if blobstore::container_exists(&name)? {
        blobstore::get_container(&name)
    } else {
        blobstore::create_container(&name)
    }
}

/// Streams the request body into a new object, chunk by chunk.
async fn upload(container: &Container, name: &str, body: Body) -> Result<u64, String> {
    let value = OutgoingValue::new_outgoing_value();
    let mut size = 0;
    {
        let stream = value
            .outgoing_value_write_body()
            .map_err(|()| "the object's body was already taken".to_string())?;
        let out = AsyncOutputStream::new(stream);
        let mut body = body.into_boxed_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading the request: {e}"))?;
            if let Some(chunk) = frame.data_ref() {
                out.write_all(chunk).await.map_err(|e| e.to_string())?;
                size += chunk.len() as u64;
            }
        }
        out.flush().await.map_err(|e| e.to_string())?;
    }
    container.write_data(name, &value)?;
    OutgoingValue::finish(value)?;
    Ok(size)
}

/// The object as a response body that streams from the store.
fn download(container: &Container, name: &str) -> Result<Body, String> {
    let value = container.get_data(name, 0, u64::MAX)?;
    let stream = IncomingValue::incoming_value_consume_async(value)?;
    Ok(Body::from(AsyncInputStream::new(stream)))
}

fn list(container: &Container) -> Result<String, String> {
    let names = container.list_objects()?;
    let mut all = Vec::new();
    loop {
        let (page, done) = names.read_stream_object_names(100)?;
        all.extend(page);
        if done {
            break;
        }
    }
    all.sort();
    Ok(all.into_iter().map(|n| n + "\n").collect())
}

/// A 500 carrying the blobstore's error.
fn failed(error: String) -> Result<Response<Body>, Error> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("blobstore: {error}\n"),
    )
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body))?)
}
