//! The web console (`/ui/`) in a real headless Chromium driven through chromedriver (both
//! from the OS packages, installed by `scripts/install-deps`), against a real cluster:
//! consul-dev, redis-server and two cronnode nodes that require an API token.
//!
//! One scenario, as an operator would go: log in with the token (a wrong one is refused),
//! create a job through the form (a 422 shown next to its field on the way), see its next
//! slots, see a fire appear in its history, pause it and see the fires stop, open the console
//! of the other node and see the same job, history and leader, lose a concurrent edit with a
//! 409, and read a job full of markup as text (no dialog, no element, no script). Each page is
//! photographed into `CRONNODE_SCREENSHOT_DIR` (default: this test's target directory;
//! `CRONNODE_SCREENSHOT_DIR=docs` refreshes the README's pictures).
//!
//! Every wait is for a condition, bounded by [`WAIT`].
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{http, Consul, Node};
use dev_harness::{eventually, RedisServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The nodes' API token.
const TOKEN: &str = "console-e2e-token";
/// The longest any awaited condition may take.
const WAIT: Duration = Duration::from_secs(30);
/// A job body that would open dialogs if it were ever taken as markup.
const PAYLOAD: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";
/// Chromium's flags in this sandbox: headless, as root, on a closed network.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// A program from the environment variable `env`, else the first of `paths` that exists.
fn program(env: &str, paths: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    paths
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "{} is missing: run scripts/install-deps (Debian's chromium and chromium-driver), or set {env}",
                paths[0]
            )
        })
}

/// chromedriver and one Chromium session in a fresh profile.
struct Browser {
    client: Client,
    driver: Driver,
    _profile: tempfile::TempDir,
}

/// The chromedriver process, killed when dropped (after the session ended, so that it has
/// stopped its Chromium).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let chromium = program(
            "CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let chromedriver = program("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let port = dev_harness::free_port().unwrap();
        let driver = Driver(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn chromedriver"),
        );
        // It keeps connections open (HTTP/1.1), so readiness is its port accepting.
        eventually("chromedriver to listen", WAIT, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            // A dialog must stay open for the test to see it, not be dismissed for it.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session from chromedriver");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Ends the session (chromedriver stops Chromium), then chromedriver.
    async fn close(self) {
        let _ = tokio::time::timeout(WAIT, self.client.clone().close()).await;
        drop(self.driver);
    }
}

/// The page in the browser, as a test reads and drives it.
#[derive(Clone)]
struct Page {
    c: Client,
    shots: PathBuf,
}

impl Page {
    /// The visible text of the first element matching `css`, if there is one.
    async fn text(&self, css: &str) -> Option<String> {
        self.c.find(Locator::Css(css)).await.ok()?.text().await.ok()
    }

    /// Waits until the text of `css` satisfies `ok`; that text.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let ok = &ok;
        eventually(what, WAIT, || async move {
            self.text(css).await.filter(|t| ok(t))
        })
        .await
    }

    async fn count(&self, css: &str) -> usize {
        self.c
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |v| v.len())
    }

    /// Waits until at least `n` elements match `css`.
    async fn wait_count(&self, css: &str, n: usize, what: &str) -> usize {
        eventually(what, WAIT, || async move {
            let k = self.count(css).await;
            (k >= n).then_some(k)
        })
        .await
    }

    async fn click(&self, css: &str) {
        let el = eventually(&format!("{css} to click"), WAIT, || async move {
            self.c.find(Locator::Css(css)).await.ok()
        })
        .await;
        el.click().await.unwrap();
    }

    /// Replaces the value of the input `css` with `text`, as typed.
    async fn type_into(&self, css: &str, text: &str) {
        let el = self.c.find(Locator::Css(css)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.c
            .find(Locator::Css(css))
            .await
            .ok()?
            .attr(name)
            .await
            .ok()?
    }

    async fn goto(&self, url: &str) {
        self.c.goto(url).await.unwrap();
    }

    /// No dialog is open, no element came out of job data, and the page broke no rule of
    /// its Content-Security-Policy.
    async fn assert_clean(&self, where_: &str) {
        if let Ok(text) = self.c.get_alert_text().await {
            panic!("{where_}: a dialog opened: {text:?}");
        }
        for css in ["main img", "main script", "main iframe"] {
            assert_eq!(self.count(css).await, 0, "{where_}: {css} in the page");
        }
        let violations = self
            .c
            .execute(
                "return document.documentElement.dataset.cspViolations",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(violations, json!("0"), "{where_}: CSP violations");
    }

    async fn screenshot(&self, name: &str) {
        self.c
            .execute("window.scrollTo(0, 0)", vec![])
            .await
            .unwrap();
        let png = self.c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        std::fs::create_dir_all(&self.shots).unwrap();
        std::fs::write(self.shots.join(name), png).unwrap();
    }

    /// Logs in at `base` with the token (after a wrong one is refused).
    async fn log_in(&self, base: &str) {
        self.goto(&format!("{base}/ui/")).await;
        self.wait_text("#login h1", "the login form", |t| t == "cronnode")
            .await;
        self.type_into("#token", "not-the-token").await;
        self.click("#login button[type=submit]").await;
        self.wait_text("#login-error", "a wrong token refused", |t| {
            t.contains("Wrong token")
        })
        .await;
        self.type_into("#token", TOKEN).await;
        self.click("#login button[type=submit]").await;
        self.wait_text("#leader-card h2", "the cluster page", |t| t == "Leader")
            .await;
    }
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn the_console_in_a_real_browser() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let args = ["--api-token", TOKEN];
    let a = Node::start("a", &consul, &redis.url(), &args);
    let b = Node::start("b", &consul, &redis.url(), &args);
    let leader = common::wait_for("a leader", WAIT, || {
        let r = Api { port: a.port }.call("GET", "/v1/leader", None);
        (r.status == 200)
            .then(|| r.json().pointer("/leader/node")?.as_str().map(String::from))
            .flatten()
    });
    let (leader, follower) = if leader == "a" { (&a, &b) } else { (&b, &a) };

    // The page and its files: served without a token, with a policy that forbids inline
    // script; the data behind them is not.
    let page = http::get(leader.port, "/ui/", None).unwrap();
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(
        http::get(leader.port, "/v1/status", None).unwrap().status,
        401
    );

    let shots = std::env::var_os("CRONNODE_SCREENSHOT_DIR")
        .map(|d| {
            let d = PathBuf::from(d);
            if d.is_relative() {
                // Relative to the repository, where `cargo test` is usually run from.
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../..")
                    .join(d)
            } else {
                d
            }
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        let browser = Browser::start().await;
        let page = Page {
            c: browser.client.clone(),
            shots,
        };
        let urls = (
            format!("http://127.0.0.1:{}", leader.port),
            format!("http://127.0.0.1:{}", follower.port),
        );
        let names = (leader.name.clone(), follower.name.clone());
        let run = tokio::spawn(scenario(page, urls, names, leader.port));
        let outcome = run.await;
        browser.close().await;
        outcome
    });
    if let Err(e) = outcome {
        eprintln!("--- node a ---\n{}\n--- node b ---\n{}", a.log(), b.log());
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(
    page: Page,
    (lead, follow): (String, String),
    (lead_name, follow_name): (String, String),
    lead_port: u16,
) {
    let api = Api { port: lead_port };

    // Log in on the leader.
    page.goto(&format!("{lead}/ui/")).await;
    page.wait_text("#login h1", "the login form", |t| t == "cronnode")
        .await;
    page.screenshot("console-login.png").await;
    page.log_in(&lead).await;
    let shown = page
        .wait_text("#leader-node", "the leader's name", |t| !t.is_empty())
        .await;
    assert_eq!(shown, lead_name);
    assert_eq!(page.wait_count("#nodes tbody tr", 2, "two nodes").await, 2);

    // Create a job through the form; a bad schedule is named next to its field first.
    page.goto(&format!("{lead}/ui/#/new")).await;
    page.wait_text("#editor #save", "the editor", |t| t == "Create")
        .await;
    page.type_into("#f-id", "console-tick").await;
    page.type_into("#f-function-app", "e2e").await;
    page.type_into("#f-function-path", "/tick").await;
    page.type_into("#f-function-image", "iron/hello").await;
    page.type_into("#f-function-body", "{\"n\":1}").await;
    page.type_into("#f-timezone", "Europe/Berlin").await;
    page.type_into("#f-frequency", "*/70 * * * *").await;
    let err = page
        .wait_text("#err-frequency", "the 422 next to the schedule", |t| {
            t.contains("70")
        })
        .await;
    assert!(err.starts_with("frequency:"), "{err}");
    assert_eq!(page.text("#form-error").await.as_deref(), Some(""));
    page.screenshot("console-editor.png").await;
    page.type_into("#f-frequency", "@every 1s").await;
    page.wait_text("#err-frequency", "the error gone", str::is_empty)
        .await;
    page.wait_count("#preview #slots tbody tr", 5, "the schedule preview")
        .await;
    page.click("#save").await;

    // Its page: the spec, the next ten slots, then fires in its history.
    page.wait_text("#job-id", "the job's page", |t| t == "console-tick")
        .await;
    assert_eq!(
        page.wait_count("#slots tbody tr", 10, "ten slots").await,
        10
    );
    let created = api.job("console-tick");
    assert_eq!(created["timezone"], "Europe/Berlin");
    assert_eq!(created["function"]["body"], "{\"n\":1}");
    page.wait_count("#fires tbody tr", 3, "three fires in the history")
        .await;
    page.screenshot("console-job.png").await;
    page.assert_clean("the job's page").await;

    // Pause it: confirmed, then the fires stop.
    page.click("#pause").await;
    page.wait_text("#confirm", "the confirmation", |t| {
        t.contains("Pause console-tick?")
    })
    .await;
    page.click("#confirm-yes").await;
    let paused_at = Utc::now();
    page.wait_text("#job-state", "the job paused", |t| t == "paused")
        .await;
    // Staged slots (up to 2 s ahead) and the leader's watch (about 1 s) may still fire after
    // the pause; then nothing: the newest fire grows old on a once-a-second job.
    let newest = eventually("the fires to stop", WAIT, || {
        let page = page.clone();
        async move {
            let slot = instant(&page.attr("#fires tbody tr", "data-slot").await?);
            (Utc::now() - slot > chrono::Duration::seconds(6)).then_some(slot)
        }
    })
    .await;
    assert!(
        newest <= paused_at + chrono::Duration::seconds(8),
        "a fire at {newest} after the pause at {paused_at}"
    );
    let fires = page.count("#fires tbody tr").await;

    // The follower's console: the same job, its history unchanged, the same leader, and the
    // leader's activity.
    page.log_in(&follow).await;
    page.wait_text("#leader-node", "the leader on the follower", |t| {
        t == lead_name
    })
    .await;
    let served_by = page.text("main > p.muted").await.unwrap_or_default();
    assert!(served_by.contains(&follow_name), "{served_by}");
    page.wait_text(
        "#activity-total",
        "the leader's fires on the follower",
        |t| t.parse::<u64>().is_ok_and(|n| n > 0),
    )
    .await;
    page.screenshot("console-cluster.png").await;
    page.goto(&format!("{follow}/ui/#/job/console-tick")).await;
    page.wait_text("#job-state", "the paused job on the follower", |t| {
        t == "paused"
    })
    .await;
    page.wait_count("#fires tbody tr", 1, "its history").await;
    assert_eq!(
        page.count("#fires tbody tr").await,
        fires,
        "no further fire"
    );
    let still = instant(&page.attr("#fires tbody tr", "data-slot").await.unwrap());
    assert_eq!(still, newest, "no further fire");

    // A concurrent edit: the form was opened at one version, someone saves another.
    page.goto(&format!("{follow}/ui/#/edit/console-tick")).await;
    page.wait_text("#editor #save", "the editor", |t| t == "Save")
        .await;
    page.wait_text("#f-frequency", "the loaded job", |_| true)
        .await;
    let mut other = api.job("console-tick");
    other["description"] = json!("saved by someone else");
    let r = api.call("PUT", "/v1/cronjobs/console-tick", Some(&other));
    assert_eq!(r.status, 200, "{}", r.text());
    page.type_into("#f-description", "my change").await;
    page.click("#save").await;
    page.wait_text("#conflict", "the 409 shown", |t| {
        t.contains("changed since you opened it")
    })
    .await;
    assert_eq!(
        api.job("console-tick")["description"],
        "saved by someone else"
    );

    // Job data full of markup is shown as text, on its page and in the list.
    let xss = json!({
        "id": "markup",
        "function": {"app": "<b>app<i>markup", "path": "/<script>alert(4)</script>",
                     "image": "iron/hello", "headers": [format!("X-Note: {PAYLOAD}")], "body": PAYLOAD},
        "frequency": "0 9 * * 1-5", "timezone": "America/New_York",
        "description": PAYLOAD, "paused": true,
    });
    let r = api.call("POST", "/v1/cronjobs", Some(&xss));
    assert_eq!(r.status, 201, "{}", r.text());
    page.goto(&format!("{follow}/ui/#/job/markup")).await;
    let body = page
        .wait_text("#job-body", "the body", |t| !t.is_empty())
        .await;
    assert_eq!(body, PAYLOAD);
    assert_eq!(
        page.text("#job-description").await.as_deref(),
        Some(PAYLOAD)
    );
    assert_eq!(
        page.text("#job-app").await.as_deref(),
        Some("<b>app<i>markup")
    );
    assert_eq!(
        page.text("#job-headers li").await,
        Some(format!("X-Note: {PAYLOAD}"))
    );
    page.assert_clean("the page of a job full of markup").await;
    page.screenshot("console-markup.png").await;

    // The list: a few more jobs, filtered by state and searched by id and app.
    for (id, freq, tz) in [
        ("nightly-report", "0 2 * * *", "Europe/Berlin"),
        ("invoice-run", "30 9 1 * *", "America/New_York"),
        ("cache-warm", "*/15 * * * *", "UTC"),
    ] {
        let mut j = common::job(id, freq);
        j["timezone"] = json!(tz);
        j["function"]["app"] = json!("billing");
        let r = api.call("POST", "/v1/cronjobs", Some(&j));
        assert_eq!(r.status, 201, "{}", r.text());
    }
    page.goto(&format!("{follow}/ui/#/jobs")).await;
    assert_eq!(page.wait_count("#jobs tbody tr", 5, "five jobs").await, 5);
    page.assert_clean("the job list").await;
    page.screenshot("console-jobs.png").await;
    page.goto(&format!("{follow}/ui/#/jobs?state=paused")).await;
    page.wait_text("#search-state", "the state filter", |_| true)
        .await;
    let paused = eventually("the paused jobs", WAIT, || {
        let page = page.clone();
        async move {
            let rows = page.c.find_all(Locator::Css("#jobs tbody tr")).await.ok()?;
            let mut ids = Vec::new();
            for r in rows {
                ids.push(r.attr("data-job").await.ok()??);
            }
            ids.sort();
            (ids.len() == 2).then_some(ids)
        }
    })
    .await;
    assert_eq!(paused, ["console-tick", "markup"]);
    page.goto(&format!("{follow}/ui/#/jobs")).await;
    page.wait_count("#jobs tbody tr", 5, "five jobs").await;
    page.type_into("#search-id", "RUN").await;
    page.type_into("#search-app", "billing").await;
    page.click("#filters button[type=submit]").await;
    page.wait_text("#jobs tbody", "the search", |t| {
        t.contains("invoice-run") && !t.contains("nightly-report")
    })
    .await;
    assert_eq!(page.count("#jobs tbody tr").await, 1);

    // The job page of a zoned job, for the README's picture of slots in two zones.
    page.goto(&format!("{follow}/ui/#/job/nightly-report"))
        .await;
    page.wait_count("#slots tbody tr", 10, "ten slots").await;
    page.assert_clean("a zoned job's page").await;
}

/// The API of a node, with the token (what another operator or a script does meanwhile).
struct Api {
    port: u16,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> http::Response {
        let auth = format!("Bearer {TOKEN}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        http::request(self.port, method, path, &headers, body.as_bytes()).unwrap()
    }

    fn job(&self, id: &str) -> Value {
        let r = self.call("GET", &format!("/v1/cronjobs/{id}"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}
