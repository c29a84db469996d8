//! Hot reload: safe sections apply at once, the rest waits for a restart, bad files change
//! nothing.

use std::time::Duration;

use serde_json::Value as Json;
use shippy_router::{Router, RouterConfig};

use crate::harness::{env, supergraph_with_mutation};
use crate::support::*;

#[tokio::test]
async fn safe_sections_apply_to_the_next_request_and_the_rest_waits_for_a_restart() {
    let env = env().start().await;
    let deep = "{ me { reviews { product { upc } } } }";
    assert_eq!(post(&env, deep, Json::Null, &[]).await.status, 200);

    let mut config = RouterConfig::default();
    config.limits.max_depth = 2;
    config.introspection = false;
    config.http.max_body_size = 10;
    // The revocation store is made once (and may be shared with a user subgraph).
    config.auth.revocation.key_prefix = "elsewhere:".into();
    let outcome = env.router.reload(config).unwrap();
    assert!(outcome.applied);
    assert_eq!(outcome.restart_required, vec!["http", "auth.revocation"]);

    // The prepared operation was cached under the old limits; it is prepared again.
    let reply = post(&env, deep, Json::Null, &[]).await;
    assert_eq!(reply.error_codes(), vec!["MAX_DEPTH_EXCEEDED"]);
    let reply = post(&env, "{ __type(name: \"User\") { name } }", Json::Null, &[]).await;
    assert_eq!(reply.error_codes(), vec!["INTROSPECTION_DISABLED"]);
    // The body limit was not applied (it needs a restart).
    assert_eq!(
        post(&env, "{ me { id } }", Json::Null, &[]).await.status,
        200
    );

    // An invalid configuration changes nothing.
    let mut bad = RouterConfig::default();
    bad.limits.max_depth = 0;
    assert!(env.router.reload(bad).is_err());
    assert_eq!(
        post(&env, deep, Json::Null, &[]).await.error_codes(),
        vec!["MAX_DEPTH_EXCEEDED"]
    );

    // Keys rotate without a restart.
    let token = hs256(&claims("u1", &[]));
    assert_eq!(post_as(&env, "{ me { id } }", &token).await.status, 200);
    let mut with_key = RouterConfig::default();
    with_jwt(&mut with_key);
    with_key.auth.jwt.secret = Some(shippy_router::config::Secret::new(
        "a-brand-new-secret-a-brand-new-secret",
    ));
    env.router.reload(with_key).unwrap();
    assert_eq!(post_as(&env, "{ me { id } }", &token).await.status, 401);
}

/// How often the watcher of the next test looks at its file.
const INTERVAL: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn the_watcher_reloads_a_changed_file_and_keeps_serving_on_a_broken_one() {
    let dir = std::env::temp_dir().join(format!("shippy-edge-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("router.yaml");
    std::fs::write(&path, "limits:\n  max_depth: 10\n").unwrap();
    // The router never serves here: the supergraph's URLs are not contacted.
    let router = Router::from_supergraph_sdl(
        &supergraph_with_mutation(),
        RouterConfig::load(Some(&path)).unwrap(),
    )
    .unwrap();
    let deep = "{ me { reviews { product { upc } } } }";
    let depth_rejected = async |router: &Router| match router.plan_text(deep, None).await {
        Ok(_) => false,
        Err(errors) => errors[0].code() == Some("MAX_DEPTH_EXCEEDED"),
    };
    assert!(!depth_rejected(&router).await);
    // `watch_config` reads the file when called, so the changes below are never missed.
    let watcher = tokio::spawn(router.clone().watch_config(path.clone(), INTERVAL));

    std::fs::write(&path, "limits:\n  max_depth: 2\n").unwrap();
    let deadline = tokio::time::Instant::now() + 10 * INTERVAL;
    while !depth_rejected(&router).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the changed file was not applied"
        );
        tokio::time::sleep(INTERVAL / 10).await;
    }

    // A file that does not load (unknown key) is logged and ignored. Time is paused, so this
    // sleep is not a guess: the clock only moves once every task is idle, which is after the
    // watcher's check at the next tick has run to completion.
    std::fs::write(&path, "limits:\n  max_dept: 50\n").unwrap();
    tokio::time::sleep(INTERVAL + INTERVAL / 2).await;
    assert!(depth_rejected(&router).await);
    assert!(!watcher.is_finished());
    watcher.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
