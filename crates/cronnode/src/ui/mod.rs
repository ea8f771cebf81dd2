//! The web console's files, embedded in the binary and served at `/ui/` by every node (the
//! route is the last row of `api/routes.rs`).
//!
//! The console is plain HTML, CSS and JavaScript modules in `assets/` (no build step, nothing
//! loaded from elsewhere): one page whose fragment names the view (`#/cluster`, `#/jobs`,
//! `#/job/<id>`, `#/new`, `#/edit/<id>`). The files hold no data and need no token; the pages
//! fetch everything from the node's API with the bearer token typed into the login form, kept
//! in the tab's `sessionStorage` only. `app.js` is the entry point (login, router); one module
//! per view (`cluster.js`, `jobs.js`, `job.js`, `editor.js`) on `api.js` (requests), `dom.js`
//! (elements) and `chart.js` (SVG bars).
//!
//! Every answer carries [`CONTENT_SECURITY_POLICY`]: scripts, styles and images from this
//! node only, no inline script or style, no plugin, no framing. With it, and with pages that
//! build the DOM from text (`textContent`, never HTML parsed from data), a job's strings
//! (id, body, headers, description) are shown as text whatever they hold.
//!
//! Must not: read any state of the node (this module serves files; the API serves data), or
//! import `crate::api` (the API imports this).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// What the pages may load and run: this node's own files and API, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Headers every answer of the console carries.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    // The files change with the binary: the browser asks again each time.
    ("cache-control", "no-cache"),
];

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// An [`Asset`] of `assets/<name>`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

/// Every file of the console; the first is the page itself.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("chart.js", JS),
    asset!("cluster.js", JS),
    asset!("jobs.js", JS),
    asset!("job.js", JS),
    asset!("editor.js", JS),
];

/// The answer to `GET <path>`, a path under `/ui`: the page for `/ui` and `/ui/`, a file by
/// its name, else a 404.
pub fn serve(path: &str) -> Response<Full<Bytes>> {
    // The first segment is the mount point (`ui`); the rest names the file.
    let name = path
        .trim_start_matches('/')
        .split_once('/')
        .map_or("", |(_, rest)| rest);
    let name = if name.is_empty() { "index.html" } else { name };
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => answer(StatusCode::OK, a.content_type, Bytes::from_static(a.body)),
        None => answer(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from(format!(
                "no file {name:?} in the console; it starts at /ui/\n"
            )),
        ),
    }
}

fn answer(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    debug_assert!(headers.contains_key(CACHE_CONTROL));
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_page_and_its_files_are_served_with_the_policy() {
        for path in ["/ui", "/ui/", "/ui/index.html"] {
            let r = serve(path);
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert!(r.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"));
        }
        let r = serve("/ui/app.js");
        assert_eq!(r.headers()[CONTENT_TYPE], JS);
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        assert_eq!(serve("/ui/nothing.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve("/ui/a/app.js").status(), StatusCode::NOT_FOUND);
        assert!(serve("/ui/nothing.js")
            .headers()
            .contains_key("content-security-policy"));
    }

    /// Every module a file imports, and every file the page names, is embedded; and no file
    /// of `assets/` is left out of the table.
    #[test]
    fn every_file_referenced_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).unwrap();
            for (i, _) in text.match_indices("\"./") {
                let rest = &text[i + 3..];
                let file = &rest[..rest.find('"').unwrap()];
                assert!(
                    names.contains(&file),
                    "{} imports {file}, not embedded",
                    a.name
                );
            }
            for (i, _) in text.match_indices("\"/ui/") {
                let rest = &text[i + 5..];
                let file = &rest[..rest.find('"').unwrap()];
                assert!(
                    names.contains(&file),
                    "{} names /ui/{file}, not embedded",
                    a.name
                );
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui/assets");
        for entry in std::fs::read_dir(dir).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                names.contains(&file.as_str()),
                "assets/{file} is not embedded"
            );
        }
    }

    /// The pages never parse data as HTML, and never run code from a string.
    #[test]
    fn no_script_builds_markup_from_text() {
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(a.body).unwrap();
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                ".style.",
                "setAttribute(\"style",
            ] {
                assert!(!text.contains(banned), "{} uses {banned}", a.name);
            }
        }
    }
}
