//! The load generator: N keep-alive connections POST requests back to back for a while, every
//! response is checked, and throughput, latency and the watched processes' CPU and memory are reported.
//!
//! A run sends one request or rotates through several (the varied workload): the n-th request sent,
//! over all connections, is `requests[n % len]`, so concurrent requests are as different as the
//! rotation allows. Order of a run: each distinct request is sent once and must get exactly its
//! expected response (field order included), else the run fails; then the connections start, a
//! warm-up passes unmeasured, CPU times and subgraph traffic are sampled, and the measured window runs
//! until the duration ends or the request budget is spent; then everything is sampled again.
//! Every measured response must be a 200 whose body is byte-identical to the first, checked answer to
//! the same request (cheap) or, failing that, semantically equal to its expected response (parsed);
//! anything else is a failure, counted by kind.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::{
    client::{ClientError, Connection, Target},
    json::{Difference, Json, first_difference},
    procfs,
    subgraphs::stats::{StatsSnapshot, total_between},
};

/// When the measured window ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this long (requests in flight then still complete and count).
    After(Duration),
    /// After this many requests have been sent.
    Requests(u64),
}

/// A process whose CPU time and peak memory the report includes (the router, the subgraphs).
#[derive(Debug, Clone)]
pub struct Watched {
    pub label: String,
    pub pid: u32,
}

/// Names that place a run in the comparison: which target, in which mode, in which round.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Labels {
    pub target: String,
    pub mode: String,
    pub round: u32,
}

/// One request a run sends, and the response it must get.
#[derive(Debug, Clone)]
pub struct Request {
    /// Names the request in failure messages (e.g. `shallow {"first":2}`).
    pub name: String,
    /// The POST body.
    pub body: Bytes,
    pub expected: Json,
}

impl Request {
    pub fn new(name: impl Into<String>, body: Bytes, expected: Json) -> Request {
        Request {
            name: name.into(),
            body,
            expected,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub url: String,
    /// Sent in rotation: the n-th request of the run (warm-up included) is `requests[n % len]`.
    pub requests: Vec<Request>,
    /// Names the requests in the report (`benchmark`, `varied`), so that only runs of the same
    /// workload are compared with each other.
    pub workload: String,
    /// Concurrent connections, each sending its next request when the previous one is answered.
    pub connections: usize,
    pub stop: Stop,
    /// Unmeasured time first, so that connection set-up, plan caches and allocators settle.
    pub warmup: Duration,
    /// How long one request may take before it counts as a timeout (and its connection is dropped).
    pub request_timeout: Duration,
    pub watch: Vec<Watched>,
    /// The benchmark subgraphs' `GET /stats` URL: when set, the report includes the subgraph calls
    /// and bytes each request cost.
    pub subgraph_stats: Option<String>,
    /// The unit of `/proc/<pid>/stat` CPU times.
    pub clk_tck: u64,
    pub labels: Labels,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("at least one connection is needed")]
    NoConnections,
    #[error("at least one request to send is needed")]
    NoRequests,
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the first request ({name}) got no answer within {timeout:?}")]
    FirstTimedOut { name: String, timeout: Duration },
    #[error("the first response to {name} has status {status}: {body}")]
    FirstStatus {
        name: String,
        status: StatusCode,
        body: String,
    },
    #[error("the first response to {name} is not the expected response: {difference}")]
    FirstMismatch {
        name: String,
        difference: Difference,
    },
    #[error("cannot read /proc for {label} (pid {pid}): {source}")]
    Proc {
        label: String,
        pid: u32,
        source: std::io::Error,
    },
    #[error("a load worker failed: {0}")]
    Worker(String),
    #[error("cannot read subgraph traffic from {url}: {reason}")]
    SubgraphStats { url: String, reason: String },
}

/// Failed requests in the measured window, by kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failures {
    /// Answered with an HTTP status other than 200.
    pub status: u64,
    /// Answered 200 with a body that is not the expected response (GraphQL errors included).
    pub wrong_response: u64,
    /// No answer within the request timeout.
    pub timeout: u64,
    /// Connection refused, reset or closed mid-request.
    pub transport: u64,
}

impl Failures {
    pub fn total(&self) -> u64 {
        self.status + self.wrong_response + self.timeout + self.transport
    }

    fn add(&mut self, other: &Failures) {
        self.status += other.status;
        self.wrong_response += other.wrong_response;
        self.timeout += other.timeout;
        self.transport += other.transport;
    }
}

/// Latency percentiles of the measured window's answered requests, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// A watched process's use during the measured window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessUsage {
    pub label: String,
    pub cpu_seconds: f64,
    /// CPU time over wall time; 200 means two cores busy.
    pub cpu_percent: f64,
    /// CPU time per successful request: the least noisy efficiency figure on a shared machine.
    pub cpu_ms_per_request: f64,
    /// Peak resident memory since the process started (`VmHWM`), in MiB.
    pub peak_rss_mib: f64,
}

/// What the subgraphs served per successful request during the measured window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct SubgraphTraffic {
    /// Subgraph HTTP calls per client request (outbound deduplication lowers it).
    pub calls_per_request: f64,
    /// Request plus response bytes exchanged with subgraphs per client request.
    pub bytes_per_request: f64,
}

/// What one run measured; serialized as one JSON document per run for `report`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    #[serde(flatten)]
    pub labels: Labels,
    /// The workload the run sent (reports written before workloads had names sent the benchmark).
    #[serde(default = "benchmark_workload")]
    pub workload: String,
    /// Distinct requests in the rotation.
    #[serde(default = "one")]
    pub distinct_requests: usize,
    pub connections: usize,
    pub measured_seconds: f64,
    /// Requests answered correctly in the measured window.
    pub ok: u64,
    pub failures: Failures,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
    /// Bytes of the first request's response.
    pub response_bytes: usize,
    pub processes: Vec<ProcessUsage>,
    #[serde(default)]
    pub subgraph_traffic: Option<SubgraphTraffic>,
    /// The first wrong response's difference from the expected one, if any.
    pub first_mismatch: Option<String>,
}

/// The name of the published benchmark's single-operation workload.
pub const BENCHMARK_WORKLOAD: &str = "benchmark";

fn benchmark_workload() -> String {
    BENCHMARK_WORKLOAD.to_owned()
}

fn one() -> usize {
    1
}

impl LoadReport {
    pub fn process(&self, label: &str) -> Option<&ProcessUsage> {
        self.processes.iter().find(|p| p.label == label)
    }
}

/// Runs the check, the warm-up and the measured window; see the module docs.
pub async fn run(options: LoadOptions) -> Result<LoadReport, LoadError> {
    if options.connections == 0 {
        return Err(LoadError::NoConnections);
    }
    if options.requests.is_empty() {
        return Err(LoadError::NoRequests);
    }
    let target = Target::parse(&options.url)?;
    let mut prepared = Vec::with_capacity(options.requests.len());
    for request in &options.requests {
        let reference = check_first_response(&target, request, options.request_timeout).await?;
        prepared.push(Prepared {
            body: request.body.clone(),
            checker: Checker {
                name: request.name.clone(),
                reference,
                expected: request.expected.clone(),
            },
        });
    }
    let response_bytes = prepared[0].checker.reference.len();

    let plan = Arc::new(Plan {
        requests: prepared,
        next: AtomicU64::new(0),
        end: OnceLock::new(),
        budget: Budget(AtomicU64::new(match options.stop {
            Stop::After(_) => u64::MAX,
            Stop::Requests(n) => n,
        })),
        request_timeout: options.request_timeout,
        target,
    });
    // Warm-up runs to completion before the "before" samples are taken, so that nothing is in flight
    // when the window opens: every subgraph call counted in the window belongs to a measured request.
    // The warmed connections are handed on to the measured workers.
    let connections: Vec<Option<Connection>> = if options.warmup.is_zero() {
        (0..options.connections).map(|_| None).collect()
    } else {
        let until = Instant::now() + options.warmup;
        let warming: Vec<_> = (0..options.connections)
            .map(|_| tokio::spawn(warm_up(Arc::clone(&plan), until)))
            .collect();
        let mut warmed = Vec::with_capacity(warming.len());
        for handle in warming {
            warmed.push(handle.await.map_err(|e| LoadError::Worker(e.to_string()))?);
        }
        warmed
    };
    let (cpu_before, traffic_before) = sample(&options).await?;
    let window_start = open_window(&plan, options.stop);
    let workers: Vec<_> = connections
        .into_iter()
        .map(|connection| tokio::spawn(worker(Arc::clone(&plan), connection)))
        .collect();
    let mut totals = WorkerStats::default();
    for handle in workers {
        let stats = handle.await.map_err(|e| LoadError::Worker(e.to_string()))?;
        totals.merge(stats);
    }
    let window = window_start.elapsed().as_secs_f64();
    let (cpu_after, traffic_after) = sample(&options).await?;

    let ok = totals.ok;
    let mut processes = Vec::with_capacity(options.watch.len());
    for ((watched, start), end) in options.watch.iter().zip(cpu_before).zip(cpu_after) {
        let cpu_seconds = end.saturating_sub(start) as f64 / options.clk_tck as f64;
        let peak_kib =
            procfs::peak_rss_kib(watched.pid).map_err(|source| proc_error(watched, source))?;
        processes.push(ProcessUsage {
            label: watched.label.clone(),
            cpu_seconds,
            cpu_percent: ratio(cpu_seconds * 100.0, window),
            cpu_ms_per_request: ratio(cpu_seconds * 1000.0, ok as f64),
            peak_rss_mib: peak_kib as f64 / 1024.0,
        });
    }
    Ok(LoadReport {
        labels: options.labels,
        workload: options.workload,
        distinct_requests: options.requests.len(),
        connections: options.connections,
        measured_seconds: window,
        ok,
        failures: totals.failures,
        requests_per_second: ratio(ok as f64, window),
        latency_ms: latency(&mut totals.latencies_us),
        response_bytes,
        processes,
        subgraph_traffic: traffic_before.zip(traffic_after).map(|(before, after)| {
            let total = total_between(&before, &after);
            SubgraphTraffic {
                calls_per_request: ratio(total.requests as f64, ok as f64),
                bytes_per_request: ratio(
                    (total.request_bytes + total.response_bytes) as f64,
                    ok as f64,
                ),
            }
        }),
        first_mismatch: totals.first_mismatch,
    })
}

/// CPU ticks of the watched processes and the subgraphs' traffic counters, now.
async fn sample(options: &LoadOptions) -> Result<(Vec<u64>, Option<StatsSnapshot>), LoadError> {
    let cpu = sample_cpu(&options.watch)?;
    let traffic = subgraph_stats(options.subgraph_stats.as_deref()).await?;
    Ok((cpu, traffic))
}

/// Starts the measured window: from now on workers count their requests (and spend the budget).
fn open_window(plan: &Plan, stop: Stop) -> Instant {
    let start = Instant::now();
    if let Stop::After(duration) = stop {
        // Set before any measured worker starts, so every worker sees the end.
        let _ = plan.end.set(start + duration);
    }
    start
}

/// Sends `request` once and insists on its expected response; returns the body, the byte-exact
/// reference that makes checking every later response to the same request cheap.
async fn check_first_response(
    target: &Target,
    request: &Request,
    timeout: Duration,
) -> Result<Bytes, LoadError> {
    let exchange = async {
        let mut connection = Connection::open(target).await?;
        connection
            .post_json(&target.path_and_query, request.body.clone())
            .await
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| LoadError::FirstTimedOut {
            name: request.name.clone(),
            timeout,
        })??;
    if status != StatusCode::OK {
        let body = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        return Err(LoadError::FirstStatus {
            name: request.name.clone(),
            status,
            body,
        });
    }
    let checker = Checker {
        name: request.name.clone(),
        reference: Bytes::new(),
        expected: request.expected.clone(),
    };
    checker
        .check(&body)
        .map_err(|difference| LoadError::FirstMismatch {
            name: request.name.clone(),
            difference,
        })?;
    Ok(body)
}

/// One request of the rotation with what its answers are checked against.
struct Prepared {
    body: Bytes,
    checker: Checker,
}

/// Shared, read-only description of the run, plus the request budget.
struct Plan {
    target: Target,
    /// The rotation; `next` counts the requests sent, over all connections.
    requests: Vec<Prepared>,
    next: AtomicU64,
    /// When a timed window ends (set as it opens).
    end: OnceLock<Instant>,
    budget: Budget,
    request_timeout: Duration,
}

impl Plan {
    /// The next request of the rotation.
    fn next_request(&self) -> &Prepared {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // The remainder is below `requests.len()`, so it fits a usize.
        &self.requests[(n % self.requests.len() as u64) as usize]
    }
}

/// Requests the measured window may still send (`u64::MAX` when the window is timed).
struct Budget(AtomicU64);

impl Budget {
    /// Takes one request from the budget; `false` once it is spent.
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

struct Checker {
    /// The request's name, for failure messages.
    name: String,
    /// A response body already known to be correct.
    reference: Bytes,
    expected: Json,
}

impl Checker {
    fn check(&self, body: &[u8]) -> Result<(), Difference> {
        if body == self.reference {
            return Ok(());
        }
        let actual = Json::parse(body).map_err(|e| Difference {
            path: "$".into(),
            expected: "a JSON document".into(),
            actual: format!("invalid JSON ({e})"),
        })?;
        first_difference(&self.expected, &actual).map_or(Ok(()), Err)
    }
}

#[derive(Default)]
struct WorkerStats {
    ok: u64,
    failures: Failures,
    latencies_us: Vec<u64>,
    /// The first wrong response's request and difference.
    first_mismatch: Option<String>,
}

impl WorkerStats {
    fn merge(&mut self, other: WorkerStats) {
        self.ok += other.ok;
        self.failures.add(&other.failures);
        self.latencies_us.extend(other.latencies_us);
        if self.first_mismatch.is_none() {
            self.first_mismatch = other.first_mismatch;
        }
    }
}

/// A pause before reconnecting, so that a target that refuses connections is not hammered in a loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// One simulated client: one connection, one request at a time, reconnecting when it breaks.
/// Sends requests until `until`, ignoring their outcome (the first response was already checked);
/// returns the connection, still open if it is healthy.
async fn warm_up(plan: Arc<Plan>, until: Instant) -> Option<Connection> {
    let mut connection: Option<Connection> = None;
    while Instant::now() < until {
        if connection.as_ref().is_none_or(Connection::is_closed) {
            match Connection::open(&plan.target).await {
                Ok(opened) => connection = Some(opened),
                Err(_) => {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            }
        }
        let Some(open) = connection.as_mut() else {
            continue;
        };
        let exchange = open.post_json(
            &plan.target.path_and_query,
            plan.next_request().body.clone(),
        );
        if !matches!(
            tokio::time::timeout(plan.request_timeout, exchange).await,
            Ok(Ok(_))
        ) {
            connection = None;
        }
    }
    connection
}

/// Sends measured requests until the window ends or the request budget is spent.
async fn worker(plan: Arc<Plan>, mut connection: Option<Connection>) -> WorkerStats {
    let mut stats = WorkerStats::default();
    loop {
        let started = Instant::now();
        if plan.end.get().is_some_and(|end| started >= *end) || !plan.budget.take() {
            break;
        }
        if connection.as_ref().is_none_or(Connection::is_closed) {
            match Connection::open(&plan.target).await {
                Ok(opened) => connection = Some(opened),
                Err(_) => {
                    stats.failures.transport += 1;
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            }
        }
        let Some(open) = connection.as_mut() else {
            continue;
        };
        let request = plan.next_request();
        let exchange = open.post_json(&plan.target.path_and_query, request.body.clone());
        let outcome = tokio::time::timeout(plan.request_timeout, exchange).await;
        let elapsed = started.elapsed();
        match outcome {
            Ok(Ok((status, body))) => {
                stats
                    .latencies_us
                    .push(elapsed.as_micros().try_into().unwrap_or(u64::MAX));
                if status != StatusCode::OK {
                    stats.failures.status += 1;
                } else if let Err(difference) = request.checker.check(&body) {
                    stats.failures.wrong_response += 1;
                    stats
                        .first_mismatch
                        .get_or_insert_with(|| format!("{}: {difference}", request.checker.name));
                } else {
                    stats.ok += 1;
                }
            }
            Ok(Err(_)) => {
                stats.failures.transport += 1;
                connection = None;
            }
            Err(_) => {
                // The answer may still arrive on this connection; a fresh one keeps replies in step.
                stats.failures.timeout += 1;
                connection = None;
            }
        }
    }
    stats
}

async fn subgraph_stats(url: Option<&str>) -> Result<Option<StatsSnapshot>, LoadError> {
    let Some(url) = url else { return Ok(None) };
    let failed = |reason: String| LoadError::SubgraphStats {
        url: url.to_owned(),
        reason,
    };
    let target = Target::parse(url).map_err(|e| failed(e.to_string()))?;
    let mut connection = Connection::open(&target)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (status, body) = connection
        .get(&target.path_and_query)
        .await
        .map_err(|e| failed(e.to_string()))?;
    if status != StatusCode::OK {
        return Err(failed(format!("status {status}")));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| failed(e.to_string()))
}

fn sample_cpu(watch: &[Watched]) -> Result<Vec<u64>, LoadError> {
    watch
        .iter()
        .map(|w| procfs::cpu_ticks(w.pid).map_err(|source| proc_error(w, source)))
        .collect()
}

fn proc_error(watched: &Watched, source: std::io::Error) -> LoadError {
    LoadError::Proc {
        label: watched.label.clone(),
        pid: watched.pid,
        source,
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

/// Nearest-rank percentiles over the samples (sorted in place).
pub fn latency(samples_us: &mut [u64]) -> Latency {
    if samples_us.is_empty() {
        return Latency::default();
    }
    samples_us.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let rank = |p: f64| {
        let index = (p / 100.0 * samples_us.len() as f64).ceil() as usize;
        ms(samples_us[index.clamp(1, samples_us.len()) - 1])
    };
    let sum: u64 = samples_us.iter().sum();
    Latency {
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: ms(samples_us[samples_us.len() - 1]),
        mean: ms(sum) / samples_us.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        samples.reverse();
        let l = latency(&mut samples);
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert!((l.mean - 50.5).abs() < 1e-9);
        let one = latency(&mut [2500]);
        assert_eq!((one.p50, one.p99, one.max), (2.5, 2.5, 2.5));
        assert_eq!(latency(&mut []), Latency::default());
    }

    #[test]
    fn checker_accepts_the_reference_and_equal_documents_only() {
        let checker = Checker {
            name: "test".into(),
            reference: Bytes::from_static(br#"{"data":{"a":1,"b":2}}"#),
            expected: Json::parse(br#"{"data":{"a":1,"b":2}}"#).unwrap(),
        };
        assert!(checker.check(br#"{"data":{"a":1,"b":2}}"#).is_ok());
        assert!(
            checker.check(br#"{ "data": { "a": 1, "b": 2 } }"#).is_ok(),
            "same document, other bytes"
        );
        let reordered = checker.check(br#"{"data":{"b":2,"a":1}}"#).unwrap_err();
        assert_eq!(reordered.path, "$.data");
        let errors = checker
            .check(br#"{"data":{"a":1,"b":2},"errors":[]}"#)
            .unwrap_err();
        assert!(errors.actual.contains("errors"));
        let garbage = checker.check(b"<html>").unwrap_err();
        assert!(garbage.actual.starts_with("invalid JSON"));
    }

    #[test]
    fn the_request_budget_runs_out() {
        let budget = Budget(AtomicU64::new(2));
        assert!(budget.take());
        assert!(budget.take());
        assert!(!budget.take());
        assert!(!budget.take(), "stays spent");
    }

    #[test]
    fn failures_add_up() {
        let mut a = Failures {
            status: 1,
            wrong_response: 2,
            timeout: 3,
            transport: 4,
        };
        a.add(&Failures {
            status: 1,
            ..Failures::default()
        });
        assert_eq!(a.total(), 11);
    }
}
