//! A vessel whose owner the user subgraph cannot find (a dangling reference) costs that one field,
//! never the whole list: `vessels { owner { name } }` through the router keeps every vessel, the
//! dangling owner comes back `null` with an error at its path, and every other owner resolves.

mod support;

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use support::Running;

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
const CREATE: &str = "mutation($input: CreateVesselInput!) { createVessel(input: $input) { id } }";

#[tokio::test]
async fn a_dangling_vessel_owner_costs_one_field_not_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shippy = Running::up(&data).await;
    let router = shippy.client("router");

    let registered = router
        .query(
            REGISTER,
            json!({ "input": { "name": "Ada", "email": "ada@example.com", "password": "correct horse" } }),
            None,
        )
        .await;
    let token = registered.data()["register"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    for name in ["Kept", "Dangling"] {
        let created = router
            .query(
                CREATE,
                json!({ "input": { "name": name, "capacity": 5, "maxWeight": 100 } }),
                Some(&token),
            )
            .await;
        assert!(
            created.data()["createVessel"]["id"].is_string(),
            "{}",
            created.body
        );
    }

    // Point one vessel at an owner that never existed (as an old import or a forged token could leave
    // behind).
    let db = Database::connect(format!(
        "sqlite://{}?mode=rw",
        data.join("vessel.db").display()
    ))
    .await
    .unwrap();
    let changed = db
        .execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "UPDATE vessels SET owner_id = ? WHERE name = ?",
            [uuid::Uuid::now_v7().into(), "Dangling".into()],
        ))
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);

    let listed = router
        .query(
            "{ vessels { name owner { name } } }",
            json!({}),
            Some(&token),
        )
        .await;
    let vessels = listed.body["data"]["vessels"]
        .as_array()
        .unwrap_or_else(|| panic!("the list survives: {}", listed.body));
    assert_eq!(vessels.len(), 2, "{}", listed.body);
    let kept = vessels.iter().position(|v| v["name"] == "Kept").unwrap();
    let dangling = vessels
        .iter()
        .position(|v| v["name"] == "Dangling")
        .unwrap();
    assert_eq!(vessels[kept]["owner"]["name"], "Ada");
    assert_eq!(vessels[dangling]["owner"], Value::Null);
    // One error, at the dangling owner's path.
    let errors = listed.body["errors"].as_array().expect("an error says why");
    assert_eq!(errors.len(), 1, "{}", listed.body);
    let path = errors[0]["path"].as_array().expect("the error has a path");
    assert_eq!(
        path[..3],
        [json!("vessels"), json!(dangling), json!("owner")],
        "{}",
        listed.body
    );
}
