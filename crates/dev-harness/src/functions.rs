//! A stand-in for IronFunctions' API server, for tests and benchmarks: the two read endpoints
//! cronnode uses, answering byte for byte as the real server does (IronFunctions is not
//! installable from any registry, so CI cannot run it; README.md's "IronFunctions" section has
//! the comparison made locally with the real one).
//!
//! - `GET /v1/apps/{app}` → 200 `{"message":"Successfully loaded app","app":{"name","config"}}`
//!   (`config` `null` for an app made without one);
//! - `GET /v1/apps/{app}/routes/{path}` → 200 `{"message":"Successfully loaded route","route":
//!   {"app_name","path","image","memory","headers","type","format","max_concurrency","timeout",
//!   "idle_timeout","config","jwt_key"}}` (the path cleaned as Go's `path.Clean` does);
//! - 404 `{"error":{"message":"App not found"}}` (also for a route of a missing app) or
//!   `{"error":{"message":"Route not found"}}`.
//!
//! Bodies are written as Go's `encoding/json` writes them (keys of a map sorted, `<`, `>`, `&`
//! escaped, a final newline: gin's `c.JSON`), with `Content-Type: application/json;
//! charset=utf-8`. Apps and routes are set by the test ([`FunctionsApi::put_app`],
//! [`FunctionsApi::put_route`], [`FunctionsApi::delete_route`]); every GET is counted.
//!
//! Must not: grow into a functions platform (no calls, no writes over HTTP).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A route as the stand-in serves it (IronFunctions' defaults in [`Route::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The image.
    pub image: String,
    /// `sync` or `async`.
    pub kind: String,
    /// Run timeout, seconds (IronFunctions' default 30).
    pub timeout: i32,
    /// Idle timeout, seconds (0 when not given).
    pub idle_timeout: i32,
    /// The route's config.
    pub config: BTreeMap<String, String>,
}

impl Route {
    /// An async route of `image` with IronFunctions' defaults (timeout 30, no idle timeout, no
    /// config).
    pub fn new(image: &str) -> Route {
        Route {
            image: image.to_string(),
            kind: "async".to_string(),
            timeout: 30,
            idle_timeout: 0,
            config: BTreeMap::new(),
        }
    }
}

#[derive(Default)]
struct State {
    /// App name → its config (`None`: made without one, served as `null`).
    apps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    /// (app, path) → route.
    routes: BTreeMap<(String, String), Route>,
}

/// The stand-in, serving on a loopback port until dropped.
pub struct FunctionsApi {
    port: u16,
    state: Arc<Mutex<State>>,
    gets: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Every connection accepted, to close them when dropped (a stopped stand-in is an
    /// unreachable IronFunctions, also for a client's pooled connections).
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl FunctionsApi {
    /// Starts serving on a free loopback port.
    pub fn start() -> std::io::Result<FunctionsApi> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let state: Arc<Mutex<State>> = Arc::default();
        let gets: Arc<AtomicU64> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, g, st, cs) = (state.clone(), gets.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if let Ok(c) = conn.try_clone() {
                    cs.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                }
                let (s, g) = (s.clone(), g.clone());
                std::thread::spawn(move || serve(conn, &s, &g));
            }
        });
        Ok(FunctionsApi {
            port,
            state,
            gets,
            stop,
            conns,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates or replaces an app (`None`: made without config).
    pub fn put_app(&self, name: &str, config: Option<&[(&str, &str)]>) {
        let config = config.map(|c| {
            c.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
        self.lock().apps.insert(name.to_string(), config);
    }

    /// Creates or replaces `app`'s route `path` (`/hello`).
    pub fn put_route(&self, app: &str, path: &str, route: Route) {
        self.lock()
            .routes
            .insert((app.to_string(), path.to_string()), route);
    }

    /// Deletes `app`'s route `path`.
    pub fn delete_route(&self, app: &str, path: &str) {
        self.lock()
            .routes
            .remove(&(app.to_string(), path.to_string()));
    }

    /// How many GETs were answered.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FunctionsApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag, then close every connection.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Answers requests on one connection (keep-alive) until the peer closes it.
fn serve(conn: TcpStream, state: &Mutex<State>, gets: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = conn.set_nodelay(true);
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // Headers (ignored) up to the empty line; GETs carry no body.
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (status, body) = if method == "GET" {
            gets.fetch_add(1, Ordering::SeqCst);
            let state = state.lock().unwrap_or_else(|p| p.into_inner());
            answer(&state, target)
        } else {
            (404, None)
        };
        let (ctype, body) = match body {
            Some(b) => ("application/json; charset=utf-8", b),
            // gin's answer for a path it has no handler for.
            None => ("text/plain", "404 page not found".to_string()),
        };
        let reason = if status == 200 { "OK" } else { "Not Found" };
        // One write per answer (two would meet the client's delayed ACK: 40 ms each).
        let answer = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// The status and JSON body for a GET of `target` (`None` body: no such endpoint).
fn answer(state: &State, target: &str) -> (u16, Option<String>) {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/v1/apps/") else {
        return (404, None);
    };
    let (app, route) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let app = decode(app);
    let not_found = |what: &str| {
        (
            404,
            Some(format!("{{\"error\":{{\"message\":\"{what}\"}}}}\n")),
        )
    };
    let Some(config) = state.apps.get(&app) else {
        return not_found("App not found");
    };
    let Some(route) = route else {
        let body = format!(
            "{{\"message\":\"Successfully loaded app\",\"app\":{{\"name\":{},\"config\":{}}}}}\n",
            go_str(&app),
            config.as_ref().map_or("null".to_string(), go_map)
        );
        return (200, Some(body));
    };
    let Some(route_path) = route.strip_prefix("/routes") else {
        return (404, None);
    };
    let route_path = clean(&decode(route_path));
    let Some(r) = state.routes.get(&(app.clone(), route_path.clone())) else {
        return not_found("Route not found");
    };
    let body = format!(
        "{{\"message\":\"Successfully loaded route\",\"route\":{{\"app_name\":{},\"path\":{},\
         \"image\":{},\"memory\":128,\"headers\":{{}},\"type\":{},\"format\":\"default\",\
         \"max_concurrency\":1,\"timeout\":{},\"idle_timeout\":{},\"config\":{},\"jwt_key\":\"\"}}}}\n",
        go_str(&app),
        go_str(&route_path),
        go_str(&r.image),
        go_str(&r.kind),
        r.timeout,
        r.idle_timeout,
        go_map(&r.config)
    );
    (200, Some(body))
}

/// Go's `path.Clean` of an absolute path.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Percent-decoding of a URL path (Go's `URL.Path`); a malformed escape is kept as it is.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON object of a string map as Go writes one: keys sorted (a BTreeMap is).
fn go_map(m: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}:{}", go_str(k), go_str(v)))
        .collect();
    format!("{{{}}}", items.join(","))
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe).
fn go_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let mut s = State::default();
        s.apps.insert(
            "myapp".into(),
            Some(
                [
                    ("APP_SETTING", "a1"),
                    ("db-url", "postgres://x"),
                    ("shared", "app"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
        );
        s.apps.insert("bare".into(), None);
        let mut r = Route::new("acme/hello:7");
        r.timeout = 45;
        r.idle_timeout = 20;
        r.config = [("ROUTE_SETTING", "r1"), ("shared", "route")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.routes.insert(("myapp".into(), "/hello".into()), r);
        s.routes
            .insert(("bare".into(), "/a/b".into()), Route::new("iron/hello"));
        s
    }

    /// Each body as the real server (IronFunctions built from its public source) answered it
    /// for the same apps and routes.
    #[test]
    fn answers_byte_for_byte_as_the_real_server() {
        let s = state();
        let cases = [
            ("/v1/apps/myapp", 200, "{\"message\":\"Successfully loaded app\",\"app\":{\"name\":\"myapp\",\"config\":{\"APP_SETTING\":\"a1\",\"db-url\":\"postgres://x\",\"shared\":\"app\"}}}\n"),
            ("/v1/apps/bare", 200, "{\"message\":\"Successfully loaded app\",\"app\":{\"name\":\"bare\",\"config\":null}}\n"),
            ("/v1/apps/myapp/routes/hello", 200, "{\"message\":\"Successfully loaded route\",\"route\":{\"app_name\":\"myapp\",\"path\":\"/hello\",\"image\":\"acme/hello:7\",\"memory\":128,\"headers\":{},\"type\":\"async\",\"format\":\"default\",\"max_concurrency\":1,\"timeout\":45,\"idle_timeout\":20,\"config\":{\"ROUTE_SETTING\":\"r1\",\"shared\":\"route\"},\"jwt_key\":\"\"}}\n"),
            ("/v1/apps/bare/routes/a/b", 200, "{\"message\":\"Successfully loaded route\",\"route\":{\"app_name\":\"bare\",\"path\":\"/a/b\",\"image\":\"iron/hello\",\"memory\":128,\"headers\":{},\"type\":\"async\",\"format\":\"default\",\"max_concurrency\":1,\"timeout\":30,\"idle_timeout\":0,\"config\":{},\"jwt_key\":\"\"}}\n"),
            ("/v1/apps/myapp/routes//hello/", 200, "{\"message\":\"Successfully loaded route\",\"route\":{\"app_name\":\"myapp\",\"path\":\"/hello\",\"image\":\"acme/hello:7\",\"memory\":128,\"headers\":{},\"type\":\"async\",\"format\":\"default\",\"max_concurrency\":1,\"timeout\":45,\"idle_timeout\":20,\"config\":{\"ROUTE_SETTING\":\"r1\",\"shared\":\"route\"},\"jwt_key\":\"\"}}\n"),
            ("/v1/apps/nope", 404, "{\"error\":{\"message\":\"App not found\"}}\n"),
            ("/v1/apps/nope/routes/x", 404, "{\"error\":{\"message\":\"App not found\"}}\n"),
            ("/v1/apps/myapp/routes/nope", 404, "{\"error\":{\"message\":\"Route not found\"}}\n"),
        ];
        for (target, status, body) in cases {
            assert_eq!(
                answer(&s, target),
                (status, Some(body.to_string())),
                "{target}"
            );
        }
        assert_eq!(go_str("a<b>&\u{1}"), "\"a\\u003cb\\u003e\\u0026\\u0001\"");
    }
}
