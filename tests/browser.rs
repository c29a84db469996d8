//! Browser tests: `shippy up` on free ports, then `tests/browser/walkthrough.mjs` drives Debian's
//! chromium (through playwright-core) through the whole walkthrough in the web UI and the GraphiQL
//! playground, checking what the UI promises: data first (sortable, paginated, dialogs), visible
//! progress (Pending, timelines, highlighted changes, UNASSIGNABLE as a problem), plain words (field
//! errors beside their fields, no API text, units, rate limits counting down), a live and honest fleet,
//! the activity log as a story without ids, loading placeholders and the phone layout. After every
//! step it keeps screenshots at 1280x800 and 390x844 in `target/browser-artifacts/`, checks that
//! nothing scrolls sideways at 390 px, and runs axe-core (0 serious or critical violations; all
//! findings in `accessibility.json` there).
//!
//! Needs `node`, `npm` and `chromium` (`.ci/run` installs chromium when it is missing); without them
//! the test fails and says what to install.

mod support;

use std::{path::Path, process::Stdio, time::Duration};

use support::Running;
use tokio::process::Command;

/// Where chromium is: `$CHROMIUM`, else Debian's.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// Runs `program args` in `dir` to completion within `limit`; panics with its output otherwise.
async fn run(dir: &Path, program: &str, args: &[&str], limit: Duration) {
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} took longer than {limit:?}"))
        .expect("waits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test]
async fn the_walkthrough_works_in_a_browser() {
    let browser = chromium();
    assert!(
        Path::new(&browser).exists(),
        "chromium is missing at {browser}: `apt-get install -y chromium` (or set CHROMIUM to its path)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scripts = root.join("tests/browser");
    // playwright-core and axe-core, from the lockfile: nothing is downloaded besides the packages.
    run(
        &scripts,
        "npm",
        &["ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        Duration::from_secs(180),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let shippy = Running::up(&dir.path().join("data")).await;
    let base = shippy.router_base();

    let artifacts = root.join("target/browser-artifacts");
    // Screenshots of an earlier run must not pass for this one's.
    let _ = std::fs::remove_dir_all(&artifacts);
    let artifacts = artifacts.to_str().expect("a UTF-8 path");
    run(
        root,
        "node",
        &["tests/browser/walkthrough.mjs", &base, artifacts],
        Duration::from_secs(300),
    )
    .await;
    for size in ["desktop", "phone"] {
        assert!(
            Path::new(artifacts)
                .join(format!("01-home-{size}.png"))
                .exists(),
            "no {size} screenshots in {artifacts}"
        );
    }
    assert!(
        Path::new(artifacts).join("accessibility.json").exists(),
        "no accessibility report in {artifacts}"
    );
    println!("browser screenshots and the accessibility report: {artifacts}");
    // The UI sent its operations as trusted documents of the first-party manifest.
    let by_manifest = shippy
        .metric(
            "router",
            "shippy_router_persisted_documents_total",
            "outcome=\"manifest\"",
        )
        .await;
    assert!(
        by_manifest >= 20.0,
        "only {by_manifest} operations were sent by id"
    );
    assert!(shippy.stop("-TERM").await, "shippy stops cleanly");
}
