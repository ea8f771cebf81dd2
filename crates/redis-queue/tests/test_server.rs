//! The test harness itself: own port and directory, kill, restart on the same port with the
//! append-only file, stop on drop.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;

use redis_queue::test_server::{RedisServer, ServerOptions};

fn set_get(url: &str, value: Option<&str>) -> Option<String> {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    if let Some(v) = value {
        redis::cmd("SET").arg("k").arg(v).exec(&mut c).unwrap();
    }
    redis::cmd("GET").arg("k").query(&mut c).unwrap()
}

#[test]
fn restart_keeps_port_and_data_and_drop_stops_it() {
    let mut a = RedisServer::start_with(ServerOptions {
        appendonly: true,
        fsync_always: true,
        password: None,
    })
    .unwrap();
    let b = RedisServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    set_get(&a.url(), Some("1"));

    a.kill();
    assert!(!a.is_running());
    assert!(TcpStream::connect(a.addr()).is_err(), "killed means gone");
    let port = a.port();
    a.restart().unwrap();
    assert_eq!(a.port(), port);
    assert!(a.is_running());
    assert_eq!(
        set_get(&a.url(), None).as_deref(),
        Some("1"),
        "the AOF was loaded"
    );

    let addr = b.addr();
    drop(b);
    assert!(TcpStream::connect(addr).is_err(), "dropped means stopped");
}
