//! Issue 14 in the user subgraph: login limits per account and per client IP (answered `RATE_LIMITED`
//! with `retryAfter`, before any password is checked), and `logout` recording the token's id in the
//! revocation store until the token expires. Run against the schema with the request data the HTTP
//! server would add (the caller and the client IP), so the client IP can be chosen per request.

use std::{net::IpAddr, sync::Arc, time::Duration};

use async_graphql::{Request, Response, Variables};
use serde_json::{Value, json};
use shippy_kit::{
    auth::{Caller, ClientIp, JwtVerifier},
    config::LoginLimitConfig,
    subgraph,
    testing::{self, Backend, TestDb},
};
use shippy_security::revocation::{MemoryRevocations, RevocationStore};
use shippy_user::{User, UserSchema, UserService};

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token } }";
const LOGIN: &str = "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }";
const LOGOUT: &str = "mutation { logout }";
const PASSWORD: &str = "correct horse battery";

struct Harness {
    schema: UserSchema,
    revocations: Arc<MemoryRevocations>,
    verifier: JwtVerifier,
    _db: TestDb,
}

async fn start(limits: LoginLimitConfig) -> Harness {
    let db = TestDb::create(Backend::Sqlite).await;
    let revocations = Arc::new(MemoryRevocations::default());
    let mut config = testing::subgraph_config(&db.url);
    config.auth.login_limits = limits;
    config.revocations = Some(revocations.clone());
    let verifier = JwtVerifier::from_config(&config.auth).unwrap();
    let server = config.server.clone();
    let service = UserService::start(config, testing::bus()).await.unwrap();
    let schema = subgraph::schema::<User>(&server, Some(service.state().clone()));
    Harness {
        schema,
        revocations,
        verifier,
        _db: db,
    }
}

fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([198, 51, 100, last]))
}

impl Harness {
    async fn run(
        &self,
        query: &str,
        variables: Value,
        caller: Caller,
        ip: Option<IpAddr>,
    ) -> Response {
        self.schema
            .execute(
                Request::new(query)
                    .variables(Variables::from_json(variables))
                    .data(caller)
                    .data(ClientIp(ip)),
            )
            .await
    }

    async fn register(&self, email: &str) -> String {
        let input = json!({ "input": { "name": "Ada", "email": email, "password": PASSWORD } });
        let resp = self.run(REGISTER, input, Caller::Anonymous, None).await;
        assert!(resp.errors.is_empty(), "{:?}", resp.errors);
        resp.data.into_json().unwrap()["register"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn login(&self, email: &str, password: &str, ip: Option<IpAddr>) -> Response {
        let vars = json!({ "email": email, "password": password });
        self.run(LOGIN, vars, Caller::Anonymous, ip).await
    }
}

fn code(resp: &Response) -> Option<String> {
    let error = resp.errors.first()?;
    let value = error.extensions.as_ref()?.get("code")?;
    match value {
        async_graphql::Value::String(code) => Some(code.clone()),
        _ => None,
    }
}

fn retry_after(resp: &Response) -> Option<u64> {
    let value = resp
        .errors
        .first()?
        .extensions
        .as_ref()?
        .get("retryAfter")?;
    match value.clone().into_json().ok()? {
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn limits() -> LoginLimitConfig {
    LoginLimitConfig {
        account_failures: 3,
        account_window: Duration::from_secs(900),
        ip_attempts: 6,
        ip_window: Duration::from_secs(60),
        ..LoginLimitConfig::default()
    }
}

#[tokio::test]
async fn an_account_is_limited_after_its_failures_even_with_the_right_password() {
    let h = start(limits()).await;
    h.register("ada@example.com").await;
    // Each failure from another address, so only the account limit can apply.
    for n in 1..=3 {
        let resp = h.login("Ada@Example.com ", "wrong password", ip(n)).await;
        assert_eq!(
            code(&resp).as_deref(),
            Some("UNAUTHENTICATED"),
            "{:?}",
            resp.errors
        );
    }
    let resp = h.login("ada@example.com", PASSWORD, ip(10)).await;
    assert_eq!(
        code(&resp).as_deref(),
        Some("RATE_LIMITED"),
        "{:?}",
        resp.errors
    );
    let retry = retry_after(&resp).unwrap();
    assert!((890..=900).contains(&retry), "{retry}");
    assert!(resp.data.into_json().unwrap().is_null());

    // An email without an account is limited the same way: the limit says nothing about who exists.
    for _ in 0..3 {
        let resp = h.login("nobody@example.com", "guess", ip(20)).await;
        assert_eq!(code(&resp).as_deref(), Some("UNAUTHENTICATED"));
    }
    let resp = h.login("nobody@example.com", "guess", ip(21)).await;
    assert_eq!(code(&resp).as_deref(), Some("RATE_LIMITED"));

    // Other accounts are not affected.
    h.register("bob@example.com").await;
    let resp = h.login("bob@example.com", PASSWORD, ip(30)).await;
    assert!(resp.errors.is_empty(), "{:?}", resp.errors);
}

#[tokio::test]
async fn a_correct_password_clears_the_account_failures() {
    let h = start(limits()).await;
    h.register("ada@example.com").await;
    for round in 0..3 {
        for _ in 0..2 {
            let resp = h.login("ada@example.com", "wrong", ip(round)).await;
            assert_eq!(code(&resp).as_deref(), Some("UNAUTHENTICATED"));
        }
        let resp = h.login("ada@example.com", PASSWORD, ip(round)).await;
        assert!(resp.errors.is_empty(), "round {round}: {:?}", resp.errors);
    }
}

#[tokio::test]
async fn a_client_ip_is_limited_across_accounts() {
    let h = start(limits()).await;
    h.register("ada@example.com").await;
    // Six attempts from one address, successful or not, each for another account.
    for n in 0..6 {
        let email = if n == 0 {
            "ada@example.com".to_owned()
        } else {
            format!("user{n}@example.com")
        };
        let password = if n == 0 { PASSWORD } else { "guess" };
        let resp = h.login(&email, password, ip(1)).await;
        assert_ne!(code(&resp).as_deref(), Some("RATE_LIMITED"), "attempt {n}");
    }
    let resp = h.login("ada@example.com", PASSWORD, ip(1)).await;
    assert_eq!(code(&resp).as_deref(), Some("RATE_LIMITED"));
    let retry = retry_after(&resp).unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another address logs in.
    let resp = h.login("ada@example.com", PASSWORD, ip(2)).await;
    assert!(resp.errors.is_empty(), "{:?}", resp.errors);
}

#[tokio::test]
async fn logout_revokes_the_presented_token_until_it_expires() {
    let h = start(LoginLimitConfig::default()).await;
    let token = h.register("ada@example.com").await;
    let claims = h.verifier.verify(&token).unwrap();
    let jti = claims.jti.clone().unwrap();
    assert!(!h.revocations.is_revoked(&jti).await.unwrap());

    let resp = h.run(LOGOUT, json!({}), Caller::User(claims), None).await;
    assert!(resp.errors.is_empty(), "{:?}", resp.errors);
    assert_eq!(resp.data.into_json().unwrap()["logout"], true);
    assert!(h.revocations.is_revoked(&jti).await.unwrap());
    assert_eq!(h.revocations.len(), 1);

    // Without a token there is nothing to revoke.
    let resp = h.run(LOGOUT, json!({}), Caller::Anonymous, None).await;
    assert_eq!(code(&resp).as_deref(), Some("UNAUTHENTICATED"));
    // A token without an id cannot be revoked, and says so.
    let mut old = h.verifier.verify(&token).unwrap();
    old.jti = None;
    let resp = h.run(LOGOUT, json!({}), Caller::User(old), None).await;
    assert_eq!(
        code(&resp).as_deref(),
        Some("BAD_USER_INPUT"),
        "{:?}",
        resp.errors
    );
    assert_eq!(h.revocations.len(), 1);
}
