//! The route table: every route of the API, once. It dispatches (`mod.rs` finds a request's
//! row with `router::find`), and the OpenAPI document is made from it (`openapi::document`).
//!
//! To add a route: a row here (method, path template, open or token, JSON body or not, the
//! handler, its OpenAPI operation), the handler in `jobs.rs` or `cluster.rs` (or a new handler
//! file), and the operation's summary and responses in `openapi.rs`. A path parameter is
//! `{id}`, a job id, decoded and checked before the handler runs (`Call::id`). The web
//! console (`crate::ui`) is one row at the end: open, and not in the OpenAPI document.

use std::sync::LazyLock;

use hyper::StatusCode;

use super::router::{Call, Reply, Route};
use super::{backfill, cluster, forward, jobs, openapi, reply};

/// Every route of the API, in the order of the README's list.
pub static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    vec![
        Route::get(
            "/health",
            |_| Box::pin(async { cluster::health() }),
            openapi::health,
        )
        .open(),
        Route::get(
            "/ready",
            |c| Box::pin(async move { cluster::ready(&c.state).await }),
            openapi::ready,
        ),
        Route::get(
            "/metrics",
            |c| Box::pin(async move { cluster::metrics(&c.state) }),
            openapi::metrics,
        ),
        Route::get("/v1/openapi.json", openapi_document, openapi::openapi),
        Route::get(
            "/v1/cronjobs",
            |c| Box::pin(async move { jobs::list(&c.state, &c.query).await }),
            openapi::list_jobs,
        ),
        Route::post(
            "/v1/cronjobs",
            |c| Box::pin(async move { jobs::create(&c.state, &c.body).await }),
            openapi::create_job,
        )
        .json_body(),
        Route::get(
            "/v1/cronjobs/{id}",
            |c| Box::pin(async move { jobs::get(&c.state, &c.id).await }),
            openapi::get_job,
        ),
        Route::put(
            "/v1/cronjobs/{id}",
            |c| Box::pin(async move { jobs::replace(&c.state, &c.id, &c.body, &c.headers).await }),
            openapi::replace_job,
        )
        .json_body(),
        Route::delete(
            "/v1/cronjobs/{id}",
            |c| Box::pin(async move { jobs::delete(&c.state, &c.id, &c.headers).await }),
            openapi::delete_job,
        ),
        Route::post(
            "/v1/validate",
            |c| Box::pin(async move { jobs::validate(&c.state, &c.body) }),
            openapi::validate_job,
        )
        .json_body(),
        Route::post(
            "/v1/cronjobs/{id}/pause",
            |c| Box::pin(async move { jobs::set_paused(&c.state, &c.id, true, &c.headers).await }),
            openapi::pause_job,
        ),
        Route::post(
            "/v1/cronjobs/{id}/resume",
            |c| Box::pin(async move { jobs::set_paused(&c.state, &c.id, false, &c.headers).await }),
            openapi::resume_job,
        ),
        Route::post(
            "/v1/cronjobs/{id}/run",
            |c| Box::pin(async move { jobs::run(&c.state, &c.id, &c.headers).await }),
            openapi::run_job,
        ),
        Route::post(
            "/v1/cronjobs/{id}/backfill",
            |c| {
                Box::pin(
                    async move { backfill::backfill(&c.state, &c.id, &c.body, &c.headers).await },
                )
            },
            openapi::backfill_job,
        )
        .json_body(),
        Route::post(
            "/v1/cronjobs/{id}/sync",
            |c| {
                Box::pin(
                    async move { forward::apply_job_change(&c.state, &c.headers, &c.id).await },
                )
            },
            openapi::sync_job,
        ),
        Route::get(
            "/v1/cronjobs/{id}/fires",
            |c| Box::pin(async move { jobs::fires(&c.state, &c.id).await }),
            openapi::job_fires,
        ),
        Route::get(
            "/v1/leader",
            |c| Box::pin(async move { cluster::leader(&c.state).await }),
            openapi::leader,
        ),
        Route::post(
            "/v1/leader/fence/reset",
            |c| Box::pin(async move { cluster::fence_reset(&c.state, &c.headers).await }),
            openapi::fence_reset,
        ),
        Route::get(
            "/v1/leader/activity",
            |c| Box::pin(async move { cluster::activity(&c.state, &c.headers).await }),
            openapi::leader_activity,
        ),
        Route::get(
            "/v1/nodes",
            |c| Box::pin(async move { cluster::nodes(&c.state).await }),
            openapi::nodes,
        ),
        Route::get(
            "/v1/status",
            |c| Box::pin(async move { cluster::status(&c.state).await }),
            openapi::status,
        ),
        Route::get(
            "/v1/schedule",
            |c| Box::pin(async move { cluster::schedule(&c.query) }),
            openapi::schedule,
        ),
        Route::console("/ui/{*rest}", |c| {
            Box::pin(async move { Ok(crate::ui::serve(&c.path)) })
        }),
    ]
});

/// `GET /v1/openapi.json`: the document of this table.
fn openapi_document(_: Call) -> Reply {
    let doc = openapi::document(&ROUTES);
    Box::pin(async move { Ok(reply::json_response(StatusCode::OK, &doc)) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use hyper::Method;

    use super::*;
    use crate::api::router::{find, Access, ID};

    /// A request for `template`, with `x` for the id.
    fn path_of(template: &str) -> String {
        template.replace(ID, "x")
    }

    #[test]
    fn every_route_dispatches_to_itself() {
        for r in ROUTES.iter() {
            let found = find(&ROUTES, &r.method, &path_of(r.path));
            let (route, id) = found
                .route
                .unwrap_or_else(|e| panic!("{} {}: {e:?}", r.method, r.path));
            assert!(
                std::ptr::eq(route, r),
                "{} {} is shadowed by {}",
                r.method,
                r.path,
                route.path
            );
            assert_eq!(id, if r.path.contains(ID) { "x" } else { "" });
            assert_eq!(found.open, r.access == Access::Open, "{}", r.path);
        }
        let unique: BTreeSet<_> = ROUTES.iter().map(|r| (r.method.as_str(), r.path)).collect();
        assert_eq!(unique.len(), ROUTES.len(), "a method and path twice");
    }

    #[test]
    fn the_document_lists_exactly_the_table() {
        let doc = openapi::document(&ROUTES);
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    assert_eq!(item["parameters"][0]["name"], "id", "{path}");
                    continue;
                }
                assert!(op["summary"].is_string(), "{method} {path}: no summary");
                assert!(op["responses"].is_object(), "{method} {path}: no responses");
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let served: BTreeSet<_> = ROUTES
            .iter()
            .filter(|r| r.doc.is_some())
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(documented, served);
        assert_eq!(
            doc["paths"]["/health"]["get"]["security"],
            serde_json::json!([])
        );
        assert!(doc["paths"]["/v1/status"]["get"]["responses"]["401"].is_object());
        // The console is served, open, and no part of the API's document.
        let console = find(&ROUTES, &Method::GET, "/ui/app.js");
        assert!(console.open);
        assert!(console.route.unwrap().0.doc.is_none());
        assert!(doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| !p.starts_with("/ui")));
    }

    #[test]
    fn what_no_route_matches() {
        let status = |m: Method, p: &str| match find(&ROUTES, &m, p).route {
            Ok((r, _)) => r.path.to_string(),
            Err(e) => format!("{} {}", e.status.as_u16(), e.message),
        };
        // A trailing slash names the same resource.
        assert_eq!(status(Method::GET, "/v1/cronjobs/"), "/v1/cronjobs");
        assert!(status(Method::PATCH, "/v1/cronjobs").starts_with("405 PATCH"));
        assert!(status(Method::GET, "/v2/nothing").starts_with("404 no route /v2/nothing"));
        let slash = status(Method::GET, "/v1/cronjobs/a/b");
        assert!(slash.starts_with("400 job id \"a/b\""), "{slash}");
        let action = status(Method::POST, "/v1/cronjobs/a/explode");
        assert!(action.contains("the action \"explode\""), "{action}");
        // A bad id is named before the method is judged.
        assert!(status(Method::PATCH, "/v1/cronjobs/a..b").starts_with("400"));
        // HEAD is answered where GET is.
        assert_eq!(status(Method::HEAD, "/health"), "/health");
        assert_eq!(status(Method::HEAD, "/v1/cronjobs/x"), "/v1/cronjobs/{id}");
        assert!(status(Method::HEAD, "/v1/leader/fence/reset").starts_with("405"));
        // /health is open, whatever the method; nothing else is.
        assert!(find(&ROUTES, &Method::POST, "/health").open);
        assert!(!find(&ROUTES, &Method::GET, "/v2/nothing").open);
    }
}
