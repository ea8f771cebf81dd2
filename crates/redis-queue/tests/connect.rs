//! Connection failures become clear errors: a malformed URL, a wrong or missing password, a
//! server that is not Redis, nothing listening.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::TcpListener;

use redis_queue::test_server::{RedisServer, ServerOptions};
use redis_queue::{Queue, QueueConfig, QueueError};

async fn connect(url: &str) -> Result<Queue, QueueError> {
    Queue::connect(QueueConfig::new(url)).await
}

#[tokio::test]
async fn a_malformed_url_is_refused_by_name() {
    for url in [
        "localhost:6379",
        "http://127.0.0.1:6379/",
        "redis://127.0.0.1:notaport/",
        "redis://:secret@[::1/",
    ] {
        let err = connect(url).await.unwrap_err();
        assert!(matches!(err, QueueError::BadUrl { .. }), "{url}: {err:?}");
        let text = err.to_string();
        assert!(text.contains("invalid Redis URL"), "{text}");
        assert!(
            !text.contains("secret"),
            "the password must not leak: {text}"
        );
    }
}

#[tokio::test]
async fn a_wrong_or_missing_password_is_an_auth_error() {
    let server = RedisServer::start_with(ServerOptions {
        password: Some("right".into()),
        ..ServerOptions::default()
    })
    .unwrap();
    let port = server.port();
    for url in [
        format!("redis://:wrong@127.0.0.1:{port}/"),
        format!("redis://127.0.0.1:{port}/"),
        format!("redis://default:wrong@127.0.0.1:{port}/"),
    ] {
        let err = connect(&url).await.unwrap_err();
        assert!(matches!(err, QueueError::Auth { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains("refused the credentials"), "{err}");
    }
    let q = connect(&server.url()).await.unwrap();
    q.ping().await.unwrap();
    // A database number in the URL is honoured.
    let q = connect(&format!("redis://:right@127.0.0.1:{port}/3"))
        .await
        .unwrap();
    assert_eq!(q.raise_fence(4).await.unwrap(), 4);
    assert_eq!(
        connect(&server.url()).await.unwrap().fence().await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_server_that_is_not_redis_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            // Keep it open a moment so the client reads the garbage rather than a reset.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    let err = connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::NotRedis { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("does not speak the Redis protocol"),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
