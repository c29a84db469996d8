//! `shippy schema compose` and `shippy schema check`: runs the Node scripts in `schema/scripts/`.
//!
//! Composition and breaking-change detection use `@theguild/federation-composition` and
//! `@graphql-inspector/core`, which exist only for Node, so these two commands (and nothing else in
//! Shippy) need Node.js 20+ and npm. This module installs the scripts' packages on first use (`npm ci`),
//! runs the script, and hands back its report and verdict; the script owns the checks themselves.
//!
//! Exit-code contract with the scripts: 0 passed, 1 a check failed (the schema needs fixing),
//! 2 the invocation or configuration is wrong (`subgraphs.json`, `approved-changes.yaml`, `--base`),
//! anything else a crash ([`SchemaToolError::Crashed`]).

use std::error::Error as StdError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Options of `shippy schema compose`.
#[derive(Debug, Clone, clap::Args)]
pub struct ComposeOptions {
    /// Directory holding `subgraphs.json` and the subgraph SDL files; `supergraph.graphql` is written there.
    #[arg(long, value_name = "DIR", default_value = "schema")]
    pub schema_dir: PathBuf,
    /// Directory holding the scripts' `package.json` (defaults to the schema directory); lets tests run the
    /// real scripts on a scratch schema directory.
    #[arg(long, value_name = "DIR", hide = true)]
    pub tools_dir: Option<PathBuf>,
}

/// Options of `shippy schema check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckOptions {
    /// Directory holding `subgraphs.json`, the subgraph SDL files, `supergraph.graphql` and
    /// `approved-changes.yaml`.
    #[arg(long, value_name = "DIR", default_value = "schema")]
    pub schema_dir: PathBuf,
    /// Directory holding the scripts' `package.json` (defaults to the schema directory).
    #[arg(long, value_name = "DIR", hide = true)]
    pub tools_dir: Option<PathBuf>,
    /// Commit, branch or tag whose supergraph the API schema is compared with
    /// (default: the merge base with `main`, else the previous commit).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How a schema command ended, when it could run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Composition succeeded, or every check passed.
    Passed,
    /// The schema failed: composition errors, drift, a stale supergraph or unapproved breaking changes.
    Failed,
    /// The command or its configuration is wrong (bad `subgraphs.json`, `approved-changes.yaml` or `--base`).
    Invalid,
}

/// What a schema command reported.
#[derive(Debug, Clone)]
pub struct Report {
    /// The verdict.
    pub outcome: Outcome,
    /// The report for the user, text or JSON (`--json`), ready to print to stdout as it is.
    pub output: String,
}

impl Report {
    /// The process exit code for this outcome: 0 passed, 1 failed, 2 invalid invocation.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::Invalid => 2,
        }
    }
}

/// Why a schema command could not run (as opposed to running and finding problems in the schema).
#[derive(Debug, thiserror::Error)]
pub enum SchemaToolError {
    /// The tools directory is not the schema tooling package: usually the wrong working directory.
    #[error("{0} has no package.json; run from the repository root or pass --schema-dir")]
    NoTools(PathBuf),
    /// `node` or `npm` is missing or cannot be started.
    #[error("cannot run `{program}`; the schema commands need Node.js 20+ and npm on PATH")]
    Spawn {
        program: &'static str,
        #[source]
        source: io::Error,
    },
    /// `npm ci` failed; its own output (on stderr) says why.
    #[error("`npm ci` in {dir} failed ({status}); see its output above")]
    Install { dir: PathBuf, status: ExitStatus },
    /// The caller's exporter could not write the subgraph SDL.
    #[error("exporting the subgraph SDL failed")]
    Export(#[source] Box<dyn StdError + Send + Sync>),
    /// A scratch directory for the exported SDL could not be made.
    #[error("cannot create a temporary directory for the exported SDL")]
    TempDir(#[source] io::Error),
    /// The script crashed instead of reporting (a bug in the script or a broken install).
    #[error("{script} ended abnormally ({status}); its error is printed above")]
    Crashed {
        script: &'static str,
        status: ExitStatus,
    },
}

/// `shippy schema compose`: composes the subgraphs listed in `subgraphs.json` whose SDL file exists and
/// writes `supergraph.graphql`. On composition errors nothing is written and the report lists them.
pub fn compose(opts: &ComposeOptions) -> Result<Report, SchemaToolError> {
    let tools = opts.tools_dir.as_deref().unwrap_or(&opts.schema_dir);
    let args = vec![
        "--schema-dir".into(),
        opts.schema_dir.clone().into_os_string(),
    ];
    run_script(tools, "compose.mjs", args)
}

/// `shippy schema check`: `export` writes each subgraph's SDL (as `<name>.graphql`, what
/// `shippy schema export --out DIR` writes) into the empty directory it is given; the check then compares
/// it with the committed files (drift), composes, compares with the committed supergraph and diffs the API
/// schema against the base. The directory is removed afterwards.
///
/// Blocking: call it outside an async runtime or from `spawn_blocking`. An exporter that must be async can
/// instead write to a directory of its own and call [`check_exported`].
pub fn check<F, E>(opts: &CheckOptions, export: F) -> Result<Report, SchemaToolError>
where
    F: FnOnce(&Path) -> Result<(), E>,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let scratch = ScratchDir::new().map_err(SchemaToolError::TempDir)?;
    export(scratch.path()).map_err(|e| SchemaToolError::Export(e.into()))?;
    check_exported(opts, scratch.path())
}

/// `shippy schema check` with the subgraph SDL already exported to `exported` (see [`check`]).
pub fn check_exported(opts: &CheckOptions, exported: &Path) -> Result<Report, SchemaToolError> {
    let tools = opts.tools_dir.as_deref().unwrap_or(&opts.schema_dir);
    let mut args = vec![
        "--schema-dir".into(),
        opts.schema_dir.clone().into_os_string(),
        "--exported".into(),
        exported.as_os_str().to_owned(),
    ];
    if let Some(base) = &opts.base {
        // `--base=REF` so that a ref starting with `-` cannot be read as another flag.
        args.push(format!("--base={base}").into());
    }
    if opts.json {
        args.push("--json".into());
    }
    run_script(tools, "check.mjs", args)
}

/// Runs `node <tools>/scripts/<script> <args>`, capturing stdout (the report) and passing stderr through.
fn run_script(
    tools: &Path,
    script: &'static str,
    args: Vec<std::ffi::OsString>,
) -> Result<Report, SchemaToolError> {
    ensure_installed(tools)?;
    let output = Command::new("node")
        .arg(tools.join("scripts").join(script))
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| SchemaToolError::Spawn {
            program: "node",
            source,
        })?;
    // Node itself exits with 1 on an uncaught exception (a broken install fails at import, before the
    // script's own error handling), so 1 is a verdict only when the script printed its report.
    let reported = !output.stdout.iter().all(u8::is_ascii_whitespace);
    let outcome = match output.status.code() {
        Some(0) => Outcome::Passed,
        Some(1) if reported => Outcome::Failed,
        Some(2) if reported => Outcome::Invalid,
        _ => {
            return Err(SchemaToolError::Crashed {
                script,
                status: output.status,
            });
        }
    };
    Ok(Report {
        outcome,
        output: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}

/// Serializes installs: concurrent `npm ci` runs in one directory corrupt `node_modules`.
static INSTALL: Mutex<()> = Mutex::new(());

/// Runs `npm ci` when `node_modules` is missing or older than `package-lock.json`, so a fresh clone and a
/// dependency bump both just work.
fn ensure_installed(tools: &Path) -> Result<(), SchemaToolError> {
    let lock = tools.join("package-lock.json");
    if !tools.join("package.json").is_file() || !lock.is_file() {
        return Err(SchemaToolError::NoTools(tools.to_path_buf()));
    }
    // A panic elsewhere while holding the lock leaves nothing half-done that the guard protects.
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // npm writes this file last, after it has populated node_modules.
    let marker = tools.join("node_modules").join(".package-lock.json");
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(installed), Some(locked)) = (modified(&marker), modified(&lock))
        && installed >= locked
    {
        return Ok(());
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    eprintln!(
        "installing the schema tooling's packages (npm ci in {})",
        tools.display()
    );
    let status = Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(tools)
        .stdin(Stdio::null())
        // npm's progress goes to stderr so that stdout stays the report (JSON with --json).
        .stdout(Stdio::from(io::stderr()))
        .status()
        .map_err(|source| SchemaToolError::Spawn {
            program: "npm",
            source,
        })?;
    if !status.success() {
        return Err(SchemaToolError::Install {
            dir: tools.to_path_buf(),
            status,
        });
    }
    Ok(())
}

/// A uniquely named directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "shippy-schema-export-{}-{nanos}-{n}",
                std::process::id()
            ));
            // create_dir fails if the name is taken, so two processes never share a directory.
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temp dir is harmless.
        let _ = fs::remove_dir_all(&self.0);
    }
}
