//! The blobstore backend contract, run against every backend: memory,
//! filesystem (whose names can never leave its root) and NATS JetStream
//! object store (a real server on loopback).

use nimbus_blobstore::{BlobBackend, BlobError, BlobSettings, open_blob_backend};
use std::sync::Arc;
use std::time::Duration;
use test_programs::servers::{Kind, Server};
use tokio::io::AsyncReadExt;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn put(backend: &dyn BlobBackend, container: &str, name: &str, data: &[u8]) {
    let spool = tempfile::NamedTempFile::new_in(backend.spool_dir()).unwrap();
    std::fs::write(spool.path(), data).unwrap();
    // The backend may move the file; what is left goes with `path`.
    let path = spool.into_temp_path();
    backend.write(container, name, &path).await.unwrap();
}

async fn read(
    backend: &dyn BlobBackend,
    container: &str,
    name: &str,
    start: u64,
    len: u64,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    backend
        .read(container, name, start, len)
        .await
        .unwrap()
        .read_to_end(&mut bytes)
        .await
        .unwrap();
    bytes
}

async fn conformance(backend: Arc<dyn BlobBackend>) {
    let b = backend.as_ref();
    assert_eq!(b.container_created_at("photos").await.unwrap(), None);
    b.create_container("photos").await.unwrap();
    assert!(b.container_created_at("photos").await.unwrap().is_some());
    assert_eq!(
        b.create_container("photos").await.unwrap_err(),
        BlobError::ContainerExists("photos".into())
    );
    b.create_container("backup").await.unwrap();

    put(b, "photos", "a.txt", b"hello blob").await;
    put(b, "photos", "dir/b.txt", b"nested").await;
    assert_eq!(
        b.object_info("photos", "a.txt")
            .await
            .unwrap()
            .unwrap()
            .size,
        10
    );
    assert_eq!(b.object_info("photos", "zzz").await.unwrap(), None);
    assert_eq!(read(b, "photos", "a.txt", 0, 10).await, b"hello blob");
    assert_eq!(read(b, "photos", "a.txt", 6, 4).await, b"blob");
    assert_eq!(
        b.list_objects("photos").await.unwrap(),
        ["a.txt", "dir/b.txt"]
    );
    assert!(b.list_objects("backup").await.unwrap().is_empty());
    // Overwrite replaces.
    put(b, "photos", "a.txt", b"v2").await;
    assert_eq!(read(b, "photos", "a.txt", 0, 100).await, b"v2");
    b.delete_object("photos", "a.txt").await.unwrap();
    b.delete_object("photos", "a.txt").await.unwrap();
    assert_eq!(b.list_objects("photos").await.unwrap(), ["dir/b.txt"]);
    b.delete_container("photos").await.unwrap();
    assert_eq!(b.container_created_at("photos").await.unwrap(), None);
    assert_eq!(
        b.list_objects("photos").await.unwrap_err(),
        BlobError::NoSuchContainer("photos".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_memory() {
    conformance(open_blob_backend(&BlobSettings::Memory, TIMEOUT).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let settings = BlobSettings::Filesystem {
        path: dir.path().join("blobs"),
    };
    let backend = open_blob_backend(&settings, TIMEOUT).unwrap();
    conformance(backend.clone()).await;
    // Names never leave the root.
    backend.create_container("box").await.unwrap();
    for bad in ["../escape", "/etc/passwd", "a/../../b", "nul\0byte", ""] {
        let error = backend.object_info("box", bad).await.unwrap_err();
        assert!(
            matches!(error, BlobError::InvalidObjectName(_)),
            "{bad:?}: {error}"
        );
    }
    for bad in ["..", "a/b", ".nimbus-spool"] {
        let error = backend.create_container(bad).await.unwrap_err();
        assert!(
            matches!(error, BlobError::InvalidContainerName { .. }),
            "{bad:?}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_nats() {
    let Some(nats) = Server::start(Kind::Nats) else {
        return;
    };
    let settings = BlobSettings::Nats { url: nats.url() };
    conformance(open_blob_backend(&settings, TIMEOUT).unwrap()).await;
}
