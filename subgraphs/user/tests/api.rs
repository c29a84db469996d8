//! The user subgraph over HTTP on 127.0.0.1:0, each scenario on SQLite and on a fresh PostgreSQL database.

use shippy_contracts::streams;
use shippy_user::tokens::TokenIssuer;
use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use shippy_kit::{
    events::EventBus,
    outbox::entity as outbox,
    testing::{self, Backend, GqlResponse, GraphQLClient, TestDb, TestServer},
};

/// A running user subgraph; the server is dropped (stopped) before its database.
struct Harness {
    server: TestServer,
    client: GraphQLClient,
    bus: Arc<dyn EventBus>,
    db: TestDb,
}

async fn start(backend: Backend) -> Harness {
    let db = TestDb::create(backend).await;
    let bus = testing::bus();
    let config = testing::subgraph_config(&db.url);
    let run_bus = bus.clone();
    let server = TestServer::spawn(move |listener, shutdown| {
        shippy_kit::subgraph::run::<shippy_user::User>(listener, config, run_bus, shutdown)
    })
    .await;
    let client = server.client();
    Harness {
        server,
        client,
        bus,
        db,
    }
}

const REGISTER: &str = "mutation($input: RegisterInput!) {
    register(input: $input) { token user { id name company email createdAt } }
}";
const LOGIN: &str = "mutation($email: String!, $password: String!) {
    login(email: $email, password: $password) { token user { id email } }
}";
const ME: &str = "{ me { id name email } }";

fn input(name: &str, email: &str, password: &str) -> Value {
    json!({ "input": { "name": name, "company": "Acme Shipping", "email": email, "password": password } })
}

impl Harness {
    async fn register(&self, name: &str, email: &str) -> (String, String) {
        let resp = self
            .client
            .query(REGISTER, input(name, email, "correct horse battery"), None)
            .await;
        let payload = &resp.data()["register"];
        (
            payload["token"].as_str().unwrap().to_owned(),
            payload["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn outbox_count(&self, kind: &str) -> u64 {
        let conn = shippy_kit::db::connect(&self.db.url).await.unwrap();
        outbox::Entity::find()
            .filter(outbox::Column::Kind.eq(kind))
            .count(&conn)
            .await
            .unwrap()
    }
}

fn issuer() -> TokenIssuer {
    TokenIssuer::from_config(&testing::auth_config()).unwrap()
}

async fn register_login_and_me(backend: Backend) {
    let h = start(backend).await;
    let resp = h
        .client
        .query(
            REGISTER,
            input(" Ada Lovelace ", "Ada@Example.com", "correct horse battery"),
            None,
        )
        .await;
    let user = &resp.data()["register"]["user"];
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["company"], "Acme Shipping");
    assert_eq!(
        user["email"], "Ada@Example.com",
        "the new user sees their own email"
    );
    let id = user["id"].as_str().unwrap().to_owned();
    let token = resp.data()["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let me = h.client.query(ME, json!({}), Some(&token)).await;
    assert_eq!(me.data()["me"]["id"], id.as_str());
    assert_eq!(me.data()["me"]["email"], "Ada@Example.com");

    // Login is case-insensitive on the email.
    let login = h
        .client
        .query(
            LOGIN,
            json!({ "email": "ada@EXAMPLE.com", "password": "correct horse battery" }),
            None,
        )
        .await;
    assert_eq!(login.data()["login"]["user"]["id"], id.as_str());
    let token2 = login.data()["login"]["token"].as_str().unwrap();
    let claims = shippy_kit::auth::JwtVerifier::from_config(&testing::auth_config())
        .unwrap()
        .verify(token2)
        .unwrap();
    assert_eq!(claims.sub, id);
    assert_eq!(claims.email, "Ada@Example.com");
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("shippy", "shippy")
    );
    assert_eq!(claims.exp - claims.iat, 3600);
    assert!(claims.scopes.is_empty());

    // Without a token `me` is refused.
    let anon = h.client.query(ME, json!({}), None).await;
    assert_eq!(anon.code(), Some("UNAUTHENTICATED"));
}

async fn email_is_visible_only_to_its_owner(backend: Backend) {
    let h = start(backend).await;
    let (_, ada) = h.register("Ada", "ada@example.com").await;
    let (grace_token, _) = h.register("Grace", "grace@example.com").await;
    let query = "query($id: ID!) { user(id: $id) { id name email } }";

    let anon = h.client.query(query, json!({ "id": ada }), None).await;
    assert_eq!(anon.data()["user"]["name"], "Ada");
    assert_eq!(anon.data()["user"]["email"], Value::Null);
    let other = h
        .client
        .query(query, json!({ "id": ada }), Some(&grace_token))
        .await;
    assert_eq!(other.data()["user"]["email"], Value::Null);

    let missing = h
        .client
        .query(query, json!({ "id": uuid::Uuid::now_v7() }), None)
        .await;
    assert_eq!(missing.data()["user"], Value::Null);
    let bad = h
        .client
        .query(query, json!({ "id": "not-an-id" }), None)
        .await;
    assert_eq!(bad.code(), Some("BAD_USER_INPUT"));
}

async fn duplicate_emails_are_refused_case_insensitively(backend: Backend) {
    let h = start(backend).await;
    h.register("Ada", "ada@example.com").await;
    let again = h
        .client
        .query(
            REGISTER,
            input("Impostor", "ADA@example.COM", "another password"),
            None,
        )
        .await;
    assert_eq!(again.code(), Some("BAD_USER_INPUT"), "{:?}", again.body);
    assert_eq!(
        again.body["errors"][0]["extensions"]["field"],
        "input.email"
    );
    // The failed registration recorded nothing.
    assert_eq!(h.outbox_count("user.registered").await, 1);
}

async fn bad_inputs_name_the_field(backend: Backend) {
    let h = start(backend).await;
    let long = "x".repeat(101);
    let cases = [
        (
            json!({ "name": "", "email": "a@b.co", "password": "12345678" }),
            "input.name",
        ),
        (
            json!({ "name": long, "email": "a@b.co", "password": "12345678" }),
            "input.name",
        ),
        (
            json!({ "name": "A", "company": long, "email": "a@b.co", "password": "12345678" }),
            "input.company",
        ),
        (
            json!({ "name": "A", "email": "not-an-email", "password": "12345678" }),
            "input.email",
        ),
        (
            json!({ "name": "A", "email": "a@b.co", "password": "short" }),
            "input.password",
        ),
        (
            json!({ "name": "A", "email": "a@b.co", "password": "p".repeat(129) }),
            "input.password",
        ),
        // Display spoofing: a right-to-left override and a zero-width space.
        (
            json!({ "name": "Ada\u{202E}ecalevoL", "email": "a@b.co", "password": "12345678" }),
            "input.name",
        ),
        (
            json!({ "name": "A", "company": "Ac\u{200B}me", "email": "a@b.co", "password": "12345678" }),
            "input.company",
        ),
    ];
    for (input, field) in cases {
        let resp = h
            .client
            .query(REGISTER, json!({ "input": input }), None)
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.code(),
            Some("BAD_USER_INPUT"),
            "{input}: {:?}",
            resp.body
        );
        assert_eq!(
            resp.body["errors"][0]["extensions"]["field"], field,
            "{input}"
        );
    }
    // A blank company is the same as none.
    let resp = h
        .client
        .query(REGISTER, json!({ "input": { "name": "A", "company": "  ", "email": "a@b.co", "password": "12345678" } }), None)
        .await;
    assert_eq!(resp.data()["register"]["user"]["company"], Value::Null);
    assert_eq!(h.outbox_count("user.registered").await, 1);
}

async fn login_failures_are_generic(backend: Backend) {
    let h = start(backend).await;
    h.register("Ada", "ada@example.com").await;
    let wrong_password = h
        .client
        .query(
            LOGIN,
            json!({ "email": "ada@example.com", "password": "wrong password" }),
            None,
        )
        .await;
    let unknown = h
        .client
        .query(
            LOGIN,
            json!({ "email": "nobody@example.com", "password": "wrong password" }),
            None,
        )
        .await;
    for resp in [&wrong_password, &unknown] {
        assert_eq!(resp.code(), Some("UNAUTHENTICATED"), "{:?}", resp.body);
        assert_eq!(resp.message(), Some("invalid email or password"));
    }
    assert_eq!(h.outbox_count("user.logged_in").await, 0);
}

async fn expired_and_tampered_tokens_are_refused(backend: Backend) {
    let h = start(backend).await;
    let (token, id) = h.register("Ada", "ada@example.com").await;

    let expired = issuer()
        .issue_at(
            &id,
            "ada@example.com",
            vec![],
            chrono::Utc::now().timestamp() - 7200,
        )
        .unwrap();
    let resp = h.client.query(ME, json!({}), Some(&expired.token)).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.code(), Some("UNAUTHENTICATED"));
    assert!(resp.message().unwrap().contains("expired"));

    // The payload of one token with the signature of another.
    let other = issuer()
        .issue("someone-else", "x@example.com", vec![])
        .unwrap()
        .token;
    let (head_and_payload, _) = token.rsplit_once('.').unwrap();
    let (_, other_signature) = other.rsplit_once('.').unwrap();
    let tampered = format!("{head_and_payload}.{other_signature}");
    let resp = h.client.query(ME, json!({}), Some(&tampered)).await;
    assert_eq!(resp.status, 401);
    assert!(
        resp.message().unwrap().contains("signature"),
        "{:?}",
        resp.body
    );

    // Signed with another secret.
    let foreign = TokenIssuer::from_config(&shippy_kit::config::AuthConfig {
        secret: Some(shippy_kit::config::Secret::new(
            "some-other-secret-of-at-least-32-bytes",
        )),
        ..testing::auth_config()
    })
    .unwrap()
    .issue(&id, "ada@example.com", vec!["admin".into()])
    .unwrap();
    let resp = h
        .client
        .query("{ users { id } }", json!({}), Some(&foreign.token))
        .await;
    assert_eq!(resp.status, 401);
}

async fn listing_users_requires_admin_and_pages(backend: Backend) {
    let h = start(backend).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            h.register(&format!("User {n}"), &format!("u{n}@example.com"))
                .await
                .1,
        );
    }
    let query = "query($first: Int, $after: ID) { users(first: $first, after: $after) { id } }";
    let anon = h.client.query(query, json!({}), None).await;
    assert_eq!(anon.code(), Some("UNAUTHENTICATED"));
    let user_token = issuer()
        .issue(&ids[0], "u0@example.com", vec![])
        .unwrap()
        .token;
    let plain = h.client.query(query, json!({}), Some(&user_token)).await;
    assert_eq!(plain.code(), Some("FORBIDDEN"));

    let admin = issuer()
        .issue(&ids[0], "u0@example.com", vec!["admin".into()])
        .unwrap()
        .token;
    let page1 = h
        .client
        .query(query, json!({ "first": 2 }), Some(&admin))
        .await;
    let got: Vec<&str> = page1.data()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[0].as_str(), ids[1].as_str()]);
    let page2 = h
        .client
        .query(query, json!({ "first": 2, "after": ids[1] }), Some(&admin))
        .await;
    assert_eq!(page2.data()["users"], json!([{ "id": ids[2] }]));
    let too_many = h
        .client
        .query(query, json!({ "first": 1000 }), Some(&admin))
        .await;
    assert_eq!(too_many.code(), Some("BAD_USER_INPUT"));
    assert_eq!(too_many.body["errors"][0]["extensions"]["field"], "first");
}

async fn users_resolve_as_entities(backend: Backend) {
    let h = start(backend).await;
    let (_, ada) = h.register("Ada", "ada@example.com").await;
    let (_, grace) = h.register("Grace", "grace@example.com").await;
    let query =
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id name email } } }";
    let reps = json!({ "r": [
        { "__typename": "User", "id": grace },
        { "__typename": "User", "id": uuid::Uuid::now_v7() },
        { "__typename": "User", "id": ada },
    ] });
    let resp: GqlResponse = h.client.query(query, reps, None).await;
    assert_eq!(
        resp.data()["_entities"],
        json!([
            { "id": grace, "name": "Grace", "email": null },
            null,
            { "id": ada, "name": "Ada", "email": null },
        ])
    );
    let sdl = h
        .client
        .query("{ _service { sdl } }", json!({}), None)
        .await;
    assert_eq!(
        sdl.data()["_service"]["sdl"].as_str().unwrap().trim(),
        shippy_kit::subgraph::sdl::<shippy_user::User>().trim()
    );
}

async fn registrations_and_logins_are_published(backend: Backend) {
    let h = start(backend).await;
    let mut feed = h.bus.subscribe(streams::LOG).await.unwrap();
    let (_, id) = h.register("Ada", "ada@example.com").await;
    h.client
        .query(
            LOGIN,
            json!({ "email": "ada@example.com", "password": "correct horse battery" }),
            None,
        )
        .await;

    let mut kinds = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("event in time")
            .unwrap();
        assert_eq!(event.service, "user");
        assert_eq!(event.user_id.as_deref(), Some(id.as_str()));
        assert_eq!(event.payload["user_id"], id.as_str());
        kinds.push(event.kind);
    }
    assert_eq!(kinds, ["user.registered", "user.logged_in"]);
    let _ = &h.server;
}

shippy_kit::backend_tests!(
    register_login_and_me,
    email_is_visible_only_to_its_owner,
    duplicate_emails_are_refused_case_insensitively,
    bad_inputs_name_the_field,
    login_failures_are_generic,
    expired_and_tampered_tokens_are_refused,
    listing_users_requires_admin_and_pages,
    users_resolve_as_entities,
    registrations_and_logins_are_published,
);
