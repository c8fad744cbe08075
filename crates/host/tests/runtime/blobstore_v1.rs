//! `wasmcloud:blobstore@0.1.0` end to end: a P3 component streams an
//! object in and out (the request and response bodies handed straight to
//! `write-data` and back from `get-data`), reads ranges, metadata and
//! listings, copies and moves, gets each typed error, all on the
//! filesystem backend configured by a `wasmcloud:blobstore` entry.

use crate::common;

use bytes::Bytes;
use common::*;
use nimbus_host::workload::HostInterface;
use test_programs::P3_BLOBSTORE;

async fn call(t: &TestHost, method: &str, path: &str, body: impl Into<Bytes>) -> (u16, String) {
    request(t.addr, Some("b3.test"), method, path, body.into()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub(crate) async fn a_p3_component_streams_objects_through_wasmcloud_blobstore() {
    let root = tempfile::tempdir().unwrap();
    let mut workload = http_workload("b3", P3_BLOBSTORE, "b3.test");
    workload.spec.host_interfaces.push(HostInterface {
        namespace: "wasmcloud".into(),
        package: "blobstore".into(),
        interfaces: vec!["blobstore".into()],
        config: [("path".to_string(), root.path().display().to_string())].into(),
        ..Default::default()
    });
    let t = TestHost::dynamic().await;
    t.host.start_workload(workload).await.unwrap();

    // 3 MiB in and out, as streams on both sides.
    let big: String = (0..3 << 20)
        .map(|i: u32| char::from(b'a' + (i.wrapping_mul(7) % 26) as u8))
        .collect();
    assert_eq!(
        call(&t, "PUT", "/o/photos/big.txt", big.clone()).await,
        (204, String::new())
    );
    let (status, body) = call(&t, "GET", "/o/photos/big.txt", "").await;
    assert_eq!(status, 200);
    assert!(
        body == big,
        "the object came back changed ({} bytes)",
        body.len()
    );
    let on_disk = std::fs::read_to_string(root.path().join("photos/big.txt")).unwrap();
    assert!(
        on_disk == big,
        "the filesystem backend holds something else"
    );
    // Offsets are inclusive; an end past the object is clamped.
    assert_eq!(
        call(&t, "GET", "/o/photos/big.txt?start=10&end=19", "").await,
        (200, big[10..20].to_string())
    );
    let tail_start = big.len() - 5;
    assert_eq!(
        call(
            &t,
            "GET",
            &format!("/o/photos/big.txt?start={tail_start}&end=99999999"),
            ""
        )
        .await,
        (200, big[tail_start..].to_string())
    );

    // Metadata: the size, and a creation time in nanoseconds.
    let (status, info) = call(&t, "GET", "/info/photos/big.txt", "").await;
    assert_eq!(status, 200, "{info}");
    let (size, created) = info.split_once(' ').unwrap();
    assert_eq!(size, (3 << 20).to_string());
    let created: u64 = created.parse().unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        created <= now_ns && now_ns - created < 120_000_000_000,
        "created at {created}, now {now_ns}"
    );

    // Copy within a container, move to a container that must exist first.
    assert_eq!(
        call(&t, "POST", "/copy/photos/big.txt?to=photos/copy.txt", "")
            .await
            .0,
        204
    );
    assert_eq!(
        call(&t, "GET", "/list/photos", "").await,
        (200, "big.txt\ncopy.txt".into())
    );
    assert_eq!(
        call(&t, "POST", "/move/photos/copy.txt?to=archive/moved.txt", "").await,
        (502, "Error::NoSuchContainer".into())
    );
    assert_eq!(call(&t, "POST", "/create/archive", "").await.0, 204);
    assert_eq!(
        call(&t, "POST", "/create/archive", "").await,
        (502, "Error::ContainerAlreadyExists".into())
    );
    assert_eq!(
        call(&t, "POST", "/move/photos/copy.txt?to=archive/moved.txt", "")
            .await
            .0,
        204
    );
    assert_eq!(
        call(&t, "GET", "/exists/photos/copy.txt", "").await,
        (200, "false".into())
    );
    assert_eq!(
        call(&t, "GET", "/o/archive/moved.txt?start=0&end=2", "").await,
        (200, big[..3].to_string())
    );
    let (status, container) = call(&t, "GET", "/container/archive", "").await;
    assert_eq!(status, 200, "{container}");
    assert!(container.starts_with("archive "), "{container}");

    // Typed errors, and a refused name whose body is never stored.
    assert_eq!(
        call(&t, "GET", "/o/photos/missing.txt", "").await,
        (502, "Error::NoSuchObject".into())
    );
    assert_eq!(
        call(&t, "GET", "/o/nobox/x", "").await,
        (502, "Error::NoSuchContainer".into())
    );
    let (status, body) = call(&t, "PUT", "/o/photos/a/../../escape", "x".repeat(100_000)).await;
    assert_eq!(status, 502);
    assert!(
        body.starts_with("Error::Other(\"invalid object name"),
        "{body}"
    );
    assert!(!root.path().join("escape").exists());

    // Deleting: one object, everything, the container.
    assert_eq!(call(&t, "DELETE", "/o/archive/moved.txt", "").await.0, 204);
    assert_eq!(
        call(&t, "GET", "/list/archive", "").await,
        (200, String::new())
    );
    assert_eq!(call(&t, "POST", "/clear/photos", "").await.0, 204);
    assert_eq!(
        call(&t, "GET", "/list/photos", "").await,
        (200, String::new())
    );
    assert_eq!(call(&t, "DELETE", "/c/photos", "").await.0, 204);
    assert_eq!(
        call(&t, "GET", "/container/photos", "").await,
        (502, "Error::NoSuchContainer".into())
    );
}
