//! Janus's Admin API over HTTP (`http://127.0.0.1:<port>/admin`).
//!
//! Shapes in Janus 1.1.2 (checked against the running server):
//! - every request needs `transaction` and `admin_secret` (but `info` and
//!   `ping`); a wrong secret answers `{"janus":"error","error":{"code":403,..}}`;
//! - server-wide requests go to `/admin`: `list_sessions` answers
//!   `{"janus":"success","transaction":..,"sessions":[ids]}`,
//!   `query_eventhandler` (`handler`, `request`) answers
//!   `{"janus":"success","transaction":..,"response":{..}}` (an unknown handler
//!   is error 460 "Invalid event handler"), `custom_event` (`schema`, `data`)
//!   answers a bare success and reaches the event handlers as type 4;
//! - session requests (`destroy_session`, `set_session_timeout`,
//!   `list_handles`) need the session: on the path (`/admin/<session>`) or as
//!   `session_id` in the body of a POST to `/admin` (the rig uses the path).

use serde_json::{Value, json};

use super::http::{expect_success, post_json};
use super::transaction;

/// The secret the rig writes into janus.jcfg.
pub const ADMIN_SECRET: &str = "janusoverlord";

#[derive(Debug, Clone)]
pub struct Admin {
    base: String,
}

impl Admin {
    pub fn new(base: impl Into<String>) -> Admin {
        Admin { base: base.into() }
    }

    /// POSTs `body` plus `transaction` and `admin_secret` (unless `body` has
    /// them) to the base URL + `path`; returns Janus's reply.
    pub fn post(&self, path: &str, mut body: Value) -> Value {
        if body.get("transaction").is_none() {
            body["transaction"] = json!(transaction());
        }
        if body.get("admin_secret").is_none() {
            body["admin_secret"] = json!(ADMIN_SECRET);
        }
        post_json(&format!("{}{path}", self.base), &body)
    }

    /// A server-wide request, to `/admin`; returns Janus's whole reply.
    pub fn request(&self, body: Value) -> Value {
        self.post("", body)
    }

    /// A session request, to `/admin/<session>` (e.g. `set_session_timeout`,
    /// `list_handles`); returns Janus's whole reply.
    pub fn session_request(&self, session: u64, body: Value) -> Value {
        self.post(&format!("/{session}"), body)
    }

    /// A handle request, to `/admin/<session>/<handle>` (e.g. `handle_info`).
    pub fn handle_request(&self, session: u64, handle: u64, body: Value) -> Value {
        self.post(&format!("/{session}/{handle}"), body)
    }

    /// The ids of the live sessions.
    pub fn list_sessions(&self) -> Vec<u64> {
        let reply = expect_success(
            "list_sessions",
            self.request(json!({"janus": "list_sessions"})),
        );
        reply["sessions"]
            .as_array()
            .unwrap_or_else(|| panic!("list_sessions: no sessions array in {reply}"))
            .iter()
            .map(|id| {
                id.as_u64()
                    .unwrap_or_else(|| panic!("list_sessions: bad id in {reply}"))
            })
            .collect()
    }

    /// Destroys a session as an operator would; panics unless Janus answers
    /// success (use [`Admin::session_request`] to see an error).
    pub fn destroy_session(&self, session: u64) -> Value {
        let reply = self.session_request(session, json!({"janus": "destroy_session"}));
        expect_success("destroy_session", reply)
    }

    /// Sends `request` to an event handler (`handler` is its package name,
    /// e.g. `janus.eventhandler.lifecycleevh`); returns Janus's whole reply,
    /// whose `response` is what the handler answered.
    pub fn query_eventhandler(&self, handler: &str, request: Value) -> Value {
        self.request(json!({"janus": "query_eventhandler", "handler": handler, "request": request}))
    }

    /// Injects an external event (type 4) into the event handlers; panics
    /// unless Janus answers success.
    pub fn custom_event(&self, schema: &str, data: Value) -> Value {
        let reply = self.request(json!({"janus": "custom_event", "schema": schema, "data": data}));
        expect_success("custom_event", reply)
    }
}
