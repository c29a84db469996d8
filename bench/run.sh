#!/usr/bin/env bash
# The router benchmark in one command: builds, starts the benchmark subgraphs, then for each round
# starts each router in each mode, checks it answers the expected responses, loads it, and stops it;
# loads the monolith subgraph directly (the overhead baseline); measures latency at light load; and
# renders the comparison.
#
#   bench/run.sh            full run; table on stdout and in bench/results/latest.md
#   bench/run.sh --smoke    a few seconds, correctness only (CI): every target must answer exactly
#
# Knobs (environment):
#   DURATION=20s      measured window per run      WARMUP=3s       unmeasured load before it
#   CONNECTIONS=50    concurrent connections       ROUNDS=3        rounds (ratios are per round)
#   ROUTERS="shippy hive"                          MODES="default dedup-off varied"
#     (varied: five operation shapes with changing variables, own supergraph, deduplication off)
#   LATENCY_CONNECTIONS="1 10"  light-load points ("" skips them)   LATENCY_DURATION=5s per point
#   LATENCY_WARMUP=1s  LATENCY_MODE=dedup-off (router configuration of the light-load points)
#   HIVE_ROUTER=path  Hive Router binary (default: hive_router on PATH, then /work/tools/hive/bin)
#   HIVE_LOG_LEVEL=   unset: Hive's default (info, one log line per request); e.g. warn to silence
#   LOADGEN_THREADS=1 load generator threads       PROFILE=release (smoke: dev)
#   INSTRUCTIONS=auto also count instructions per request under callgrind (needs valgrind); 0 skips
#   KEEP_WORKDIR=1    keep logs, configs and per-run JSON (path printed at the end)
set -euo pipefail

SMOKE=0
case "${1:-}" in
    --smoke) SMOKE=1 ;;
    "") ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $SMOKE == 1 ]]; then
    DURATION=${DURATION:-0s}
    WARMUP=${WARMUP:-0s}
    CONNECTIONS=${CONNECTIONS:-4}
    ROUNDS=${ROUNDS:-1}
    ROUTERS=${ROUTERS:-shippy}
    MODES=${MODES:-default dedup-off varied}
    PROFILE=${PROFILE:-dev}
    SMOKE_REQUESTS=${SMOKE_REQUESTS:-40}
    LATENCY_WARMUP=${LATENCY_WARMUP:-0s}
else
    DURATION=${DURATION:-20s}
    WARMUP=${WARMUP:-3s}
    CONNECTIONS=${CONNECTIONS:-50}
    ROUNDS=${ROUNDS:-3}
    ROUTERS=${ROUTERS:-shippy hive}
    MODES=${MODES:-default dedup-off varied}
    PROFILE=${PROFILE:-release}
    LATENCY_WARMUP=${LATENCY_WARMUP:-1s}
fi
LATENCY_CONNECTIONS=${LATENCY_CONNECTIONS-1 10}
LATENCY_DURATION=${LATENCY_DURATION:-5s}
LATENCY_MODE=${LATENCY_MODE:-dedup-off}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
if [[ -z ${HIVE_ROUTER:-} ]]; then
    HIVE_ROUTER=$(command -v hive_router || echo /work/tools/hive/bin/hive_router)
fi

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- build -------------------------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$PROFILE" in
    dev | debug) BIN_DIR=$TARGET_DIR/debug; PROFILE=dev ;;
    *) BIN_DIR=$TARGET_DIR/$PROFILE ;;
esac
log "building (profile $PROFILE)..."
(cd "$ROOT" && cargo build --quiet --profile "$PROFILE" -p shippy-bench -p shippy)
BENCH=$BIN_DIR/shippy-bench
SHIPPY=$BIN_DIR/shippy

# How to start our router: the `shippy router` command when the CLI has it, else the bench's own
# launcher of the same library (`shippy-bench router`).
if "$SHIPPY" router --help 2>/dev/null | grep -q -- --supergraph; then
    OUR_ROUTER=("$SHIPPY" router)
elif "$BENCH" router --help 2>/dev/null | grep -q -- --supergraph; then
    OUR_ROUTER=("$BENCH" router)
else
    OUR_ROUTER=()
fi

# --- which targets can run ---------------------------------------------------------------------
targets=()
for target in $ROUTERS; do
    case "$target" in
        shippy)
            if [[ ${#OUR_ROUTER[@]} -eq 0 ]]; then
                [[ $SMOKE == 1 ]] && die "our router cannot be started (no 'shippy router' command)"
                log "warning: skipping shippy: no 'shippy router' command yet"
                continue
            fi ;;
        hive)
            if [[ ! -x $HIVE_ROUTER ]]; then
                log "warning: skipping hive: no Hive Router at $HIVE_ROUTER (set HIVE_ROUTER)"
                continue
            fi ;;
        *) die "unknown router '$target' (known: shippy hive)" ;;
    esac
    targets+=("$target")
done
for mode in $MODES $LATENCY_MODE; do
    [[ $mode == default || $mode == dedup-off || $mode == varied ]] ||
        die "unknown mode '$mode' (known: default dedup-off varied)"
done
for c in $LATENCY_CONNECTIONS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "LATENCY_CONNECTIONS: '$c' is not a connection count"
done

# --- processes ---------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shippy-bench.XXXXXX")
RESULTS=$WORK/results
mkdir -p "$RESULTS" "$WORK/logs"
started_pids=()

cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_WORKDIR:-0} == 1 ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_process() {
    local pid=$1 remaining=() p
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${started_pids[@]}"; do [[ $p == "$pid" ]] || remaining+=("$p"); done
    started_pids=("${remaining[@]}")
}

show_log() {
    log "--- last lines of $1 ---"
    tail -n 20 "$1" >&2 || true
}

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

"$BENCH" subgraphs --listen 127.0.0.1:0 --addr-file "$WORK/subgraphs.addr" >"$WORK/logs/subgraphs.log" 2>&1 &
SUBGRAPHS_PID=$!
started_pids+=("$SUBGRAPHS_PID")
for _ in $(seq 100); do [[ -s $WORK/subgraphs.addr ]] && break; sleep 0.05; done
[[ -s $WORK/subgraphs.addr ]] || { show_log "$WORK/logs/subgraphs.log"; die "the subgraphs did not start"; }
SUBGRAPHS_URL=http://$(cat "$WORK/subgraphs.addr")
"$BENCH" wait-ready "$SUBGRAPHS_URL/health" --timeout 10s
"$BENCH" supergraph --subgraphs-url "$SUBGRAPHS_URL" >"$WORK/supergraph.graphql"
"$BENCH" supergraph --subgraphs-url "$SUBGRAPHS_URL" --workload varied >"$WORK/supergraph-varied.graphql"

# What a mode sends (`load --workload`) and the supergraph its routers run: mode varied has its own.
workload_of() { if [[ $1 == varied ]]; then echo varied; else echo benchmark; fi; }
supergraph_of() { if [[ $1 == varied ]]; then echo supergraph-varied.graphql; else echo supergraph.graphql; fi; }

# Starts router $1 in mode $2, optionally under a wrapper command (valgrind) given after them;
# sets ROUTER_PID and ROUTER_URL.
start_router() {
    local target=$1 mode=$2 port dir logfile ready_timeout=30s
    shift 2
    local wrapper=("$@")
    [[ ${#wrapper[@]} -eq 0 ]] || ready_timeout=300s
    port=$("$BENCH" free-port)
    dir=$WORK/$target-$mode
    logfile=$WORK/logs/$target-$mode-$run_name.log
    mkdir -p "$dir"
    case "$target" in
        shippy)
            local args=(--supergraph "$WORK/$(supergraph_of "$mode")" --listen "127.0.0.1:$port")
            if [[ $mode == dedup-off || $mode == varied ]]; then
                shippy_config_dedup_off >"$dir/router.yaml"
                args+=(--config "$dir/router.yaml")
            fi
            # The benchmark subgraphs do not check the router's signature (as for any non-Shippy
            # subgraph), so `shippy router` need not refuse to start without a signing key; setting
            # SHIPPY_ROUTER__SUBGRAPH_SIGNING__KEY measures with signed subgraph requests.
            SHIPPY_ROUTER__SUBGRAPH_SIGNING__REQUIRED=false \
                "${wrapper[@]}" "${OUR_ROUTER[@]}" "${args[@]}" >"$logfile" 2>&1 &
            ;;
        hive)
            hive_config "$port" "$mode" >"$dir/router.config.yaml"
            (cd "$dir" && exec "${wrapper[@]}" "$HIVE_ROUTER") >"$logfile" 2>&1 &
            ;;
    esac
    ROUTER_PID=$!
    started_pids+=("$ROUTER_PID")
    ROUTER_URL=http://127.0.0.1:$port/graphql
    if ! "$BENCH" wait-ready "http://127.0.0.1:$port/health" --timeout "$ready_timeout"; then
        show_log "$logfile"
        die "$target ($mode) did not become ready"
    fi
}

# Our router's configuration with deduplication off: outbound (per subgraph) and inbound (identical
# client requests in flight sharing one execution), so every client request is executed on its own.
shippy_config_dedup_off() {
    printf 'http:\n  dedupe: false\nsubgraph_defaults:\n  dedupe: false\n'
}

# Hive Router's configuration: its defaults, plus outbound deduplication off in modes dedup-off and
# varied (its inbound deduplication is off by default).
hive_config() {
    local port=$1 mode=$2
    cat <<EOF
supergraph:
  source: file
  path: ../$(supergraph_of "$mode")
http:
  host: 127.0.0.1
  port: $port
EOF
    if [[ -n ${HIVE_LOG_LEVEL:-} ]]; then
        printf 'log:\n  level: %s\n' "$HIVE_LOG_LEVEL"
    fi
    if [[ $mode == dedup-off || $mode == varied ]]; then
        printf 'traffic_shaping:\n  all:\n    dedupe_enabled: false\n'
    fi
}

# Loads $1 (URL) as target $2 with what mode $3 sends, recorded under label $4, with $5 connections
# for $6 after a $7 warm-up, watching the remaining LABEL=PID processes.
load_target() {
    local url=$1 target=$2 mode=$3 label=$4 connections=$5 duration=$6 warmup=$7
    shift 7
    local watch=() pidspec
    for pidspec in "$@"; do watch+=(--pid "$pidspec"); done
    local window=(--duration "$duration")
    local strict=()
    if [[ $SMOKE == 1 ]]; then
        window=(--requests "$SMOKE_REQUESTS")
        strict=(--strict)
    fi
    "$BENCH" load --url "$url" --workload "$(workload_of "$mode")" --connections "$connections" \
        "${window[@]}" --warmup "$warmup" \
        --threads "$LOADGEN_THREADS" --clk-tck "$CLK_TCK" "${watch[@]}" "${strict[@]}" \
        --subgraph-stats "$SUBGRAPHS_URL/stats" \
        --target "$target" --mode "$label" --round "$round" --out "$RESULTS/$round-$label-$target.json"
}

# Loads $1 (URL) as target $2 in mode $3 under the main load, watching the given LABEL=PID processes.
run_load() {
    local url=$1 target=$2 mode=$3
    shift 3
    load_target "$url" "$target" "$mode" "$mode" "$CONNECTIONS" "$DURATION" "$WARMUP" "$@"
}

# The light-load points of one round: each router (configured as LATENCY_MODE), then the monolith
# directly, at each of LATENCY_CONNECTIONS; the report subtracts the monolith's p50 per round.
run_latency() {
    local target c label
    [[ -n ${LATENCY_CONNECTIONS// /} ]] || return 0
    for target in "${order[@]}"; do
        run_name=round$round-latency
        start_router "$target" "$LATENCY_MODE"
        for c in $LATENCY_CONNECTIONS; do
            label=latency-c$c-$LATENCY_MODE
            if ! load_target "$ROUTER_URL" "$target" benchmark "$label" "$c" "$LATENCY_DURATION" \
                "$LATENCY_WARMUP" "router=$ROUTER_PID" "subgraphs=$SUBGRAPHS_PID"; then
                failed=1
                show_log "$WORK/logs/$target-$LATENCY_MODE-$run_name.log"
            fi
        done
        stop_process "$ROUTER_PID"
    done
    for c in $LATENCY_CONNECTIONS; do
        label=latency-c$c-$LATENCY_MODE
        load_target "$SUBGRAPHS_URL/monolith" monolith benchmark "$label" "$c" "$LATENCY_DURATION" \
            "$LATENCY_WARMUP" "subgraphs=$SUBGRAPHS_PID" || failed=1
    done
}

# --- the runs ----------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
failed=0
for round in $(seq "$ROUNDS"); do
    # Alternate who goes first, so that slow drift on the machine does not favour one router.
    order=("${targets[@]}")
    if ((round % 2 == 0)); then
        order=()
        for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[i]}"); done
    fi
    for mode in $MODES; do
        for target in "${order[@]}"; do
            run_name=round$round
            start_router "$target" "$mode"
            if ! run_load "$ROUTER_URL" "$target" "$mode" "router=$ROUTER_PID" "subgraphs=$SUBGRAPHS_PID"; then
                failed=1
                show_log "$WORK/logs/$target-$mode-$run_name.log"
            fi
            stop_process "$ROUTER_PID"
        done
    done
    run_load "$SUBGRAPHS_URL/monolith" monolith direct "subgraphs=$SUBGRAPHS_PID" || failed=1
    run_latency
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- instructions per request (callgrind) -------------------------------------------------------
# Timed figures move with whatever else the machine runs; instruction counts do not. Each router
# runs under callgrind, counting is switched on after a warm-up, and 200 requests are counted.
INSTRUCTIONS_FILE=$WORK/instructions.tsv
CALLGRIND_REQUESTS=200
count_instructions() {
    local target=$1 mode=$2 out dump ir counted
    out=$WORK/callgrind/$target-$mode
    mkdir -p "$WORK/callgrind"
    run_name=callgrind
    start_router "$target" "$mode" valgrind --tool=callgrind "--callgrind-out-file=$out.%p"
    local quiet=(--workload "$(workload_of "$mode")" --connections 4 --warmup 0s --request-timeout 120s
        --strict)
    if ! "$BENCH" load --url "$ROUTER_URL" --requests 40 "${quiet[@]}" --out /dev/null 2>/dev/null; then
        log "warning: $target ($mode) failed under callgrind"
        stop_process "$ROUTER_PID"
        return 1
    fi
    callgrind_control --zero "$ROUTER_PID" >/dev/null
    "$BENCH" load --url "$ROUTER_URL" --requests "$CALLGRIND_REQUESTS" "${quiet[@]}" \
        --out "$out.load.json" 2>/dev/null
    callgrind_control --dump "$ROUTER_PID" >/dev/null
    # The count includes the load's check of each distinct request before the measured ones (25 in
    # mode varied: one more pass through its rotation, so the same mix).
    counted=$((CALLGRIND_REQUESTS + $(sed -n 's/^ *"distinct_requests": \([0-9]*\),$/\1/p' "$out.load.json")))
    dump=$out.$ROUTER_PID.1
    for _ in $(seq 100); do [[ -s $dump ]] && grep -q '^totals:' "$dump" && break; sleep 0.1; done
    stop_process "$ROUTER_PID"
    ir=$(awk '/^summary:/ { print $2 }' "$dump" 2>/dev/null || true)
    [[ -n $ir ]] || { log "warning: no callgrind count for $target ($mode)"; return 1; }
    printf '%s\t%s\t%s\n' "$mode" "$target" "$((ir / counted))" >>"$INSTRUCTIONS_FILE"
    log "$target [$mode]: $((ir / counted)) instructions per request (callgrind, $counted requests)"
}

INSTRUCTIONS=${INSTRUCTIONS:-auto}
if [[ $SMOKE == 1 ]]; then INSTRUCTIONS=0; fi
if [[ $INSTRUCTIONS == auto ]]; then
    if command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then INSTRUCTIONS=1; else INSTRUCTIONS=0; fi
fi
if [[ $INSTRUCTIONS == 1 ]]; then
    for mode in $MODES; do
        for target in "${targets[@]}"; do
            count_instructions "$target" "$mode" || true
        done
    done
fi

# --- the report --------------------------------------------------------------------------------
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then commit="$commit (with local changes)"; fi
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' || true)
hive_version=""
# Hive Router has no --version flag (it ignores arguments and starts); it logs its version at start.
hive_version=$(cat "$WORK"/logs/hive-*.log 2>/dev/null | grep -o -m1 '"version":"[^"]*"' | cut -d'"' -f4 || true)
if [[ -n $hive_version ]]; then hive_version=" Hive Router $hive_version."; fi
if [[ $SMOKE == 1 ]]; then
    window_note="smoke run: $SMOKE_REQUESTS requests per target over $CONNECTIONS connections"
else
    window_note="$CONNECTIONS connections, $DURATION measured after $WARMUP warm-up, $ROUNDS rounds"
fi
mode_notes=()
if [[ " $MODES " == *" varied "* ]]; then
    mode_notes+=(--note "Mode varied: bench/workload/varied, its own supergraph (the benchmark's plus a union); 25 distinct requests in rotation (the benchmark operation, shallow, wide, @requires, union; each with 5 values of \$first), expected responses from the monolith, every response checked; deduplication off in both routers.")
fi
if [[ -n ${LATENCY_CONNECTIONS// /} ]]; then
    if [[ $SMOKE == 1 ]]; then latency_window="$SMOKE_REQUESTS requests"; else latency_window="$LATENCY_DURATION after $LATENCY_WARMUP warm-up"; fi
    mode_notes+=(--note "Light load: the benchmark operation at ${LATENCY_CONNECTIONS// /, } connection(s), $latency_window per point, routers in mode $LATENCY_MODE (each started once per round for all points), then the monolith directly.")
fi
instruction_args=()
if [[ -s $INSTRUCTIONS_FILE ]]; then instruction_args=(--instructions "$INSTRUCTIONS_FILE"); fi
report=$("$BENCH" report "$RESULTS" "${instruction_args[@]}" \
    --title "Router benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')" \
    --note "Workload: bench/workload (users -> reviews -> product -> reviews -> author -> reviews -> product, and topProducts; 87,327-byte response), every response checked." \
    "${mode_notes[@]}" \
    --note "Load: $window_note; load generator: $LOADGEN_THREADS thread(s), one keep-alive HTTP/1.1 connection per client." \
    --note "Machine: $(nproc) CPUs ($cpu_model), shared; load average $LOAD_BEFORE before, $LOAD_AFTER after. Commit $commit, profile $PROFILE.$hive_version" \
    --note "Targets run one at a time against the same subgraph process (memoized responses); each router starts fresh per run, so peak RSS is per run.")
printf '%s\n' "$report"
if [[ $SMOKE == 0 ]]; then
    mkdir -p "$ROOT/bench/results"
    printf '%s\n' "$report" >"$ROOT/bench/results/latest.md"
    log "written to bench/results/latest.md"
fi
if [[ $failed == 1 ]]; then
    die "some runs failed (see above)"
fi
