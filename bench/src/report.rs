//! Turns the runs of one benchmark session into a markdown table that compares routers.
//!
//! A session runs every (mode, target) pair once per round, the targets of a round back to back.
//! The machine is shared and noisy, so absolute figures drift between rounds while the ratio of two
//! routers measured side by side drifts much less: ratios are therefore computed per round and the
//! report shows their median. Absolute figures are medians over rounds; failures are summed.
//!
//! Runs whose mode is a light-load latency label (`latency-c<connections>-<router mode>`, see
//! [`latency_mode`]) get their own section: latency percentiles at a few connections and each
//! router's p50 overhead over the monolith measured in the same round.

use std::{collections::BTreeMap, fmt::Write as _, fs, io, path::Path};

use crate::load::{LoadReport, ProcessUsage};

/// The label of the router's process in [`LoadReport::processes`].
pub const ROUTER_PROCESS: &str = "router";
/// The label of the subgraph server's process.
pub const SUBGRAPHS_PROCESS: &str = "subgraphs";
/// The label of the load generator's own process.
pub const LOADGEN_PROCESS: &str = "loadgen";

#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub title: String,
    /// Lines printed under the title (machine, settings, commit).
    pub notes: Vec<String>,
    /// The target that ratios compare against (Hive Router).
    pub reference: String,
    /// The mode of the runs that load a subgraph directly (the overhead baseline).
    pub direct_mode: String,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            title: "Router benchmark".into(),
            notes: Vec::new(),
            reference: "hive".into(),
            direct_mode: "direct".into(),
        }
    }
}

/// The mode label of a light-load latency run at `connections` with the routers configured as in
/// `router_mode`; the monolith's runs at the same load carry the same label.
pub fn latency_mode(connections: usize, router_mode: &str) -> String {
    format!("{LATENCY_PREFIX}{connections}-{router_mode}")
}

const LATENCY_PREFIX: &str = "latency-c";

/// The connections and router mode of a [`latency_mode`] label.
fn parse_latency_mode(mode: &str) -> Option<(usize, &str)> {
    let (connections, router_mode) = mode.strip_prefix(LATENCY_PREFIX)?.split_once('-')?;
    Some((connections.parse().ok()?, router_mode))
}

/// The target whose latency is subtracted from the routers' in the light-load section.
pub const DIRECT_TARGET: &str = "monolith";

/// Instructions one request costs a target, counted by callgrind: deterministic, so unlike the
/// timed figures it does not move with the machine's load.
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionCount {
    pub mode: String,
    pub target: String,
    pub per_request: f64,
}

/// Parses `mode<TAB>target<TAB>instructions per request` lines (`#` comments and blanks ignored).
pub fn parse_instructions(text: &str) -> Result<Vec<InstructionCount>, String> {
    let mut counts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [mode, target, value] = fields[..] else {
            return Err(format!(
                "line {}: expected mode, target and a count separated by tabs",
                n + 1
            ));
        };
        let per_request = value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("line {}: `{value}` is not a count", n + 1))?;
        counts.push(InstructionCount {
            mode: mode.to_owned(),
            target: target.to_owned(),
            per_request,
        });
    }
    Ok(counts)
}

/// Reads every `*.json` run report in `dir`.
pub fn load_dir(dir: &Path) -> io::Result<Vec<LoadReport>> {
    let mut reports = Vec::new();
    let mut paths: Vec<_> = fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    paths.sort();
    for path in paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let text = fs::read(&path)?;
        let report = serde_json::from_slice(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        reports.push(report);
    }
    Ok(reports)
}

/// The markdown report; `instructions` adds the callgrind section when not empty.
pub fn render(
    reports: &[LoadReport],
    instructions: &[InstructionCount],
    options: &ReportOptions,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n", options.title);
    for note in &options.notes {
        let _ = writeln!(out, "- {note}");
    }
    if !options.notes.is_empty() {
        out.push('\n');
    }

    let runs = Runs::group(reports);
    let reference = options.reference.as_str();
    for mode in runs
        .modes()
        .into_iter()
        .filter(|m| *m != options.direct_mode && parse_latency_mode(m).is_none())
    {
        let _ = writeln!(out, "### {}\n", mode_title(mode));
        out.push_str(
            "| target | req/s | req/s vs ref | p50 ms | p90 ms | p99 ms | CPU % | CPU ms/req | CPU/req vs ref | \
             peak RSS MiB | RSS vs ref | subgraph calls/req | subgraphs CPU % | loadgen CPU % | failures |\n",
        );
        out.push_str(
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for target in runs.targets(mode) {
            let rows = runs.get(mode, target);
            let usage = |label: &str, f: fn(&ProcessUsage) -> f64| {
                median(rows.iter().filter_map(|r| r.process(label).map(f)))
            };
            let router = |f: fn(&ProcessUsage) -> f64| usage(ROUTER_PROCESS, f);
            let vs_ref = |f: fn(&LoadReport) -> Option<f64>| {
                if target == reference {
                    Some(1.0)
                } else {
                    runs.median_ratio(mode, target, mode, reference, f)
                }
            };
            let _ = writeln!(
                out,
                "| {target} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                num(median(rows.iter().map(|r| r.requests_per_second)), 0),
                times(vs_ref(|r| Some(r.requests_per_second))),
                num(median(rows.iter().map(|r| r.latency_ms.p50)), 2),
                num(median(rows.iter().map(|r| r.latency_ms.p90)), 2),
                num(median(rows.iter().map(|r| r.latency_ms.p99)), 2),
                num(router(|p| p.cpu_percent), 0),
                num(router(|p| p.cpu_ms_per_request), 3),
                times(vs_ref(|r| r
                    .process(ROUTER_PROCESS)
                    .map(|p| p.cpu_ms_per_request))),
                num(router(|p| p.peak_rss_mib), 1),
                times(vs_ref(|r| r
                    .process(ROUTER_PROCESS)
                    .map(|p| p.peak_rss_mib))),
                num(
                    median(
                        rows.iter()
                            .filter_map(|r| r.subgraph_traffic.map(|t| t.calls_per_request))
                    ),
                    2
                ),
                num(usage(SUBGRAPHS_PROCESS, |p| p.cpu_percent), 0),
                num(usage(LOADGEN_PROCESS, |p| p.cpu_percent), 0),
                failures(rows),
            );
        }
        out.push('\n');
    }

    if !instructions.is_empty() {
        render_instructions(&mut out, instructions, reference);
    }

    let direct = options.direct_mode.as_str();
    let direct_targets = runs.targets(direct);
    if let Some(&baseline) = direct_targets.first() {
        let _ = writeln!(
            out,
            "### Overhead baseline: the operation sent straight to one subgraph ({baseline})\n"
        );
        out.push_str("| target | req/s | p50 ms | p90 ms | p99 ms | subgraphs CPU % | CPU ms/req | failures |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        let rows = runs.get(direct, baseline);
        let subgraphs = |f: fn(&ProcessUsage) -> f64| {
            median(
                rows.iter()
                    .filter_map(|r| r.process(SUBGRAPHS_PROCESS).map(f)),
            )
        };
        let _ = writeln!(
            out,
            "| {baseline} | {} | {} | {} | {} | {} | {} | {} |\n",
            num(median(rows.iter().map(|r| r.requests_per_second)), 0),
            num(median(rows.iter().map(|r| r.latency_ms.p50)), 2),
            num(median(rows.iter().map(|r| r.latency_ms.p90)), 2),
            num(median(rows.iter().map(|r| r.latency_ms.p99)), 2),
            num(subgraphs(|p| p.cpu_percent), 0),
            num(subgraphs(|p| p.cpu_ms_per_request), 3),
            failures(rows),
        );
        // Only modes that sent what the baseline was sent (not the varied workload) compare.
        let comparable = |mode: &str| {
            mode != direct
                && parse_latency_mode(mode).is_none()
                && runs.workload(mode) == runs.workload(direct)
        };
        let mut shares = String::new();
        for mode in runs.modes().into_iter().filter(|m| comparable(m)) {
            for target in runs.targets(mode) {
                let share = runs.median_ratio(mode, target, direct, baseline, |r| {
                    Some(r.requests_per_second)
                });
                let _ = writeln!(
                    shares,
                    "- {target}, {}: {}",
                    mode_title(mode).to_lowercase(),
                    percent(share)
                );
            }
        }
        if !shares.is_empty() {
            out.push_str(
                "Router throughput as a share of the direct baseline (median of per-round ratios):\n\n",
            );
            out.push_str(&shares);
            out.push('\n');
        }
    }

    render_latency(&mut out, &runs, reference);

    let _ = writeln!(
        out,
        "Ratios (\"vs ref\", against {reference}) are medians of per-round ratios, each round measuring all \
         targets back to back; other figures are medians over rounds, failures are summed. Throughput ratio \
         above 1 is better; CPU/req and RSS ratios below 1 are better."
    );
    out
}

/// The light-load section: per connection count, each target's latency and each router's p50
/// overhead over the monolith (per round, then the median), and that overhead against the
/// reference router's.
fn render_latency(out: &mut String, runs: &Runs, reference: &str) {
    let mut modes: Vec<(usize, &str, &str)> = runs
        .modes()
        .into_iter()
        .filter_map(|m| parse_latency_mode(m).map(|(c, router_mode)| (c, router_mode, m)))
        .collect();
    if modes.is_empty() {
        return;
    }
    modes.sort();
    let mut router_modes: Vec<&str> = modes.iter().map(|(_, r, _)| *r).collect();
    router_modes.dedup();
    let _ = writeln!(
        out,
        "### Latency at light load (the benchmark operation; routers in mode {})\n",
        router_modes
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str(
        "| connections | target | req/s | p50 ms | p90 ms | p99 ms | p50 overhead ms | overhead vs ref | failures |\n",
    );
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (connections, _, mode) in &modes {
        let direct = runs.get(mode, DIRECT_TARGET);
        // A target's p50 minus the monolith's p50 of the same round.
        let overhead = |run: &LoadReport| {
            direct
                .iter()
                .find(|d| d.labels.round == run.labels.round)
                .map(|d| run.latency_ms.p50 - d.latency_ms.p50)
        };
        let reference_runs = runs.get(mode, reference);
        for target in runs.targets(mode) {
            let rows = runs.get(mode, target);
            let is_direct = target == DIRECT_TARGET;
            let (overhead_ms, vs_ref) = if is_direct {
                (None, None)
            } else {
                let vs_ref = median(rows.iter().filter_map(|run| {
                    let reference_run = reference_runs
                        .iter()
                        .find(|r| r.labels.round == run.labels.round)?;
                    let (ours, theirs) = (overhead(run)?, overhead(reference_run)?);
                    (theirs > 0.0).then(|| ours / theirs)
                }));
                (median(rows.iter().filter_map(|r| overhead(r))), vs_ref)
            };
            let label = if is_direct {
                format!("{target} (direct)")
            } else {
                target.to_owned()
            };
            let _ = writeln!(
                out,
                "| {connections} | {label} | {} | {} | {} | {} | {} | {} | {} |",
                num(median(rows.iter().map(|r| r.requests_per_second)), 0),
                num(median(rows.iter().map(|r| r.latency_ms.p50)), 2),
                num(median(rows.iter().map(|r| r.latency_ms.p90)), 2),
                num(median(rows.iter().map(|r| r.latency_ms.p99)), 2),
                num(overhead_ms, 2),
                times(vs_ref),
                failures(rows),
            );
        }
    }
    out.push_str(
        "\nOverhead is a router's p50 minus the monolith's p50 in the same round (what federation \
         adds to one request at this load), the median over rounds; \"overhead vs ref\" is the median \
         of per-round ratios of the two overheads (below 1: less added latency than the reference).\n\n",
    );
}

fn render_instructions(out: &mut String, counts: &[InstructionCount], reference: &str) {
    let mut modes: Vec<&str> = counts.iter().map(|c| c.mode.as_str()).collect();
    modes.sort_by_key(|m| (mode_rank(m), *m));
    modes.dedup();
    let mut targets: Vec<&str> = counts.iter().map(|c| c.target.as_str()).collect();
    targets.sort_by_key(|t| (target_rank(t), *t));
    targets.dedup();
    let count = |mode: &str, target: &str| {
        counts
            .iter()
            .find(|c| c.mode == mode && c.target == target)
            .map(|c| c.per_request)
    };

    out.push_str(
        "### Instructions per request (callgrind: deterministic, immune to machine noise)\n\n",
    );
    out.push_str("| target |");
    for mode in &modes {
        let _ = write!(out, " {} | vs ref |", mode_title(mode).to_lowercase());
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|---:|".repeat(modes.len()));
    out.push('\n');
    for target in &targets {
        let _ = write!(out, "| {target} |");
        for mode in &modes {
            let value = count(mode, target);
            let vs_ref = value
                .zip(count(mode, reference))
                .and_then(|(v, r)| (r > 0.0).then(|| v / r));
            let _ = write!(out, " {} | {} |", millions(value), times(vs_ref));
        }
        out.push('\n');
    }
    out.push_str(
        "\nCounted over 200 requests on 4 connections after 40 warm-up requests (plus the check of each \
         distinct request before them: 1, or the 25 of mode varied), everything the router \
         process executes included (HTTP, parsing, planning cache, execution, logging). Valgrind runs one \
         thread at a time, so outbound deduplication rarely has concurrent duplicates to share here.\n\n",
    );
}

/// Run reports indexed by mode, then target, in round order.
struct Runs<'a> {
    by_mode: BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a LoadReport>>>,
}

impl<'a> Runs<'a> {
    fn group(reports: &'a [LoadReport]) -> Runs<'a> {
        let mut by_mode: BTreeMap<&str, BTreeMap<&str, Vec<&LoadReport>>> = BTreeMap::new();
        for report in reports {
            let runs = by_mode
                .entry(report.labels.mode.as_str())
                .or_default()
                .entry(report.labels.target.as_str())
                .or_default();
            runs.push(report);
        }
        for targets in by_mode.values_mut() {
            for runs in targets.values_mut() {
                runs.sort_by_key(|r| r.labels.round);
            }
        }
        Runs { by_mode }
    }

    /// Modes in presentation order: defaults first, then dedup off, then the rest by name.
    fn modes(&self) -> Vec<&'a str> {
        let mut modes: Vec<&str> = self.by_mode.keys().copied().collect();
        modes.sort_by_key(|m| (mode_rank(m), *m));
        modes
    }

    /// Targets in presentation order: ours first, then Hive Router, then the rest by name.
    fn targets(&self, mode: &str) -> Vec<&'a str> {
        let mut targets: Vec<&str> = self
            .by_mode
            .get(mode)
            .map(|t| t.keys().copied().collect())
            .unwrap_or_default();
        targets.sort_by_key(|t| (target_rank(t), *t));
        targets
    }

    /// The workload a mode's runs sent (that of its first run).
    fn workload(&self, mode: &str) -> Option<&'a str> {
        let targets = self.by_mode.get(mode)?;
        let run = targets.values().flatten().next()?;
        Some(run.workload.as_str())
    }

    fn get(&self, mode: &str, target: &str) -> &[&'a LoadReport] {
        self.by_mode
            .get(mode)
            .and_then(|t| t.get(target))
            .map_or(&[], Vec::as_slice)
    }

    /// The median over rounds of `f(a) / f(b)`, for the rounds that measured both.
    fn median_ratio(
        &self,
        mode_a: &str,
        target_a: &str,
        mode_b: &str,
        target_b: &str,
        f: impl Fn(&LoadReport) -> Option<f64>,
    ) -> Option<f64> {
        let b_runs = self.get(mode_b, target_b);
        median(self.get(mode_a, target_a).iter().filter_map(|a| {
            let b = b_runs.iter().find(|b| b.labels.round == a.labels.round)?;
            let (a, b) = (f(a)?, f(b)?);
            (b > 0.0).then(|| a / b)
        }))
    }
}

fn mode_rank(mode: &str) -> u8 {
    match mode {
        "default" => 0,
        "dedup-off" => 1,
        "varied" => 2,
        _ => 3,
    }
}

fn target_rank(target: &str) -> u8 {
    match target {
        "shippy" => 0,
        "hive" => 1,
        _ => 2,
    }
}

fn mode_title(mode: &str) -> String {
    match mode {
        "default" => "Default settings".into(),
        // Both routers: ours with inbound and outbound off, Hive with outbound off (its inbound
        // deduplication is off by default).
        "dedup-off" => "Deduplication off".into(),
        "varied" => {
            "Varied workload (five operation shapes, changing variables; deduplication off)".into()
        }
        other => format!("Mode `{other}`"),
    }
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn failures(rows: &[&LoadReport]) -> String {
    let total: u64 = rows.iter().map(|r| r.failures.total()).sum();
    let requests: u64 = rows.iter().map(|r| r.ok + r.failures.total()).sum();
    if total == 0 {
        "0".into()
    } else {
        format!("**{total}** of {requests}")
    }
}

fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

fn times(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.2}×"))
}

fn millions(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:.2} M", v / 1e6))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Failures, Labels, Latency};

    fn run(mode: &str, target: &str, round: u32, rps: f64, cpu_ms: f64, rss: f64) -> LoadReport {
        let process = |label: &str, cpu_ms_per_request: f64, peak_rss_mib: f64| ProcessUsage {
            label: label.into(),
            cpu_seconds: 1.0,
            cpu_percent: 150.0,
            cpu_ms_per_request,
            peak_rss_mib,
        };
        let watched_label = if mode == "direct" {
            SUBGRAPHS_PROCESS
        } else {
            ROUTER_PROCESS
        };
        LoadReport {
            labels: Labels {
                target: target.into(),
                mode: mode.into(),
                round,
            },
            workload: crate::load::BENCHMARK_WORKLOAD.into(),
            distinct_requests: 1,
            connections: 50,
            measured_seconds: 10.0,
            ok: (rps * 10.0) as u64,
            failures: Failures::default(),
            requests_per_second: rps,
            latency_ms: Latency {
                p50: 10.0,
                p90: 20.0,
                p99: 30.0,
                max: 40.0,
                mean: 12.0,
            },
            response_bytes: 87_327,
            processes: vec![
                process(watched_label, cpu_ms, rss),
                process(SUBGRAPHS_PROCESS, 0.1, 20.0),
                process(LOADGEN_PROCESS, 0.1, 5.0),
            ],
            subgraph_traffic: Some(crate::load::SubgraphTraffic {
                calls_per_request: 7.0,
                bytes_per_request: 9000.0,
            }),
            first_mismatch: None,
        }
    }

    #[test]
    fn ratios_are_medians_of_per_round_ratios() {
        // Round 2 is slow for both routers: its ratio is still 2, and so is the median.
        let reports = vec![
            run("default", "shippy", 1, 2000.0, 1.0, 30.0),
            run("default", "hive", 1, 1000.0, 2.0, 60.0),
            run("default", "shippy", 2, 400.0, 1.0, 30.0),
            run("default", "hive", 2, 200.0, 2.0, 60.0),
            run("default", "shippy", 3, 2100.0, 1.0, 30.0),
            run("default", "hive", 3, 1000.0, 2.0, 60.0),
        ];
        let runs = Runs::group(&reports);
        let ratio = runs.median_ratio("default", "shippy", "default", "hive", |r| {
            Some(r.requests_per_second)
        });
        assert_eq!(ratio, Some(2.0));
        let table = render(&reports, &[], &ReportOptions::default());
        assert!(table.contains("| shippy | 2000 | 2.00× | 10.00 | 20.00 | 30.00 | 150 | 1.000 | 0.50× | 30.0 | 0.50× | 7.00 | 150 | 150 | 0 |"), "{table}");
        assert!(table.contains("| hive | 1000 | 1.00× |"), "{table}");
        assert!(table.contains("### Default settings"));
    }

    #[test]
    fn modes_and_targets_come_in_a_fixed_order() {
        let reports = vec![
            run("dedup-off", "hive", 1, 900.0, 2.0, 60.0),
            run("dedup-off", "shippy", 1, 1800.0, 1.0, 30.0),
            run("default", "hive", 1, 1000.0, 2.0, 60.0),
            run("default", "shippy", 1, 2000.0, 1.0, 30.0),
        ];
        let table = render(&reports, &[], &ReportOptions::default());
        let at = |needle: &str| {
            table
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} missing:\n{table}"))
        };
        assert!(at("### Default settings") < at("### Deduplication off"));
        assert!(at("| shippy | 2000") < at("| hive | 1000"));
        assert!(at("| shippy | 1800") < at("| hive | 900"));
    }

    #[test]
    fn direct_baseline_gives_throughput_shares() {
        let reports = vec![
            run("default", "shippy", 1, 2000.0, 1.0, 30.0),
            run("default", "hive", 1, 1000.0, 2.0, 60.0),
            run("direct", "monolith", 1, 4000.0, 0.2, 20.0),
        ];
        let table = render(&reports, &[], &ReportOptions::default());
        assert!(
            table.contains(
                "### Overhead baseline: the operation sent straight to one subgraph (monolith)"
            ),
            "{table}"
        );
        assert!(
            table.contains("| monolith | 4000 | 10.00 | 20.00 | 30.00 | 150 | 0.200 | 0 |"),
            "{table}"
        );
        assert!(table.contains("- shippy, default settings: 50%"), "{table}");
        assert!(table.contains("- hive, default settings: 25%"), "{table}");
    }

    #[test]
    fn the_varied_mode_has_its_table_but_no_share_of_the_benchmark_baseline() {
        let varied = |target, rps| {
            let mut r = run("varied", target, 1, rps, 1.0, 30.0);
            r.workload = "varied".into();
            r.distinct_requests = 25;
            r
        };
        let reports = vec![
            run("dedup-off", "shippy", 1, 2000.0, 1.0, 30.0),
            varied("shippy", 3000.0),
            varied("hive", 2000.0),
            run("direct", "monolith", 1, 4000.0, 0.2, 20.0),
        ];
        let table = render(&reports, &[], &ReportOptions::default());
        assert!(table.contains("### Varied workload"), "{table}");
        assert!(table.contains("| shippy | 3000 | 1.50× |"), "{table}");
        assert!(
            table.contains("- shippy, deduplication off: 50%"),
            "{table}"
        );
        assert!(!table.contains("- shippy, varied"), "{table}");

        // Without a comparable mode, no empty list.
        let only_varied = vec![
            varied("shippy", 3000.0),
            run("direct", "monolith", 1, 4000.0, 0.2, 20.0),
        ];
        let table = render(&only_varied, &[], &ReportOptions::default());
        assert!(!table.contains("as a share"), "{table}");
    }

    #[test]
    fn light_load_latency_shows_overheads_over_the_monolith() {
        let at = |connections: usize, target: &str, round: u32, p50: f64| {
            let mut r = run(
                &latency_mode(connections, "dedup-off"),
                target,
                round,
                100.0,
                1.0,
                30.0,
            );
            r.latency_ms.p50 = p50;
            r
        };
        let reports = vec![
            // Round 1: overheads 1 ms (ours) and 4 ms (Hive); round 2, slower: 2 and 4.
            at(1, "shippy", 1, 2.0),
            at(1, "hive", 1, 5.0),
            at(1, DIRECT_TARGET, 1, 1.0),
            at(1, "shippy", 2, 4.0),
            at(1, "hive", 2, 6.0),
            at(1, DIRECT_TARGET, 2, 2.0),
            at(10, "shippy", 1, 3.0),
            at(10, "hive", 1, 2.0),
            at(10, DIRECT_TARGET, 1, 2.5),
        ];
        let table = render(&reports, &[], &ReportOptions::default());
        assert!(
            table.contains(
                "### Latency at light load (the benchmark operation; routers in mode `dedup-off`)"
            ),
            "{table}"
        );
        assert!(
            table.contains("| 1 | shippy | 100 | 3.00 | 20.00 | 30.00 | 1.50 | 0.38× | 0 |"),
            "{table}"
        );
        assert!(
            table.contains("| 1 | hive | 100 | 5.50 | 20.00 | 30.00 | 4.00 | 1.00× | 0 |"),
            "{table}"
        );
        assert!(
            table.contains("| 1 | monolith (direct) | 100 | 1.50 |"),
            "{table}"
        );
        // Hive faster than the monolith at 10: no meaningful ratio.
        assert!(
            table.contains("| 10 | shippy | 100 | 3.00 | 20.00 | 30.00 | 0.50 | – | 0 |"),
            "{table}"
        );
        assert!(!table.contains("### Mode `latency"), "{table}");
        assert!(table.find("| 1 | shippy").unwrap() < table.find("| 10 | shippy").unwrap());
    }

    #[test]
    fn latency_labels_round_trip() {
        assert_eq!(
            parse_latency_mode(&latency_mode(10, "dedup-off")),
            Some((10, "dedup-off"))
        );
        assert_eq!(parse_latency_mode("dedup-off"), None);
        assert_eq!(parse_latency_mode("latency-cx-default"), None);
    }

    #[test]
    fn missing_reference_and_failures_are_visible() {
        let mut only_ours = run("default", "shippy", 1, 2000.0, 1.0, 30.0);
        only_ours.failures.status = 3;
        let table = render(&[only_ours], &[], &ReportOptions::default());
        assert!(table.contains("| shippy | 2000 | – |"), "{table}");
        assert!(table.contains("**3** of 20003"), "{table}");
    }

    #[test]
    fn instruction_counts_get_their_own_table() {
        let counts = parse_instructions(
            "# mode\ttarget\tinstructions\ndefault\tshippy\t3000000\ndefault\thive\t4000000\n\ndedup-off\tshippy\t3100000\n",
        )
        .unwrap();
        assert_eq!(counts.len(), 3);
        let table = render(&[], &counts, &ReportOptions::default());
        assert!(
            table.contains("| target | default settings | vs ref | deduplication off | vs ref |"),
            "{table}"
        );
        assert!(
            table.contains("| shippy | 3.00 M | 0.75× | 3.10 M | – |"),
            "{table}"
        );
        assert!(
            table.contains("| hive | 4.00 M | 1.00× | – | – |"),
            "{table}"
        );
    }

    #[test]
    fn malformed_instruction_lines_are_rejected() {
        assert!(
            parse_instructions("default\tshippy")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            parse_instructions("default\tshippy\tmany")
                .unwrap_err()
                .contains("not a count")
        );
        assert!(parse_instructions("default\tshippy\t-5").is_err());
        assert_eq!(parse_instructions("").unwrap(), vec![]);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), Some(2.5));
        assert_eq!(median([f64::NAN].into_iter()), None);
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn reports_round_trip_through_a_directory() {
        let dir = std::env::temp_dir().join(format!("shippy-bench-report-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let report = run("default", "shippy", 1, 2000.0, 1.0, 30.0);
        fs::write(dir.join("a.json"), serde_json::to_vec(&report).unwrap()).unwrap();
        fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let loaded = load_dir(&dir);
        fs::write(dir.join("b.json"), "{ not json").unwrap();
        let broken = load_dir(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.unwrap(), vec![report]);
        assert_eq!(broken.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
