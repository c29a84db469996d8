//! The router under test: ours in-process (the default), or Hive Router as a child process for
//! a differential run (`CORPUS_ROUTER=hive`, see `router/tests/corpus/README.md`).

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    net::TcpListener,
    process::{Child, Command},
    sync::oneshot,
};

/// Which router the corpus runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `shippy_router`, started in this process.
    Shippy,
    /// A Hive Router binary, started per case as a child process.
    Hive(PathBuf),
}

impl Target {
    /// `CORPUS_ROUTER=hive` selects Hive Router (binary from `CORPUS_HIVE_BIN`, default
    /// `/work/tools/hive/bin/hive_router`); anything else, or nothing, selects ours.
    pub fn from_env() -> Target {
        match std::env::var("CORPUS_ROUTER").as_deref() {
            Ok("hive") => Target::Hive(
                std::env::var_os("CORPUS_HIVE_BIN")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/work/tools/hive/bin/hive_router")),
            ),
            _ => Target::Shippy,
        }
    }
}

/// A started router; stopped when dropped.
pub struct RunningRouter {
    /// `http://127.0.0.1:PORT/graphql`
    pub url: String,
    _guard: Guard,
}

/// Keeps the router alive: dropping it stops ours (the sender closes) or kills Hive Router's
/// process and removes its working directory.
enum Guard {
    Shippy { _stop: oneshot::Sender<()> },
    Hive { _child: Box<Child>, dir: PathBuf },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Hive { dir, .. } = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts `target` over `supergraph` (subgraph URLs already pointing at the running subgraphs).
pub async fn start(target: &Target, case: &str, supergraph: &str) -> Result<RunningRouter, String> {
    match target {
        Target::Shippy => start_shippy(supergraph).await,
        Target::Hive(bin) => start_hive(bin, case, supergraph).await,
    }
}

async fn start_shippy(supergraph: &str) -> Result<RunningRouter, String> {
    let router = shippy_router::Router::from_supergraph_sdl(
        supergraph,
        shippy_router::RouterConfig::default(),
    )
    .map_err(|e| format!("shippy router rejected the supergraph: {e}"))?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = router.serve(listener, shutdown).await {
            eprintln!("corpus: shippy router stopped with an error: {e}");
        }
    });
    Ok(RunningRouter {
        url: format!("http://{addr}/graphql"),
        _guard: Guard::Shippy { _stop: stop },
    })
}

async fn start_hive(bin: &PathBuf, case: &str, supergraph: &str) -> Result<RunningRouter, String> {
    let dir =
        std::env::temp_dir().join(format!("shippy-corpus-hive-{case}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("supergraph.graphql");
    std::fs::write(&path, supergraph).map_err(|e| e.to_string())?;
    // Hive Router takes a port number, not a listener: borrow a free one from the OS.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        probe.local_addr().map_err(|e| e.to_string())?.port()
    };
    let child = Command::new(bin)
        .current_dir(&dir)
        .env("SUPERGRAPH_FILE_PATH", &path)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "error")
        // Ours passes subgraph error messages through; compare like for like.
        .env("DISABLE_SUBGRAPH_ERROR_MASKING", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("{base}/health")).send().await
            && response.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("hive router did not become healthy within 30s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(RunningRouter {
        url: format!("{base}/graphql"),
        _guard: Guard::Hive {
            _child: Box::new(child),
            dir,
        },
    })
}
