//! `shippy demo`: the original command-line demo, through the router. It registers a fresh user, logs
//! in, creates a vessel, ships a consignment and prints it once the vessel subgraph has assigned it
//! (or found no room). Everything goes through the router's one endpoint, so it shows federation at
//! work against `shippy up` or any deployment. Operations are sent as trusted documents (their
//! `documentId`, the SHA-256 of the text, as listed in the router's first-party manifest), so the
//! demo also runs against a router that only accepts those; a router that does not know the id
//! gets the text instead.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::{Value, json};

/// `shippy demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The router: its base URL or its GraphQL endpoint.
    #[arg(
        long,
        env = "SHIPPY_ROUTER_URL",
        default_value = "http://127.0.0.1:4000/graphql",
        value_name = "URL"
    )]
    pub router: String,
    /// How long to wait for the consignment to be assigned.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot reach the router at {url} (is `shippy up` running?): {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{step}: the router answered HTTP {status} without a GraphQL response")]
    NotGraphQL { step: &'static str, status: u16 },
    #[error("{step} failed: {message} ({code})")]
    Api {
        step: &'static str,
        message: String,
        code: String,
    },
    #[error("{step}: the answer lacks {what}")]
    Unexpected {
        step: &'static str,
        what: &'static str,
    },
    #[error(
        "the consignment was still {status} after {waited:?}: is the vessel subgraph handling events?"
    )]
    NotAssigned { status: String, waited: Duration },
}

const REGISTER: &str = "mutation Register($input: RegisterInput!) { register(input: $input) { user { id name email } } }";
const LOGIN: &str = "mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { token } }";
const CREATE_VESSEL: &str = "mutation CreateVessel($input: CreateVesselInput!) { createVessel(input: $input) { id name capacity maxWeight } }";
const CREATE_CONSIGNMENT: &str = "mutation CreateConsignment($input: CreateConsignmentInput!) { createConsignment(input: $input) { id status } }";
const CONSIGNMENT: &str = "query Consignment($id: ID!) { consignment(id: $id) { id description weight status containers { customerId origin } vessel { name owner { name } } owner { name } } }";

/// Every operation the demo sends: the router's first-party manifest lists them
/// (`router/web/persisted-documents.json`, checked by `tests/first_party_documents.rs`).
pub const OPERATIONS: &[&str] = &[
    REGISTER,
    LOGIN,
    CREATE_VESSEL,
    CREATE_CONSIGNMENT,
    CONSIGNMENT,
];

/// A trusted document's id: the SHA-256 of its text, in hex (Apollo's convention).
pub fn document_id(text: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let mut id = String::with_capacity(64);
    for byte in Sha256::digest(text.as_bytes()) {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// Codes with which a router says it does not know a document id (or ids at all).
const UNKNOWN_DOCUMENT: &[&str] = &[
    "PERSISTED_QUERY_NOT_FOUND",
    "PERSISTED_QUERY_NOT_SUPPORTED",
    "BAD_REQUEST",
];

/// Runs the demo, printing each step to stdout; returns the final consignment.
pub async fn run(args: &DemoArgs) -> Result<Value, DemoError> {
    let url = endpoint(&args.router);
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| DemoError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?,
        url,
        token: None,
    };
    println!("Shippy demo against {}", client.url);

    // A fresh address every run, so the demo can be repeated against the same system.
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let email = format!("demo-{stamp}@shippy.example");
    let password = "demo password 123";
    let registered = client
        .call(
            "register",
            REGISTER,
            json!({ "input": { "name": "Demo Shipper", "company": "Shippy Demo Ltd", "email": email, "password": password } }),
        )
        .await?;
    println!(
        "1. registered {} <{}>",
        registered["register"]["user"]["name"]
            .as_str()
            .unwrap_or("?"),
        email
    );

    let login = client
        .call(
            "log in",
            LOGIN,
            json!({ "email": email, "password": password }),
        )
        .await?;
    let token = login["login"]["token"]
        .as_str()
        .ok_or(DemoError::Unexpected {
            step: "log in",
            what: "a token",
        })?
        .to_owned();
    let client = Client {
        token: Some(token),
        ..client
    };
    println!("2. logged in, got a token");

    let vessel = client
        .call(
            "create a vessel",
            CREATE_VESSEL,
            json!({ "input": { "name": format!("Boaty McBoatface {stamp}"), "capacity": 500, "maxWeight": 200000 } }),
        )
        .await?;
    let vessel = &vessel["createVessel"];
    println!(
        "3. created vessel {} (capacity {} containers, max weight {} kg)",
        vessel["name"].as_str().unwrap_or("?"),
        vessel["capacity"],
        vessel["maxWeight"]
    );

    let containers: Vec<Value> = (1..=3)
        .map(|i| json!({ "customerId": format!("cust00{i}"), "origin": "Manchester, United Kingdom" }))
        .collect();
    let created = client
        .call(
            "create a consignment",
            CREATE_CONSIGNMENT,
            json!({ "input": { "description": "This is a test consignment", "weight": 55000, "containers": containers } }),
        )
        .await?;
    let id = created["createConsignment"]["id"]
        .as_str()
        .ok_or(DemoError::Unexpected {
            step: "create a consignment",
            what: "an id",
        })?
        .to_owned();
    println!(
        "4. shipped consignment {id}: {}; waiting for a vessel",
        created["createConsignment"]["status"]
            .as_str()
            .unwrap_or("?")
    );

    let started = Instant::now();
    loop {
        let found = client
            .call("read the consignment", CONSIGNMENT, json!({ "id": id }))
            .await?;
        let consignment = found["consignment"].clone();
        let status = consignment["status"].as_str().unwrap_or("?").to_owned();
        if status != "PENDING" {
            println!("5. consignment {status}:");
            println!(
                "{}",
                serde_json::to_string_pretty(&consignment).unwrap_or_default()
            );
            return Ok(consignment);
        }
        if started.elapsed() >= args.timeout {
            return Err(DemoError::NotAssigned {
                status,
                waited: args.timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The GraphQL endpoint for `router`: a base URL gets `/graphql`.
fn endpoint(router: &str) -> String {
    let trimmed = router.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/graphql")
    }
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    /// Sends one operation by its document id, falling back to its text where the router does
    /// not know the id; its `data`, or the first GraphQL error as [`DemoError::Api`].
    async fn call(
        &self,
        step: &'static str,
        query: &str,
        variables: Value,
    ) -> Result<Value, DemoError> {
        let by_id = json!({ "documentId": document_id(query), "variables": variables });
        match self.send(step, by_id).await {
            Err(DemoError::Api { code, .. }) if UNKNOWN_DOCUMENT.contains(&code.as_str()) => {
                self.send(step, json!({ "query": query, "variables": variables }))
                    .await
            }
            answer => answer,
        }
    }

    async fn send(&self, step: &'static str, payload: Value) -> Result<Value, DemoError> {
        let mut request = self.http.post(&self.url).json(&payload);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| DemoError::Unreachable {
            url: self.url.clone(),
            // With its causes: "error sending request: ... Connection refused".
            reason: format!("{:#}", anyhow::Error::from(e)),
        })?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|_| DemoError::NotGraphQL { step, status })?;
        if let Some(error) = body["errors"].as_array().and_then(|e| e.first()) {
            return Err(DemoError::Api {
                step,
                message: error["message"].as_str().unwrap_or("?").to_owned(),
                code: error["extensions"]["code"]
                    .as_str()
                    .unwrap_or("no code")
                    .to_owned(),
            });
        }
        match body.get("data") {
            Some(data) if data.is_object() => Ok(data.clone()),
            _ => Err(DemoError::NotGraphQL { step, status }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn a_base_url_gets_the_graphql_path() {
        assert_eq!(
            endpoint("http://127.0.0.1:4000"),
            "http://127.0.0.1:4000/graphql"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:4000/"),
            "http://127.0.0.1:4000/graphql"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:4000/graphql"),
            "http://127.0.0.1:4000/graphql"
        );
        assert_eq!(
            endpoint("https://api.example/gql/"),
            "https://api.example/gql"
        );
    }
}
