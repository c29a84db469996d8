//! The schema check (`shippy schema compose|check`) on scratch copies of small fixture subgraphs.
//!
//! Each test builds its own schema directory in a temp dir (two fixture subgraphs, a composed
//! supergraph, committed to a scratch git repository as the base on `main`), changes it the way a pull
//! request would, and runs the real Node scripts through `src/schema_tool.rs`. Needs Node.js and npm; the
//! first test to run installs `schema/node_modules` with `npm ci` if it is missing.

#[path = "../src/schema_tool.rs"]
mod schema_tool;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use schema_tool::{CheckOptions, ComposeOptions, Outcome, Report, SchemaToolError};
use serde_json::Value;
use tempfile::TempDir;

/// The repository's schema tooling package (scripts and node_modules), shared by every scratch copy.
const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema");

const SUBGRAPHS_JSON: &str = r#"{
  "subgraphs": [
    { "name": "user", "sdl": "user.graphql", "url": "http://127.0.0.1:4001/graphql" },
    { "name": "vessel", "sdl": "vessel.graphql", "url": "http://127.0.0.1:4002/graphql" },
    { "name": "log", "sdl": "log.graphql", "url": "http://127.0.0.1:4004/graphql" }
  ]
}
"#;

// Shaped like async-graphql's Federation v2 export. `log` is listed but has no SDL yet, as a subgraph
// whose code has not landed.
const USER_SDL: &str = r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable", "@inaccessible"])

type Query {
  me: User
  user(id: ID!): User
}

type User @key(fields: "id") {
  id: ID!
  name: String!
  email: String!
  role: Role!
  internalNote: String @inaccessible
}

enum Role {
  ADMIN
  MEMBER
}
"#;

const VESSEL_SDL: &str = r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable"])

type Query {
  vessel(id: ID!): Vessel
  vessels(first: Int = 10): [Vessel!]!
}

type Vessel @key(fields: "id") {
  id: ID!
  name: String!
  capacityTonnes: Float!
  owner: User!
}

type User @key(fields: "id", resolvable: false) {
  id: ID!
}
"#;

const NO_APPROVALS: &str = "approved: []\n";

/// A scratch repository whose `schema/` directory holds the fixtures.
struct Scratch {
    _root: TempDir,
    repo: PathBuf,
    schema: PathBuf,
}

impl Scratch {
    /// Fixtures composed and committed on `main`, then a `feature` branch checked out: the state of a
    /// pull request before it changes anything.
    fn new() -> Self {
        let scratch = Self::files_only();
        scratch.compose_ok();
        scratch.git(&["init", "-q", "-b", "main"]);
        scratch.commit("base schema");
        scratch.git(&["checkout", "-q", "-b", "feature"]);
        scratch
    }

    /// The fixture files without a supergraph and outside any git repository.
    fn files_only() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let repo = root.path().to_path_buf();
        let schema = repo.join("schema");
        fs::create_dir(&schema).expect("schema dir");
        let scratch = Self {
            _root: root,
            repo,
            schema,
        };
        scratch.write("subgraphs.json", SUBGRAPHS_JSON);
        scratch.write("user.graphql", USER_SDL);
        scratch.write("vessel.graphql", VESSEL_SDL);
        scratch.write("approved-changes.yaml", NO_APPROVALS);
        scratch
    }

    fn path(&self, file: &str) -> PathBuf {
        self.schema.join(file)
    }

    fn read(&self, file: &str) -> String {
        fs::read_to_string(self.path(file)).expect("read scratch file")
    }

    fn write(&self, file: &str, content: &str) {
        fs::write(self.path(file), content).expect("write scratch file");
    }

    /// Replaces `from` with `to` in a schema file; `from` must be there, so a fixture edit cannot
    /// silently do nothing.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let text = self.read(file);
        assert!(text.contains(from), "{file} does not contain {from:?}");
        self.write(file, &text.replacen(from, to, 1));
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=Shippy Test",
                "-c",
                "user.email=test@shippy.invalid",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(&self.repo)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    fn compose(&self) -> Report {
        schema_tool::compose(&ComposeOptions {
            schema_dir: self.schema.clone(),
            tools_dir: Some(TOOLS.into()),
        })
        .expect("compose runs")
    }

    fn compose_ok(&self) {
        let report = self.compose();
        assert_eq!(report.outcome, Outcome::Passed, "{}", report.output);
    }

    fn options(&self, base: Option<&str>, json: bool) -> CheckOptions {
        CheckOptions {
            schema_dir: self.schema.clone(),
            tools_dir: Some(TOOLS.into()),
            base: base.map(str::to_owned),
            json,
        }
    }

    /// The check with an exporter that reproduces the committed SDL files, i.e. code and files agree.
    fn check(&self, base: Option<&str>, json: bool) -> Report {
        let files = ["user.graphql", "vessel.graphql"].map(|f| (f, self.read(f)));
        schema_tool::check(&self.options(base, json), |dir: &Path| {
            for (file, sdl) in &files {
                fs::write(dir.join(file), sdl)?;
            }
            Ok::<_, std::io::Error>(())
        })
        .expect("check runs")
    }

    fn check_json(&self, base: Option<&str>) -> (Outcome, Value) {
        let report = self.check(base, true);
        let json = serde_json::from_str(&report.output)
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", report.output));
        (report.outcome, json)
    }
}

/// The changes in a JSON report, as `(criticality, type, path)`.
fn changes(report: &Value) -> Vec<(String, String, String)> {
    report["changes"]["changes"]
        .as_array()
        .expect("changes list")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
            (s("criticality"), s("type"), s("path"))
        })
        .collect()
}

fn change<'a>(report: &'a Value, change_type: &str, path: &str) -> &'a Value {
    report["changes"]["changes"]
        .as_array()
        .expect("changes list")
        .iter()
        .find(|c| c["type"] == change_type && c["path"] == path)
        .unwrap_or_else(|| panic!("no {change_type} {path} in {:#}", report["changes"]))
}

/// 1-based line of the first line of `text` equal to `line`.
fn line_of(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no line {line:?}"))
        + 1
}

/// The line right under the group header `  <label>` in the text report.
fn line_under_group<'a>(output: &'a str, label: &str) -> &'a str {
    let lines: Vec<&str> = output.lines().collect();
    let header = lines
        .iter()
        .position(|l| *l == format!("  {label}"))
        .unwrap_or_else(|| panic!("no group {label:?} in:\n{output}"));
    lines[header + 1]
}

#[test]
fn unchanged_schema_passes_every_check() {
    let scratch = Scratch::new();
    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    assert_eq!(report["ok"], true);
    for step in ["drift", "composition", "supergraph", "changes"] {
        assert_eq!(report[step]["status"], "passed", "{step}: {report:#}");
    }
    assert_eq!(report["changes"]["base"]["ref"], "main");
    assert_eq!(report["changes"]["base"]["how"], "merge-base");
    assert_eq!(
        report["composition"]["composed"],
        serde_json::json!(["user", "vessel"])
    );
    // Listed subgraphs without SDL are reported, not failed.
    assert_eq!(report["composition"]["missing"], serde_json::json!(["log"]));
    assert!(changes(&report).is_empty());

    let text = scratch.check(None, false);
    assert_eq!(text.outcome, Outcome::Passed);
    assert_eq!(text.exit_code(), 0);
    assert!(
        text.output.contains("changes against main (merge base "),
        "{}",
        text.output
    );
    assert!(
        text.output.trim_end().ends_with("schema check passed"),
        "{}",
        text.output
    );
}

#[test]
fn compose_writes_a_join_v03_supergraph_and_skips_subgraphs_without_sdl() {
    let scratch = Scratch::files_only();
    let report = scratch.compose();
    assert_eq!(report.outcome, Outcome::Passed, "{}", report.output);
    assert!(
        report.output.contains("composed user, vessel"),
        "{}",
        report.output
    );
    assert!(
        report
            .output
            .contains("not composed (no SDL file yet): log")
    );
    let supergraph = scratch.read("supergraph.graphql");
    assert!(supergraph.contains(r#"@link(url: "https://specs.apollo.dev/link/v1.0")"#));
    assert!(
        supergraph.contains(r#"@link(url: "https://specs.apollo.dev/join/v0.3", for: EXECUTION)"#)
    );
    assert!(
        supergraph
            .contains(r#"USER @join__graph(name: "user", url: "http://127.0.0.1:4001/graphql")"#)
    );
    assert!(
        supergraph.contains(
            r#"VESSEL @join__graph(name: "vessel", url: "http://127.0.0.1:4002/graphql")"#
        )
    );
    assert!(!supergraph.contains("LOG"), "{supergraph}");

    // Composing again gives the same bytes, or the stale-supergraph check could never pass.
    scratch.compose_ok();
    assert_eq!(scratch.read("supergraph.graphql"), supergraph);
}

#[test]
fn field_removal_fails_as_breaking_change_of_its_subgraph() {
    let scratch = Scratch::new();
    scratch.edit("user.graphql", "  email: String!\n", "");
    scratch.compose_ok();

    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(report["failedSteps"], serde_json::json!(["changes"]));
    let removed = change(&report, "FIELD_REMOVED", "User.email");
    assert_eq!(removed["criticality"], "BREAKING");
    assert_eq!(removed["subgraphs"], serde_json::json!(["user"]));
    assert_eq!(removed["approved"], false);

    let text = scratch.check(None, false);
    assert_eq!(text.exit_code(), 1);
    let line = line_under_group(&text.output, "user");
    assert!(
        line.contains("BREAKING")
            && line.contains("FIELD_REMOVED  User.email")
            && line.contains("[NOT APPROVED]"),
        "{}",
        text.output
    );
    // The report says how to approve it.
    assert!(
        text.output
            .contains("  - path: User.email\n    type: FIELD_REMOVED\n"),
        "{}",
        text.output
    );
    assert!(
        text.output
            .trim_end()
            .ends_with("schema check FAILED: changes")
    );
}

#[test]
fn field_type_change_fails_as_breaking_change() {
    let scratch = Scratch::new();
    scratch.edit(
        "vessel.graphql",
        "capacityTonnes: Float!",
        "capacityTonnes: String!",
    );
    scratch.compose_ok();

    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed);
    let changed = change(&report, "FIELD_TYPE_CHANGED", "Vessel.capacityTonnes");
    assert_eq!(changed["criticality"], "BREAKING");
    assert_eq!(changed["subgraphs"], serde_json::json!(["vessel"]));
    let text = scratch.check(None, false);
    assert!(
        line_under_group(&text.output, "vessel")
            .contains("FIELD_TYPE_CHANGED  Vessel.capacityTonnes")
    );
}

#[test]
fn new_required_argument_and_removed_enum_value_are_breaking() {
    let scratch = Scratch::new();
    scratch.edit(
        "vessel.graphql",
        "vessels(first: Int = 10)",
        "vessels(first: Int = 10, flag: String!)",
    );
    scratch.edit("user.graphql", "  MEMBER\n", "");
    scratch.compose_ok();

    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed);
    let argument = change(&report, "FIELD_ARGUMENT_ADDED", "Query.vessels.flag");
    assert_eq!(argument["criticality"], "BREAKING");
    assert_eq!(argument["subgraphs"], serde_json::json!(["vessel"]));
    let value = change(&report, "ENUM_VALUE_REMOVED", "Role.MEMBER");
    assert_eq!(value["criticality"], "BREAKING");
    assert_eq!(value["subgraphs"], serde_json::json!(["user"]));
}

#[test]
fn dangerous_and_safe_changes_are_listed_without_failing() {
    let scratch = Scratch::new();
    scratch.edit("user.graphql", "  MEMBER\n", "  MEMBER\n  GUEST\n");
    scratch.edit(
        "vessel.graphql",
        "  capacityTonnes: Float!\n",
        "  capacityTonnes: Float!\n  imo: String\n",
    );
    scratch.compose_ok();

    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    assert_eq!(
        changes(&report),
        vec![
            (
                "DANGEROUS".into(),
                "ENUM_VALUE_ADDED".into(),
                "Role.GUEST".into()
            ),
            ("SAFE".into(), "FIELD_ADDED".into(), "Vessel.imo".into()),
        ]
    );
    let text = scratch.check(None, false);
    assert!(
        line_under_group(&text.output, "user").contains("DANGEROUS  ENUM_VALUE_ADDED  Role.GUEST")
    );
    assert!(
        line_under_group(&text.output, "vessel").contains("SAFE       FIELD_ADDED  Vessel.imo")
    );
}

#[test]
fn inaccessible_fields_are_not_part_of_the_api_schema() {
    let scratch = Scratch::new();
    scratch.edit("user.graphql", "  internalNote: String @inaccessible\n", "");
    scratch.compose_ok();

    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    // Clients never saw the field, so removing it is no change at all.
    assert!(changes(&report).is_empty(), "{report:#}");
}

#[test]
fn unshareable_field_in_two_subgraphs_fails_composition_with_locations() {
    let scratch = Scratch::new();
    let before = scratch.read("supergraph.graphql");
    scratch.edit(
        "vessel.graphql",
        "type User @key(fields: \"id\", resolvable: false) {\n  id: ID!\n",
        "type User @key(fields: \"id\", resolvable: false) {\n  id: ID!\n  name: String!\n",
    );
    let user_line = line_of(USER_SDL, "  name: String!");
    // `Vessel.name` comes first in vessel.graphql; the conflicting field is the User stub's, the last one.
    let vessel_line = scratch
        .read("vessel.graphql")
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "  name: String!")
        .map(|(i, _)| i + 1)
        .last()
        .expect("User.name in vessel.graphql");

    let composed = scratch.compose();
    assert_eq!(composed.outcome, Outcome::Failed);
    assert!(
        composed.output.contains("INVALID_FIELD_SHARING"),
        "{}",
        composed.output
    );
    assert!(
        composed
            .output
            .contains(&format!("user.graphql:{user_line}:3")),
        "{}",
        composed.output
    );
    assert!(
        composed
            .output
            .contains(&format!("vessel.graphql:{vessel_line}:3")),
        "{}",
        composed.output
    );
    assert_eq!(
        scratch.read("supergraph.graphql"),
        before,
        "a failed compose must not write"
    );

    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(report["failedSteps"], serde_json::json!(["composition"]));
    let error = &report["composition"]["errors"][0];
    assert_eq!(error["code"], "INVALID_FIELD_SHARING");
    assert_eq!(error["subgraphs"], serde_json::json!(["user", "vessel"]));
    assert_eq!(
        error["locations"],
        serde_json::json!([
            { "subgraph": "user", "file": "user.graphql", "line": user_line, "column": 3 },
            { "subgraph": "vessel", "file": "vessel.graphql", "line": vessel_line, "column": 3 },
        ])
    );
    assert_eq!(report["supergraph"]["status"], "skipped");
    assert_eq!(report["changes"]["status"], "skipped");
}

#[test]
fn syntax_error_fails_composition_at_its_location() {
    let scratch = Scratch::new();
    scratch.edit("vessel.graphql", "  owner: User!\n}", "  owner: User!\n");
    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed);
    let error = &report["composition"]["errors"][0];
    assert_eq!(error["code"], "INVALID_GRAPHQL");
    assert_eq!(error["subgraphs"], serde_json::json!(["vessel"]));
    assert_eq!(error["locations"][0]["file"], "vessel.graphql");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("[vessel] Syntax Error"),
        "{error:#}"
    );
}

#[test]
fn drift_between_code_and_committed_sdl_fails() {
    let scratch = Scratch::new();
    let exported_vessel =
        VESSEL_SDL.replace("  name: String!\n", "  name: String!\n  imo: String\n");
    let report = schema_tool::check(&scratch.options(None, true), |dir: &Path| {
        fs::write(dir.join("user.graphql"), USER_SDL)?;
        fs::write(dir.join("vessel.graphql"), &exported_vessel)?;
        // A subgraph the code has but subgraphs.json does not list.
        fs::write(dir.join("cargo.graphql"), "type Query { cargo: Int }\n")?;
        Ok::<_, std::io::Error>(())
    })
    .expect("check runs");
    assert_eq!(report.outcome, Outcome::Failed);
    let json: Value = serde_json::from_str(&report.output).unwrap();
    assert_eq!(json["failedSteps"], serde_json::json!(["drift"]));
    let status: Vec<(&str, &str)> = json["drift"]["subgraphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        vec![
            ("user", "ok"),
            ("vessel", "differs"),
            ("log", "not-built"),
            ("cargo", "unlisted")
        ]
    );
    let vessel = json["drift"]["subgraphs"][1]["message"].as_str().unwrap();
    let line = line_of(&exported_vessel, "  imo: String");
    assert!(
        vessel.contains(&format!("first difference at line {line}")),
        "{vessel}"
    );

    // A committed subgraph the code no longer exports is drift too.
    let report = schema_tool::check(&scratch.options(None, false), |dir: &Path| {
        fs::write(dir.join("user.graphql"), USER_SDL)
    })
    .expect("check runs");
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(
        report.output.contains("vessel: NOT-EXPORTED"),
        "{}",
        report.output
    );
}

#[test]
fn stale_or_missing_supergraph_fails() {
    let scratch = Scratch::new();
    scratch.edit(
        "vessel.graphql",
        "  name: String!\n",
        "  name: String!\n  imo: String\n",
    );

    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(report["failedSteps"], serde_json::json!(["supergraph"]));
    assert!(
        report["supergraph"]["message"]
            .as_str()
            .unwrap()
            .contains("is stale")
    );

    scratch.compose_ok();
    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    assert_eq!(
        changes(&report),
        vec![("SAFE".into(), "FIELD_ADDED".into(), "Vessel.imo".into())]
    );

    fs::remove_file(scratch.path("supergraph.graphql")).unwrap();
    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed);
    assert!(
        report["supergraph"]["message"]
            .as_str()
            .unwrap()
            .contains("is missing")
    );
}

#[test]
fn approved_breaking_change_passes_and_shows_its_reason() {
    let scratch = Scratch::new();
    scratch.edit("user.graphql", "  email: String!\n", "");
    scratch.compose_ok();
    scratch.write(
        "approved-changes.yaml",
        "approved:\n  - path: User.email\n    type: FIELD_REMOVED\n    reason: email moved to the contact subgraph\n  - path: Vessel.gone\n    type: FIELD_REMOVED\n    reason: already shipped\n",
    );

    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    let removed = change(&report, "FIELD_REMOVED", "User.email");
    assert_eq!(removed["approved"], true);
    assert_eq!(removed["reason"], "email moved to the contact subgraph");
    assert_eq!(
        report["changes"]["unusedApprovals"][0]["path"],
        "Vessel.gone"
    );

    let text = scratch.check(None, false);
    assert!(
        line_under_group(&text.output, "user")
            .contains("[approved: email moved to the contact subgraph]"),
        "{}",
        text.output
    );
    assert!(text.output.contains(
        "approved-changes.yaml:5 (FIELD_REMOVED Vessel.gone) matches no breaking change"
    ));

    // The approval covers exactly that change: another breaking change still fails.
    scratch.edit(
        "vessel.graphql",
        "capacityTonnes: Float!",
        "capacityTonnes: String!",
    );
    scratch.compose_ok();
    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(
        change(&report, "FIELD_TYPE_CHANGED", "Vessel.capacityTonnes")["approved"],
        false
    );
}

#[test]
fn malformed_approvals_are_rejected() {
    let cases = [
        (
            "approved:\n  - path: User.email\n    type: FIELD_REMOVED\n",
            "approved-changes.yaml:2: approved[0]: approval of FIELD_REMOVED User.email has no reason",
        ),
        (
            "approved:\n  - path: User.email\n    type: FIELD_REMOVED\n    reason: \"  \"\n",
            "has no reason",
        ),
        (
            "approved:\n  - path: User.email\n    type: FIELD_REMOVED\n    reason: ok\n    ticket: 12\n",
            "approved[0]: unknown key \"ticket\"",
        ),
        ("approve: []\n", "unknown key \"approve\""),
        (
            "approved:\n  - path: User.email\n    type: FIELD_GONE\n    reason: ok\n",
            "unknown change type \"FIELD_GONE\"",
        ),
        (
            "approved:\n  - path: User.email\n    type: FIELD_REMOVED\n    reason: a\n  - path: User.email\n    type: FIELD_REMOVED\n    reason: b\n",
            "approved twice",
        ),
    ];
    let scratch = Scratch::new();
    for (yaml, expected) in cases {
        scratch.write("approved-changes.yaml", yaml);
        let (outcome, report) = scratch.check_json(None);
        assert_eq!(outcome, Outcome::Invalid, "{yaml}");
        assert_eq!(report["error"]["kind"], "APPROVALS_INVALID");
        let message = report["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{yaml}: {message}");
    }
    // An invalid approvals file is an error even when nothing needs approving.
    let text = scratch.check(None, false);
    assert_eq!(text.exit_code(), 2);
    assert!(text.output.starts_with("error: "), "{}", text.output);
}

#[test]
fn explicit_base_is_used_and_an_unknown_one_is_an_error() {
    let scratch = Scratch::new();
    scratch.edit("user.graphql", "  email: String!\n", "");
    scratch.compose_ok();
    scratch.commit("drop User.email");

    // Against main the removal is new; against the feature branch itself there is nothing new.
    let (outcome, _) = scratch.check_json(Some("main"));
    assert_eq!(outcome, Outcome::Failed);
    let (outcome, report) = scratch.check_json(Some("HEAD"));
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    assert_eq!(report["changes"]["base"]["how"], "explicit");
    assert_eq!(
        report["changes"]["base"]["commit"],
        scratch.git(&["rev-parse", "HEAD"])
    );

    let (outcome, report) = scratch.check_json(Some("no-such-branch"));
    assert_eq!(outcome, Outcome::Invalid);
    assert_eq!(report["error"]["kind"], "BASE_UNKNOWN");
}

#[test]
fn without_main_the_previous_commit_is_the_base_and_without_git_there_is_none() {
    let scratch = Scratch::files_only();
    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Failed, "no supergraph committed yet");
    assert_eq!(report["changes"]["status"], "skipped");
    assert_eq!(
        report["changes"]["note"],
        "no base to compare with: not inside a git repository"
    );

    // A repository whose branch is not `main`: the first commit has no supergraph, the second adds it.
    scratch.git(&["init", "-q", "-b", "trunk"]);
    scratch.commit("subgraphs only");
    scratch.compose_ok();
    scratch.commit("add supergraph");
    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Passed, "{report:#}");
    assert_eq!(report["changes"]["base"]["how"], "previous-commit");
    assert!(
        report["changes"]["note"]
            .as_str()
            .unwrap()
            .starts_with("no supergraph.graphql at "),
        "{report:#}"
    );

    let text = scratch.check(None, false);
    assert!(
        text.output
            .contains("changes: skipped (no supergraph.graphql at "),
        "{}",
        text.output
    );
}

#[test]
fn invalid_subgraph_list_is_rejected() {
    let scratch = Scratch::new();
    scratch.edit(
        "subgraphs.json",
        r#""url": "http://127.0.0.1:4004/graphql""#,
        r#""url": "http://127.0.0.1:4004/graphql", "port": 4004"#,
    );
    let (outcome, report) = scratch.check_json(None);
    assert_eq!(outcome, Outcome::Invalid);
    assert_eq!(report["error"]["kind"], "SUBGRAPHS_INVALID");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("subgraphs[2]: unknown key \"port\"")
    );

    let composed = scratch.compose();
    assert_eq!(composed.outcome, Outcome::Invalid);
    assert_eq!(composed.exit_code(), 2);
}

#[test]
fn exporter_failure_is_reported_as_an_error() {
    let scratch = Scratch::new();
    let result = schema_tool::check(&scratch.options(None, false), |_dir: &Path| {
        Err::<(), _>(std::io::Error::other("subgraph schema failed to build"))
    });
    match result {
        Err(SchemaToolError::Export(e)) => {
            assert_eq!(e.to_string(), "subgraph schema failed to build")
        }
        other => panic!("expected an export error, got {other:?}"),
    }
}

#[test]
fn a_directory_without_the_tooling_is_a_clear_error() {
    let scratch = Scratch::files_only();
    let result = schema_tool::compose(&ComposeOptions {
        schema_dir: scratch.schema.clone(),
        tools_dir: None,
    });
    match result {
        Err(e @ SchemaToolError::NoTools(_)) => {
            assert!(e.to_string().contains("has no package.json"))
        }
        other => panic!("expected NoTools, got {other:?}"),
    }
}

/// A tools directory whose packages look installed, with `scripts/compose.mjs` as given.
fn fake_tools(compose_script: &str) -> TempDir {
    let tools = tempfile::tempdir().expect("temp dir");
    fs::write(
        tools.path().join("package.json"),
        r#"{ "name": "fake", "version": "0.0.0", "private": true }"#,
    )
    .unwrap();
    fs::write(
        tools.path().join("package-lock.json"),
        r#"{ "name": "fake", "version": "0.0.0", "lockfileVersion": 3, "requires": true, "packages": { "": { "name": "fake", "version": "0.0.0" } } }"#,
    )
    .unwrap();
    fs::create_dir_all(tools.path().join("node_modules")).unwrap();
    fs::write(tools.path().join("node_modules/.package-lock.json"), "{}").unwrap();
    fs::create_dir(tools.path().join("scripts")).unwrap();
    fs::write(tools.path().join("scripts/compose.mjs"), compose_script).unwrap();
    tools
}

#[test]
fn a_crashing_script_is_an_error_not_a_failed_check() {
    let scratch = Scratch::files_only();
    // An uncaught exception (node exits 1 with no report) and the scripts' own internal-error code.
    for body in [
        "throw new Error('bug in the script');\n",
        "process.exit(3);\n",
    ] {
        let tools = fake_tools(body);
        let result = schema_tool::compose(&ComposeOptions {
            schema_dir: scratch.schema.clone(),
            tools_dir: Some(tools.path().to_path_buf()),
        });
        match result {
            Err(SchemaToolError::Crashed { script, status }) => {
                assert_eq!(script, "compose.mjs");
                assert!(!status.success());
            }
            other => panic!("{body}: expected Crashed, got {other:?}"),
        }
    }
}

#[test]
fn a_failing_npm_ci_is_an_error() {
    let scratch = Scratch::files_only();
    let tools = fake_tools("");
    // No installed packages and a lock file that disagrees with package.json: `npm ci` refuses.
    fs::remove_dir_all(tools.path().join("node_modules")).unwrap();
    fs::write(
        tools.path().join("package.json"),
        r#"{ "name": "fake", "version": "0.0.0", "private": true, "dependencies": { "graphql": "16.15.0" } }"#,
    )
    .unwrap();
    let result = schema_tool::compose(&ComposeOptions {
        schema_dir: scratch.schema.clone(),
        tools_dir: Some(tools.path().to_path_buf()),
    });
    match result {
        Err(e @ SchemaToolError::Install { .. }) => {
            assert!(e.to_string().contains("`npm ci`"), "{e}")
        }
        other => panic!("expected Install, got {other:?}"),
    }
}
