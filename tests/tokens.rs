//! Whole-system tests of token revocation (issue 14): under `shippy up`, `logout` revokes the presented
//! token at the router at once (the router and the user subgraph share one in-process store when there
//! is no Redis), a new login still works, and other tokens of the same user are untouched.

mod support;

use serde_json::json;
use support::Running;

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token } }";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
const LOGOUT: &str = "mutation { logout }";
const ME: &str = "{ me { email } }";

#[tokio::test]
async fn logout_revokes_the_token_at_the_router_and_a_new_login_works() {
    let dir = tempfile::tempdir().unwrap();
    let shippy = Running::up(&dir.path().join("data")).await;
    let router = shippy.client("router");

    let input = json!({ "input": { "name": "Ada", "company": "Acme", "email": "ada@example.com", "password": "correct horse" } });
    let registered = router.query(REGISTER, input, None).await;
    let first = registered.data()["register"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let credentials = json!({ "e": "ada@example.com", "p": "correct horse" });
    let login = router.query(LOGIN, credentials.clone(), None).await;
    let second = login.data()["login"]["token"].as_str().unwrap().to_owned();

    let me = router.query(ME, json!({}), Some(&first)).await;
    assert_eq!(me.data()["me"]["email"], "ada@example.com");

    // Logging out answers true, and from then on the router refuses that token.
    let logout = router.query(LOGOUT, json!({}), Some(&first)).await;
    assert_eq!(logout.data()["logout"], true, "{:?}", logout.body);
    let revoked = router.query(ME, json!({}), Some(&first)).await;
    assert_eq!(revoked.status, 401, "{:?}", revoked.body);
    assert_eq!(revoked.code(), Some("UNAUTHENTICATED"));
    assert!(
        revoked.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the token has been revoked"),
        "{:?}",
        revoked.body
    );
    // Logging out twice with it is refused the same way (nothing changes).
    let again = router.query(LOGOUT, json!({}), Some(&first)).await;
    assert_eq!(again.status, 401, "{:?}", again.body);

    // Only that token: the other session goes on, and a new login works.
    let other = router.query(ME, json!({}), Some(&second)).await;
    assert_eq!(other.data()["me"]["email"], "ada@example.com");
    let relogin = router.query(LOGIN, credentials, None).await;
    let third = relogin.data()["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = router.query(ME, json!({}), Some(&third)).await;
    assert_eq!(me.data()["me"]["email"], "ada@example.com");

    // `logout` needs a token.
    let anonymous = router.query(LOGOUT, json!({}), None).await;
    assert!(anonymous.code().is_some(), "{:?}", anonymous.body);
    assert!(anonymous.body["data"].is_null() || anonymous.body["data"]["logout"].is_null());
}
