//! The case runner: starts a case's subgraphs and a router over its committed supergraph, runs
//! named checks against it and settles the outcomes against `KNOWN_FAILURES`.
//!
//! ```ignore
//! let mut run = Case::new("entities", subgraphs()).start().await;
//! run.check("single_key", "{ topReviews { author { name } } }")
//!     .expect(r#"{"data": {...}}"#)
//!     .calls("accounts", 1)
//!     .await;
//! run.finish();
//! ```

use std::{
    collections::HashMap,
    future::{Future, IntoFuture},
    pin::Pin,
};

use serde_json::Value as JsonValue;

use super::{
    json::{Json, compare_response},
    router::{self, RunningRouter, Target},
    schema::Journal,
    subgraph::{RunningSubgraph, Subgraph},
    supergraph,
};

/// A case: a name (which selects its committed supergraph) and its subgraphs.
pub struct Case {
    name: &'static str,
    subgraphs: Vec<Subgraph>,
}

impl Case {
    pub fn new(name: &'static str, subgraphs: Vec<Subgraph>) -> Case {
        Case { name, subgraphs }
    }

    /// Starts the subgraphs, rewrites the supergraph's URLs to theirs and starts the router.
    /// A failure to start is recorded and fails every check of the case, so it is reported
    /// (and can be a known failure) like any other outcome.
    pub async fn start(self) -> Run {
        // reqwest is built without a default TLS provider in this workspace (STACK.md).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let target = Target::from_env();
        let journal = Journal::default();
        let mut running = Vec::new();
        for subgraph in self.subgraphs {
            running.push(subgraph.start(journal.clone()).await);
        }
        let router = match load_supergraph(self.name, &running) {
            Ok(sdl) => router::start(&target, self.name, &sdl).await,
            Err(e) => Err(e),
        };
        let (router, startup_error) = match router {
            Ok(router) => (Some(router), None),
            Err(e) => (None, Some(e)),
        };
        Run {
            case: self.name,
            target,
            router,
            startup_error,
            subgraphs: running,
            journal,
            // A router that hangs fails its check instead of hanging the test binary.
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("HTTP client"),
            outcomes: Vec::new(),
            finished: false,
        }
    }
}

fn load_supergraph(case: &str, running: &[RunningSubgraph]) -> Result<String, String> {
    let path = supergraph::supergraph_path(case);
    let mut sdl = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {}: {e} (see tests/corpus/README.md)",
            path.display()
        )
    })?;
    for subgraph in running {
        sdl = supergraph::rewrite_url(&sdl, subgraph.name, &subgraph.url)?;
    }
    Ok(sdl)
}

/// A started case.
pub struct Run {
    case: &'static str,
    target: Target,
    router: Option<RunningRouter>,
    startup_error: Option<String>,
    subgraphs: Vec<RunningSubgraph>,
    journal: Journal,
    client: reqwest::Client,
    outcomes: Vec<(String, Result<(), String>)>,
    /// Set by `finish`; a case that forgets to settle its outcomes panics on drop.
    finished: bool,
}

/// How long a check waits for the router's response.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Run {
    /// A check named `name` (unique within the case) that sends `query`.
    pub fn check<'a>(&'a mut self, name: &str, query: &str) -> Check<'a> {
        Check {
            run: self,
            name: name.to_owned(),
            query: query.to_owned(),
            variables: None,
            operation_name: None,
            expected: None,
            calls: Vec::new(),
            representations: Vec::new(),
            journal: None,
            predicates: Vec::new(),
            request_predicates: Vec::new(),
        }
    }

    /// Settles the case: prints every outcome, then panics when a check failed that is not in
    /// `KNOWN_FAILURES`, when a listed check passed, or when a listed check of this case does not
    /// exist. Against Hive Router (a differential run) every failure is reported as one.
    pub fn finish(mut self) {
        self.finished = true;
        let known: Vec<&str> = match self.target {
            Target::Shippy => crate::KNOWN_FAILURES.to_vec(),
            Target::Hive(_) => Vec::new(),
        };
        let prefix = format!("{}/", self.case);
        let mut problems = Vec::new();
        for (id, outcome) in &self.outcomes {
            let listed = known.contains(&id.as_str());
            match (outcome, listed) {
                (Ok(()), false) => println!("corpus: PASS {id}"),
                (Err(e), true) => {
                    println!("corpus: KNOWN-FAIL {id}");
                    println!("    {}", e.replace('\n', "\n    "));
                }
                (Ok(()), true) => {
                    println!("corpus: PASS {id} (listed in KNOWN_FAILURES)");
                    problems.push(format!("{id} passes now: remove it from KNOWN_FAILURES"));
                }
                (Err(e), false) => {
                    println!("corpus: FAIL {id}");
                    problems.push(format!("{id} failed:\n{e}"));
                }
            }
        }
        for id in known.iter().filter(|id| id.starts_with(&prefix)) {
            if !self.outcomes.iter().any(|(ran, _)| ran == id) {
                problems.push(format!(
                    "KNOWN_FAILURES lists {id}, which is not a check of this case"
                ));
            }
        }
        if !problems.is_empty() {
            panic!("case {}:\n\n{}", self.case, problems.join("\n\n"));
        }
    }

    fn record(&mut self, name: &str, outcome: Result<(), String>) {
        assert!(
            !name.contains('/'),
            "check name {name:?} must not contain '/'"
        );
        let id = format!("{}/{name}", self.case);
        assert!(
            !self.outcomes.iter().any(|(ran, _)| *ran == id),
            "check {id} is defined twice"
        );
        self.outcomes.push((id, outcome));
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            panic!(
                "case {} ended without `finish()`: its outcomes were not checked",
                self.case
            );
        }
    }
}

/// One request and what must come of it; runs when awaited.
pub struct Check<'a> {
    run: &'a mut Run,
    name: String,
    query: String,
    variables: Option<JsonValue>,
    operation_name: Option<String>,
    expected: Option<String>,
    calls: Vec<(&'static str, usize)>,
    representations: Vec<(&'static str, usize)>,
    journal: Option<Vec<String>>,
    predicates: Vec<Predicate>,
    request_predicates: Vec<(&'static str, RequestPredicate)>,
}

/// A property of the response that an exact expectation cannot state (for instance that no
/// name anywhere in an introspection result starts with `join__`).
pub type Predicate = Box<dyn Fn(&Json) -> Result<(), String> + Send + Sync>;

/// A property of the request bodies one subgraph received during a check.
pub type RequestPredicate = Box<dyn Fn(&[JsonValue]) -> Result<(), String> + Send + Sync>;

impl<'a> Check<'a> {
    pub fn variables(mut self, variables: JsonValue) -> Check<'a> {
        self.variables = Some(variables);
        self
    }

    pub fn operation_name(mut self, name: &str) -> Check<'a> {
        self.operation_name = Some(name.to_owned());
        self
    }

    /// The whole expected response as JSON text (see [`compare_response`] for the rules).
    pub fn expect(mut self, response: &str) -> Check<'a> {
        self.expected = Some(response.to_owned());
        self
    }

    /// Subgraph `name` must receive exactly `count` requests during this check.
    pub fn calls(mut self, name: &'static str, count: usize) -> Check<'a> {
        self.calls.push((name, count));
        self
    }

    /// Subgraph `name` must receive exactly `count` entity representations in total during
    /// this check (proves deduplication and that nothing is fetched twice).
    pub fn representations(mut self, name: &'static str, count: usize) -> Check<'a> {
        self.representations.push((name, count));
        self
    }

    /// The journal entries the subgraphs append during this check, in order.
    pub fn journal(mut self, entries: &[&str]) -> Check<'a> {
        self.journal = Some(entries.iter().map(|e| (*e).to_owned()).collect());
        self
    }

    /// The response must satisfy `predicate`.
    pub fn satisfies(
        mut self,
        predicate: impl Fn(&Json) -> Result<(), String> + Send + Sync + 'static,
    ) -> Check<'a> {
        self.predicates.push(Box::new(predicate));
        self
    }

    /// The request bodies subgraph `name` received during this check must satisfy `predicate`.
    pub fn requests(
        mut self,
        name: &'static str,
        predicate: impl Fn(&[JsonValue]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Check<'a> {
        self.request_predicates.push((name, Box::new(predicate)));
        self
    }

    async fn run(self) {
        assert!(
            self.expected.is_some() || !self.predicates.is_empty(),
            "check {} asserts nothing about the response",
            self.name
        );
        let Check { run, name, .. } = &self;
        let outcome = match (&run.router, &run.startup_error) {
            (Some(router), _) => self.execute(&router.url).await,
            (None, error) => Err(format!(
                "router did not start: {}",
                error.as_deref().unwrap_or("unknown")
            )),
        };
        let name = name.clone();
        let outcome = outcome.map_err(|e| format!("query: {}\n{e}", self.query.trim()));
        self.run.record(&name, outcome);
    }

    async fn execute(&self, url: &str) -> Result<(), String> {
        let subgraphs: HashMap<&str, &RunningSubgraph> =
            self.run.subgraphs.iter().map(|s| (s.name, s)).collect();
        let before: HashMap<&str, usize> = subgraphs
            .iter()
            .map(|(name, s)| (*name, s.calls.len()))
            .collect();
        let journal_before = self.run.journal.entries().len();

        let mut body = serde_json::json!({ "query": self.query });
        if let Some(variables) = &self.variables {
            body["variables"] = variables.clone();
        }
        if let Some(operation_name) = &self.operation_name {
            body["operationName"] = JsonValue::String(operation_name.clone());
        }
        let response = self
            .run
            .client
            .post(url)
            .header(
                "accept",
                "application/graphql-response+json, application/json;q=0.9",
            )
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?;
        let actual = Json::parse(&text)
            .map_err(|e| format!("HTTP {status}: body is not JSON ({e}): {text}"))?;

        let mut problems = Vec::new();
        if let Some(expected) = &self.expected {
            let expected = Json::parse(expected).unwrap_or_else(|e| {
                panic!("check {}: expected response is not JSON: {e}", self.name)
            });
            if let Err(diff) = compare_response(&expected, &actual) {
                problems.push(diff);
            }
            // GraphQL over HTTP (application/graphql-response+json): a response without data
            // is a request error (4xx); one with non-null data is a 2xx.
            match actual.get("data") {
                None if !status.is_client_error() => {
                    problems.push(format!(
                        "HTTP {status} for a response without data, expected 4xx"
                    ));
                }
                Some(data) if *data != Json::Null && !status.is_success() => {
                    problems.push(format!(
                        "HTTP {status} for a response with data, expected 2xx"
                    ));
                }
                _ => {}
            }
        }
        for predicate in &self.predicates {
            if let Err(e) = predicate(&actual) {
                problems.push(e);
            }
        }
        for (name, expected) in &self.calls {
            let subgraph = subgraphs
                .get(name)
                .unwrap_or_else(|| panic!("no subgraph {name}"));
            let got = subgraph.calls.len() - before[name];
            if got != *expected {
                problems.push(format!(
                    "subgraph {name} got {got} request(s), expected {expected}: {}",
                    JsonValue::Array(subgraph.calls.since(before[name]))
                ));
            }
        }
        for (name, expected) in &self.representations {
            let subgraph = subgraphs
                .get(name)
                .unwrap_or_else(|| panic!("no subgraph {name}"));
            let calls = subgraph.calls.since(before[name]);
            let got: usize = calls
                .iter()
                .filter_map(|c| {
                    c.pointer("/variables/representations")?
                        .as_array()
                        .map(Vec::len)
                })
                .sum();
            if got != *expected {
                problems.push(format!(
                    "subgraph {name} got {got} representation(s), expected {expected}: {}",
                    JsonValue::Array(calls)
                ));
            }
        }
        for (name, predicate) in &self.request_predicates {
            let subgraph = subgraphs
                .get(name)
                .unwrap_or_else(|| panic!("no subgraph {name}"));
            if let Err(e) = predicate(&subgraph.calls.since(before[name])) {
                problems.push(format!("subgraph {name}: {e}"));
            }
        }
        if let Some(expected) = &self.journal {
            let entries = self.run.journal.entries()[journal_before..].to_vec();
            if entries != *expected {
                problems.push(format!("journal {entries:?}, expected {expected:?}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}\nactual (HTTP {status}):\n{}",
                problems.join("\n"),
                actual.to_pretty()
            ))
        }
    }
}

impl<'a> IntoFuture for Check<'a> {
    type Output = ();
    type IntoFuture = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
