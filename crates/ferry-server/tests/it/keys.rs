//! Tickets and stores: a store that ignores `If-None-Match` (it accepts every write) is found out by
//! the start-up probe, so `ferry serve` refuses to start in ticket mode rather than let a ticket
//! work more than once; `tickets.single_process` opts out of the probe; s3s-fs (`ferry dev`'s store)
//! honours the header; `ferry dev` refuses a non-loopback address unless told otherwise.

use ferry_server::config::{Config, Deployment};
use ferry_server::tickets::TicketVerifier;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An "S3" that answers every request 200 (PutObject, DeleteObject), whatever its headers say.
async fn careless_store() -> (String, Arc<AtomicUsize>) {
    let puts = Arc::new(AtomicUsize::new(0));
    let counted = puts.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let counted = counted.clone();
        async move {
            if request.method() == http::Method::PUT {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            (http::StatusCode::OK, [("etag", "\"d41d8cd98f00b204e9800998ecf8427e\"")], "")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), puts)
}

fn ticket_config() -> Config {
    let mut config = Config::default();
    config.s3.bucket = "bucket".into();
    config.link_secret = "l".repeat(32).into();
    config.ticket_secret = Some("t".repeat(32).into());
    config.deployments.insert("d1".into(), Deployment::default());
    config.validate().unwrap();
    config
}

async fn uploader(endpoint: &str) -> ferry_s3::Uploader {
    let client = ferry_s3::build_client(&ferry_s3::S3Config::compatible(endpoint, "test", "test")).await;
    ferry_s3::Uploader::new(client, "bucket", ferry_s3::UploadConfig::default())
}

#[tokio::test]
async fn a_store_without_conditional_writes_is_refused_at_start_up() {
    let (endpoint, puts) = careless_store().await;
    let uploader = uploader(&endpoint).await;
    let verifier = TicketVerifier::from_config(&ticket_config(), &uploader).expect("tickets on");
    assert!(verifier.is_shared(), "used tickets go to the bucket by default");
    let error = verifier.probe().await.expect_err("a store that accepts both writes is refused");
    let message = format!("{error:#}");
    assert!(message.contains("conditional writes"), "{message}");
    assert!(message.contains("tickets.single_process"), "it says how to opt out: {message}");
    assert_eq!(puts.load(Ordering::Relaxed), 2, "one probe key written twice");

    let mut single = ticket_config();
    single.tickets.single_process = true;
    let verifier = TicketVerifier::from_config(&single, &uploader).expect("tickets on");
    assert!(!verifier.is_shared());
    verifier.probe().await.expect("nothing to probe in memory");
    assert_eq!(puts.load(Ordering::Relaxed), 2, "and nothing is written");
}

#[tokio::test]
async fn the_dev_store_honours_if_none_match() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = ferry_sandbox::s3::LocalS3::start(dir.path().to_owned(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    s3.create_bucket("bucket").unwrap();
    let client = ferry_s3::build_client(&ferry_s3::S3Config::compatible(
        s3.endpoint(),
        ferry_sandbox::s3::ACCESS_KEY,
        ferry_sandbox::s3::SECRET_KEY,
    ))
    .await;
    let uploader = ferry_s3::Uploader::new(client, "bucket", ferry_s3::UploadConfig::default());
    let verifier = TicketVerifier::from_config(&ticket_config(), &uploader).expect("tickets on");
    verifier.probe().await.expect("s3s-fs refuses the second write");
}

#[test]
fn ferry_dev_listens_on_loopback_unless_told_otherwise() {
    use ferry_server::dev::check_listen;
    check_listen("127.0.0.1:8080".parse().unwrap(), false).unwrap();
    check_listen("[::1]:8080".parse().unwrap(), false).unwrap();
    let error = check_listen("0.0.0.0:8080".parse().unwrap(), false).unwrap_err();
    assert!(error.to_string().contains("--allow-remote"), "{error}");
    check_listen("0.0.0.0:8080".parse().unwrap(), true).unwrap();
}
