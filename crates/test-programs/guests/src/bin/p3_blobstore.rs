//! `wasmcloud:blobstore@0.1.0` from a `wasi:http/service@0.3.0` component
//! (wasip3 0.9): every call an `async` function, bodies as `stream<u8>`.
//! Request and response bodies are handed to the blobstore and back as
//! the very streams `wasi:http` gives, so nothing is held whole in the
//! guest.
//!
//! - `PUT /o/C/NAME`: stores the request body (creating container C if it
//!   does not exist); 204.
//! - `GET /o/C/NAME[?start=S&end=E]`: the object (or bytes S..=E) as the
//!   response body; 200.
//! - `GET /info/C/NAME`: `SIZE CREATED_NS`; `GET /exists/C/NAME`: `true`
//!   or `false`; `GET /list/C`: the sorted names, one per line.
//! - `POST /copy/C/NAME?to=D/OTHER`, `POST /move/C/NAME?to=D/OTHER`: 204.
//! - `DELETE /o/C/NAME`, `DELETE /c/C` (the container), `POST /clear/C`: 204.
//! - `POST /create/C`: creates C; `GET /container/C`: the container's name
//!   and creation time, as `NAME CREATED_NS`.
//!
//! A blobstore error answers 502 with the error's debug form
//! (`Error::NoSuchObject`); an unknown path 404.

#[path = "../shared/p3_response.rs"]
mod response;

use response::stream_response;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};

wit_bindgen_p3::generate!({
    inline: "
        package nimbus:test-blobstore;
        world guest {
            import wasmcloud:blobstore/blobstore@0.1.0;
        }
    ",
    path: "../../capabilities/blobstore/wit-0.1.0",
    world: "nimbus:test-blobstore/guest",
    runtime_path: "wit_bindgen_p3::rt",
    generate_all,
});

use wasmcloud::blobstore::blobstore;
use wasmcloud::blobstore::container::Container;
use wasmcloud::blobstore::types::{Error, ObjectId};

struct Service;

wasip3::http::service::export!(Service);

/// What a route answers: a status and a body stream, or a blobstore error.
type Answer = Result<(u16, Option<wasip3::wit_bindgen::StreamReader<u8>>), Error>;

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let method = format!("{:?}", request.get_method());
        let path_and_query = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query.as_str(), ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let parts: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
        let (body, _trailers) =
            Request::consume_body(request, wasip3::wit_future::new(|| Ok(())).1);
        let answer: Answer = match (method.as_str(), parts.as_slice()) {
            ("Method::Put", ["o", container, name]) => {
                let container = open_or_create(container).await;
                match container {
                    Ok(container) => container
                        .write_data(name.to_string(), body)
                        .await
                        .map(|()| (204, None)),
                    Err(error) => Err(error),
                }
            }
            ("Method::Get", ["o", container, name]) => {
                let start = param("start").and_then(|s| s.parse().ok()).unwrap_or(0);
                let end = param("end")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                match blobstore::get_container(container.to_string()).await {
                    Ok(container) => container
                        .get_data(name.to_string(), start, end)
                        .await
                        .map(|data| (200, Some(data))),
                    Err(error) => Err(error),
                }
            }
            ("Method::Get", ["info", container, name]) => {
                with_container(container, async |c| {
                    let info = c.object_info(name.to_string()).await?;
                    text(200, format!("{} {}", info.size, info.created_at))
                })
                .await
            }
            ("Method::Get", ["exists", container, name]) => {
                with_container(container, async |c| {
                    let found = c.has_object(name.to_string()).await?;
                    text(200, found.to_string())
                })
                .await
            }
            ("Method::Get", ["list", container]) => {
                with_container(container, async |c| {
                    let mut names = c.list_objects().await?.collect().await;
                    names.sort();
                    text(200, names.join("\n"))
                })
                .await
            }
            ("Method::Post", [verb @ ("copy" | "move"), container, name]) => {
                let to = param("to").unwrap_or_default();
                let (to_container, to_name) = to.split_once('/').unwrap_or((&to, ""));
                let src = ObjectId {
                    container: container.to_string(),
                    object: name.to_string(),
                };
                let dest = ObjectId {
                    container: to_container.to_string(),
                    object: to_name.to_string(),
                };
                let result = if *verb == "copy" {
                    blobstore::copy_object(src, dest).await
                } else {
                    blobstore::move_object(src, dest).await
                };
                result.map(|()| (204, None))
            }
            ("Method::Delete", ["o", container, name]) => {
                with_container(container, async |c| {
                    c.delete_object(name.to_string()).await?;
                    Ok((204, None))
                })
                .await
            }
            ("Method::Delete", ["c", container]) => {
                blobstore::delete_container(container.to_string())
                    .await
                    .map(|()| (204, None))
            }
            ("Method::Post", ["clear", container]) => {
                with_container(container, async |c| {
                    c.clear().await?;
                    Ok((204, None))
                })
                .await
            }
            ("Method::Post", ["create", container]) => {
                blobstore::create_container(container.to_string())
                    .await
                    .map(|_| (204, None))
            }
            ("Method::Get", ["container", container]) => {
                with_container(container, async |c| {
                    let info = c.info().await?;
                    let name = c.name().await?;
                    assert_eq!(name, info.name);
                    text(200, format!("{} {}", info.name, info.created_at))
                })
                .await
            }
            _ => text(404, "not found".into()),
        };
        Ok(match answer {
            Ok((status, body)) => stream_response(status, Fields::new(), body),
            Err(error) => {
                let (_, body) = text(502, format!("{error:?}")).expect("a text body");
                stream_response(502, Fields::new(), body)
            }
        })
    }
}

async fn open_or_create(name: &str) -> Result<Container, Error> {
    if blobstore::container_exists(name.to_string()).await? {
        blobstore::get_container(name.to_string()).await
    } else {
        blobstore::create_container(name.to_string()).await
    }
}

async fn with_container(name: &str, then: impl AsyncFnOnce(&Container) -> Answer) -> Answer {
    let container = blobstore::get_container(name.to_string()).await?;
    then(&container).await
}

fn text(status: u16, body: String) -> Answer {
    let (mut writer, reader) = wasip3::wit_stream::new();
    wasip3::spawn_local(async move {
        writer.write_all(body.into_bytes()).await;
    });
    Ok((status, Some(reader)))
}

fn main() {
    unreachable!("HTTP service components are driven through `handle`, not `run`")
}
