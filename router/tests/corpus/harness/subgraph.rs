//! One corpus subgraph: its SDL, data and behaviour, served over HTTP on `127.0.0.1:0`.
//!
//! Every request a subgraph receives is recorded, so a case can check what the router asked
//! (how many calls, which representations) and not only what it answered.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_graphql::{SDLExportOptions, dynamic::Schema};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value as JsonValue;
use tokio::{net::TcpListener, sync::oneshot};

use crate::mock::{Down, MockServer};

use super::{
    json::Json,
    schema::{self, Behaviour, Ctx, Journal},
};

/// Rewrites a subgraph's JSON response (given the request body) before it is sent: simulates
/// a subgraph that breaks its own schema (a null where it promised a value) or answers like
/// other GraphQL servers do, which async-graphql never does itself.
pub type Tamper = Arc<dyn Fn(&JsonValue, &mut Json) + Send + Sync>;

/// A subgraph definition, built by a case.
pub struct Subgraph {
    name: &'static str,
    sdl: &'static str,
    fed1: bool,
    behaviour: Behaviour,
    tamper: Option<Tamper>,
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    Serve,
    /// Nothing listens at its address: connections are refused.
    Down,
    /// Every request gets this status and body instead of a GraphQL response.
    Raw(StatusCode, &'static str),
}

impl Subgraph {
    /// A Federation 2 subgraph named `name` (the name composition gives it) with schema `sdl`.
    pub fn new(name: &'static str, sdl: &'static str) -> Subgraph {
        Subgraph {
            name,
            sdl,
            fed1: false,
            behaviour: Behaviour {
                root: JsonValue::Object(Default::default()),
                ..Default::default()
            },
            tamper: None,
            mode: Mode::Serve,
        }
    }

    /// A Federation 1 subgraph: its exported SDL carries no `@link`, so composition reads it
    /// with Federation 1 rules (`extend type`, `@external` keys, everything shareable).
    pub fn fed1(name: &'static str, sdl: &'static str) -> Subgraph {
        Subgraph {
            fed1: true,
            ..Subgraph::new(name, sdl)
        }
    }

    /// The object root fields (`Query` and `Mutation`) read from.
    pub fn root(mut self, root: JsonValue) -> Subgraph {
        self.behaviour.root = root;
        self
    }

    /// Rows of entity type `type_name` (a JSON list of objects), found by `@key`.
    pub fn rows(mut self, type_name: &str, rows: JsonValue) -> Subgraph {
        let JsonValue::Array(rows) = rows else {
            panic!("rows of {type_name} must be a JSON list");
        };
        self.behaviour.rows.insert(type_name.to_owned(), rows);
        self
    }

    /// Resolves `Type.field` with `resolver` instead of reading the parent's JSON.
    pub fn resolve(
        mut self,
        path: &str,
        resolver: impl Fn(&mut Ctx<'_>) -> Result<JsonValue, String> + Send + Sync + 'static,
    ) -> Subgraph {
        self.behaviour
            .resolvers
            .insert(path.to_owned(), Arc::new(resolver));
        self
    }

    /// Makes `Type.field` wait `delay` before resolving.
    pub fn delay(mut self, path: &str, delay: Duration) -> Subgraph {
        self.behaviour.delays.insert(path.to_owned(), delay);
        self
    }

    /// Resolves entities of `type_name` from the representation alone (no rows kept).
    pub fn key_only(mut self, type_name: &str) -> Subgraph {
        self.behaviour.key_only.insert(type_name.to_owned());
        self
    }

    /// Rewrites every response (given the request body) before sending it.
    pub fn tamper(
        mut self,
        tamper: impl Fn(&JsonValue, &mut Json) + Send + Sync + 'static,
    ) -> Subgraph {
        self.tamper = Some(Arc::new(tamper));
        self
    }

    /// Nobody listens at this subgraph's address.
    pub fn down(mut self) -> Subgraph {
        self.mode = Mode::Down;
        self
    }

    /// Answers every request with `status` and `body` (not GraphQL).
    pub fn raw(mut self, status: StatusCode, body: &'static str) -> Subgraph {
        self.mode = Mode::Raw(status, body);
        self
    }

    /// The subgraph's name in the supergraph.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The SDL composition reads: exported by async-graphql from the executable schema.
    pub fn exported_sdl(&self) -> String {
        let schema = schema::build(
            self.name,
            self.sdl,
            self.behaviour.clone(),
            Journal::default(),
        );
        let sdl = schema.sdl_with_options(SDLExportOptions::new().federation());
        if self.fed1 { strip_link(&sdl) } else { sdl }
    }

    /// Serves the subgraph on `127.0.0.1:0` until the returned handle is dropped.
    pub async fn start(self, journal: Journal) -> RunningSubgraph {
        let calls = Calls::default();
        if matches!(self.mode, Mode::Down) {
            // The port stays bound (connections are closed at once) so nothing else takes it.
            let down = Down::start().await;
            return RunningSubgraph {
                name: self.name,
                url: down.url.clone(),
                calls,
                _stop: None,
                _server: None,
                _down: Some(down),
            };
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind subgraph");
        let addr = listener.local_addr().expect("subgraph address");
        let url = format!("http://{addr}/graphql");
        let schema = schema::build(self.name, self.sdl, self.behaviour, journal);
        let state = Arc::new(Served {
            schema,
            tamper: self.tamper,
            mode: self.mode,
            calls: calls.clone(),
        });
        let app = Router::new()
            .route("/graphql", post(handle))
            .with_state(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = MockServer::spawn(listener, app, async move {
            let _ = stopped.await;
        });
        RunningSubgraph {
            name: self.name,
            url,
            calls,
            _stop: Some(stop),
            _server: Some(server),
            _down: None,
        }
    }
}

/// Removes async-graphql's `extend schema @link(...)` block.
fn strip_link(sdl: &str) -> String {
    let mut out = String::with_capacity(sdl.len());
    let mut in_link = false;
    for line in sdl.lines() {
        if line.starts_with("extend schema @link(") {
            in_link = true;
            continue;
        }
        if in_link {
            if line.trim() == ")" {
                in_link = false;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A subgraph being served.
pub struct RunningSubgraph {
    pub name: &'static str,
    pub url: String,
    pub calls: Calls,
    /// Dropping it stops the server.
    _stop: Option<oneshot::Sender<()>>,
    /// Dropped after `_stop`: fails the test if the subgraph panicked.
    _server: Option<MockServer>,
    /// A subgraph that is down, its port held.
    _down: Option<Down>,
}

/// The request bodies a subgraph received, in arrival order.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<JsonValue>>>);

impl Calls {
    fn push(&self, body: JsonValue) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(body);
    }

    /// How many requests arrived so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The bodies received since the first `from` requests.
    pub fn since(&self, from: usize) -> Vec<JsonValue> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())[from..].to_vec()
    }
}

struct Served {
    schema: Schema,
    tamper: Option<Tamper>,
    mode: Mode,
    calls: Calls,
}

async fn handle(State(served): State<Arc<Served>>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Result<JsonValue, String> =
        serde_json::from_slice(&body).map_err(|e| e.to_string());
    let recorded = parsed
        .clone()
        .unwrap_or_else(|_| JsonValue::String(String::from_utf8_lossy(&body).into_owned()));
    served.calls.push(recorded.clone());
    if let Mode::Raw(status, text) = served.mode {
        return (status, text).into_response();
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "subgraph expects application/json",
        )
            .into_response();
    }
    let request: async_graphql::Request = match parsed
        .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
    {
        Ok(request) => request,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad GraphQL request: {e}")).into_response();
        }
    };
    let response = served.schema.execute(request).await;
    // Serialized straight from async-graphql's ordered response, so fields keep selection order.
    let mut text = serde_json::to_string(&response).expect("serialize subgraph response");
    if let Some(tamper) = &served.tamper {
        let mut json = Json::parse(&text).expect("subgraph response is JSON");
        tamper(&recorded, &mut json);
        text = json.to_compact();
    }
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// A small pause used by cases that prove ordering.
pub const SLOW: Duration = Duration::from_millis(60);
