#!/usr/bin/env python3
"""Checks deploy/kubernetes against the Kubernetes schemas, the `shippy` binary and compose.yaml.

    check.py --shippy target/debug/shippy [--root deploy/kubernetes] [--compose compose.yaml]

Run by .ci/kubernetes, which installs the pinned validator (requirements.txt). Every problem found is
printed, one per line, and the exit status is 1 if there was any. What it asserts:

- each kustomization (the root, namespace/, migrate/) builds, every YAML file is part of one, and every
  object validates (strict: unknown fields are errors) against each Kubernetes version in VERSIONS;
- no Secret carries values, and secret-looking variables come from a secretKeyRef, never a literal;
- every container runs the `shippy` image as non-root, read-only, without capabilities, with
  RuntimeDefault seccomp, requests and limits, and writes only to emptyDir volumes; no subPath mounts;
- every Deployment has readiness on /ready and liveness on /health at the port it listens on (--listen),
  a Service on that port and a PodDisruptionBudget; the router has a CPU autoscaler keeping 2+ replicas;
- every subcommand, flag and environment variable is one the binary has (its --help), the router
  starts with the ConfigMap's router.yaml and the Deployment's environment, and the subgraph
  environment is accepted by `shippy migrate` (on a throwaway SQLite file);
- compose.yaml describes the same topology: the same Shippy services with the same commands, ports and
  environment names, PostgreSQL/Redis/the OTLP collector reachable on compose's ports, the gateway
  replaced by the Ingress;
- the network policies deny by default, let only the router (and the monitoring namespace) reach the
  subgraphs, and open PostgreSQL and Redis to the Shippy components that use them and nobody else.

The kustomize subset understood here (namespace, resources, configMapGenerator, images) is checked
too: any other key is an error, so this build cannot silently differ from `kubectl apply -k`. When
`kubectl` is installed, its own `kubectl kustomize` output is compared with ours.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# libyaml's parser when PyYAML has it (the wheels do): the pure-Python one is most of the run time.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Kubernetes versions validated against: the oldest still common on managed services and a current one.
VERSIONS = ["1.30.0", "1.35.0"]
IMAGE = "shippy"
SUBGRAPHS = {"user": 4001, "vessel": 4002, "consignment": 4003, "log": 4004}
ROUTER_PORT = 4000
# Variables the containers may set that `shippy --help` does not list, and why.
EXTRA_ENV = {
    "RUST_LOG": "the log filter (tracing's EnvFilter), README Configuration",
    "SHIPPY_HEALTH_PORT": "the Dockerfile's HEALTHCHECK port, kept as in compose.yaml",
}
# Values that differ on purpose between compose.yaml (one developer machine) and the cluster.
DIFFERENT_VALUES = {
    "SHIPPY_OTLP_ENDPOINT": "compose has Jaeger; the cluster a collector in namespace observability",
    "SHIPPY_TRACE_SAMPLING": "compose records every trace; the cluster a share",
}
SECRETISH = re.compile(r"(DATABASE_URL|REDIS_URL|REDIS__URL|SECRET|PASSWORD|TOKEN|PRIVATE_KEY|SIGNING_KEY|SIGNING__KEY)$")
KUSTOMIZE_KEYS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images"}


class Problems(list):
    summary = ""

    def add(self, where: str, what: str) -> None:
        self.append(f"{where}: {what}")


# ---------------------------------------------------------------------------------------------------
# Building


def load_yaml_docs(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.load_all(f, Loader=LOADER) if d is not None]


def build(directory: Path, problems: Problems, used: set[Path]) -> list[dict]:
    """Builds one kustomization directory the way `kubectl kustomize` does, for the keys we use."""
    kfile = directory / "kustomization.yaml"
    used.add(kfile.resolve())
    spec = load_yaml_docs(kfile)[0]
    for key in set(spec) - KUSTOMIZE_KEYS:
        problems.add(str(kfile), f"kustomize key `{key}` is not understood by check.py")
    objects: list[dict] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += build(path, problems, used)
        elif path.is_file():
            used.add(path)
            objects += load_yaml_docs(path)
        else:
            problems.add(str(kfile), f"resource {entry} does not exist")
    for generator in spec.get("configMapGenerator", []):
        options = generator.get("options", {})
        if not options.get("disableNameSuffixHash"):
            problems.add(str(kfile), f"configMapGenerator {generator['name']}: a hash suffix breaks hot reload")
        data = {}
        for file in generator.get("files", []):
            path = (directory / file).resolve()
            used.add(path)
            data[path.name] = path.read_text()
        for key in set(generator) - {"name", "files", "options"}:
            problems.add(str(kfile), f"configMapGenerator key `{key}` is not understood by check.py")
        metadata = {"name": generator["name"]}
        if options.get("labels"):
            metadata["labels"] = dict(options["labels"])
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    namespace = spec.get("namespace")
    for obj in objects:
        if namespace and obj.get("kind") != "Namespace":
            obj.setdefault("metadata", {})["namespace"] = namespace
    for image in spec.get("images", []):
        for container in containers_of_all(objects):
            name, _, _ = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return objects


def containers_of_all(objects: list[dict]) -> list[dict]:
    return [c for obj in objects for c in pod_spec(obj).get("containers", [])]


def image_name(image: str) -> str:
    """`shippy` for `shippy:latest` and `registry.example.com:5000/team/shippy:1.0`."""
    return image.rsplit("/", 1)[-1].partition(":")[0].partition("@")[0]


def pod_spec(obj: dict) -> dict:
    if obj.get("kind") in ("Deployment", "Job"):
        return obj["spec"]["template"]["spec"]
    return {}


def key_of(obj: dict) -> tuple[str, str]:
    return (obj["kind"], obj["metadata"]["name"])


def compare_with_kubectl(directory: Path, ours: list[dict], problems: Problems) -> None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print(f"note: kubectl not installed, {directory} built by check.py only")
        return
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True)
    if out.returncode != 0:
        problems.add(str(directory), f"kubectl kustomize failed: {out.stderr.strip()}")
        return
    theirs = {key_of(o): o for o in yaml.load_all(out.stdout, Loader=LOADER) if o}
    mine = {key_of(o): o for o in ours}
    if set(theirs) != set(mine):
        problems.add(str(directory), f"kubectl kustomize builds {sorted(theirs)}, check.py {sorted(mine)}")
    for key in set(theirs) & set(mine):
        if theirs[key] != mine[key]:
            problems.add(str(directory), f"{key}: kubectl kustomize builds it differently from check.py")


# ---------------------------------------------------------------------------------------------------
# Schemas and secrets


def check_schemas(objects: list[dict], problems: Problems) -> None:
    import kubernetes_validate

    for version in VERSIONS:
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                problems.add(f"{key_of(obj)}", f"invalid for Kubernetes {version}: {error.message}")
            except Exception as error:  # schema not found and the like: a failure all the same
                problems.add(f"{key_of(obj)}", f"cannot validate for Kubernetes {version}: {error}")


def check_no_secret_values(root: Path, objects: list[dict], problems: Problems) -> None:
    for path in sorted(root.rglob("*.y*ml")):
        for doc in load_yaml_docs(path):
            if isinstance(doc, dict) and doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
                problems.add(str(path), f"Secret {doc['metadata']['name']} has values in the repository")
            if isinstance(doc, dict) and doc.get("kind") == "Kustomization" and doc.get("secretGenerator"):
                problems.add(str(path), "secretGenerator: create the Secrets with kubectl instead")
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            for key in obj.get("data", {}):
                if SECRETISH.search(key):
                    problems.add(str(key_of(obj)), f"{key} is secret: put it in a Secret")
        for container in pod_spec(obj).get("containers", []):
            for env in container.get("env", []):
                if SECRETISH.search(env["name"]) and "secretKeyRef" not in env.get("valueFrom", {}):
                    problems.add(str(key_of(obj)), f"{env['name']} must come from a secretKeyRef")


# ---------------------------------------------------------------------------------------------------
# Workloads


def flag_value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def listen_port(args: list[str]) -> int | None:
    value = flag_value(args, "--listen")
    return int(value.rsplit(":", 1)[1]) if value else None


def container_env(container: dict, objects: list[dict]) -> dict[str, dict]:
    """Variable name -> its env entry, envFrom ConfigMap keys included (as literal values)."""
    env: dict[str, dict] = {}
    for source in container.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        config = find(objects, "ConfigMap", name)
        if config is None:
            env[f"<envFrom {source}>"] = {}
            continue
        for key, value in config.get("data", {}).items():
            env[key] = {"name": key, "value": value}
    for entry in container.get("env", []):
        env[entry["name"]] = entry
    return env


def find(objects: list[dict], kind: str, name: str | None) -> dict | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def check_security(obj: dict, problems: Problems) -> None:
    where = str(key_of(obj))
    spec = pod_spec(obj)
    pod = spec.get("securityContext", {})
    if pod.get("runAsNonRoot") is not True or pod.get("runAsUser", 0) == 0:
        problems.add(where, "pod must set runAsNonRoot and a non-zero runAsUser")
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.add(where, "pod seccompProfile must be RuntimeDefault")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        cwhere = f"{where} container {container['name']}"
        sc = container.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.add(cwhere, "readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.add(cwhere, "allowPrivilegeEscalation must be false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.add(cwhere, "capabilities must drop ALL")
        if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0 or sc.get("privileged"):
            problems.add(cwhere, "must not run as root or privileged")
        if image_name(container.get("image", "")) != IMAGE:
            problems.add(cwhere, f"image {container.get('image')} is not {IMAGE} (the Dockerfile's)")
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(part, {}):
                    problems.add(cwhere, f"resources.{part}.{resource} is missing")
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None:
                problems.add(cwhere, f"mount {mount['name']} has no volume")
                continue
            if "subPath" in mount or "subPathExpr" in mount:
                problems.add(cwhere, f"mount {mount['name']} uses subPath: updates would not reach it")
            if not mount.get("readOnly") and "emptyDir" not in volume:
                problems.add(cwhere, f"writable mount {mount['name']} must be an emptyDir")


def check_deployment(obj: dict, objects: list[dict], problems: Problems) -> None:
    where = str(key_of(obj))
    name = obj["metadata"]["name"]
    container = pod_spec(obj)["containers"][0]
    args = container.get("args", [])
    port = listen_port(args)
    expected = ROUTER_PORT if name == "router" else SUBGRAPHS.get(name)
    if expected is None:
        problems.add(where, "not a Shippy service (router or one of the four subgraphs)")
        return
    if port != expected:
        problems.add(where, f"--listen port {port}, expected {expected}")
    if not (args[0] == "router" or args[:2] == ["subgraph", name]):
        problems.add(where, f"runs {args[:2]}, expected `subgraph {name}` or `router`")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if ports.get("http") != port:
        problems.add(where, f"containerPort http is {ports.get('http')}, the process listens on {port}")
    if container_env(container, objects).get("SHIPPY_HEALTH_PORT", {}).get("value") != str(port):
        problems.add(where, "SHIPPY_HEALTH_PORT must be the listen port")
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path:
            problems.add(where, f"{probe} must GET {path}, has {get.get('path')}")
        if get.get("port") not in ("http", port):
            problems.add(where, f"{probe} port {get.get('port')} is not the listen port {port}")
    service = find(objects, "Service", name)
    labels = obj["spec"]["template"]["metadata"]["labels"]
    if service is None:
        problems.add(where, "no Service of the same name")
    else:
        selector = service["spec"].get("selector", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.add(where, "its Service does not select its pods")
        sports = service["spec"]["ports"]
        if [p["port"] for p in sports] != [port] or sports[0].get("targetPort") not in ("http", port):
            problems.add(where, f"its Service must expose {port} -> http")
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"
            and all(labels.get(k) == v for k, v in o["spec"]["selector"]["matchLabels"].items())]
    if not pdbs:
        problems.add(where, "no PodDisruptionBudget selects its pods")
    if name == "router":
        if "replicas" in obj["spec"]:
            problems.add(where, "the autoscaler owns the router's replicas: every apply would reset them")
        hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"
                and o["spec"]["scaleTargetRef"]["name"] == name]
        if not hpas or hpas[0]["apiVersion"] != "autoscaling/v2" or hpas[0]["spec"].get("minReplicas", 1) < 2 \
                or not any(m.get("resource", {}).get("name") == "cpu" for m in hpas[0]["spec"].get("metrics", [])):
            problems.add(where, "needs an autoscaling/v2 HorizontalPodAutoscaler on CPU with minReplicas 2+")
        check_router_config_mount(obj, container, objects, problems)


def check_router_config_mount(obj: dict, container: dict, objects: list[dict], problems: Problems) -> None:
    where = str(key_of(obj))
    config = flag_value(container.get("args", []), "--config")
    if not config:
        problems.add(where, "the router gets no --config file")
        return
    directory, file = config.rsplit("/", 1)
    volumes = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == directory), None)
    name = volumes.get(mount["name"], {}).get("configMap", {}).get("name") if mount else None
    configmap = find(objects, "ConfigMap", name)
    if configmap is None or file not in configmap.get("data", {}):
        problems.add(where, f"--config {config} is not a file of a ConfigMap mounted at {directory}")


def check_ingress(objects: list[dict], problems: Problems) -> None:
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    backends = [p["backend"]["service"] for o in ingresses for r in o["spec"].get("rules", [])
                for p in r["http"]["paths"]]
    if not backends or any(b["name"] != "router" or b["port"].get("name", b["port"].get("number")) not in
                           ("http", ROUTER_PORT) for b in backends):
        problems.add("Ingress", "an Ingress must send every path to the router Service")


# ---------------------------------------------------------------------------------------------------
# Network policies


def selects(selector: dict, labels: dict) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present = labels.get(expr["key"])
        if expr["operator"] == "In" and present not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and present in expr["values"]:
            return False
    return True


def check_network_policies(objects: list[dict], problems: Problems) -> None:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    if not any(p["spec"]["podSelector"] == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies):
        problems.add("NetworkPolicy", "no default-deny policy for ingress and egress")
    components = {"router": {"app.kubernetes.io/component": "router"},
                  "subgraph": {"app.kubernetes.io/component": "subgraph"},
                  "migration": {"app.kubernetes.io/component": "migration"}}
    for obj in objects:
        spec = pod_spec(obj)
        if spec:
            labels = obj["spec"]["template"]["metadata"]["labels"]
            component = labels.get("app.kubernetes.io/component")
            if component not in components or labels.get("app.kubernetes.io/part-of") != "shippy":
                problems.add(str(key_of(obj)), "pods need app.kubernetes.io/component and part-of=shippy labels")

    def egress_ports(labels: dict) -> set[int]:
        return {port["port"] for p in policies if selects(p["spec"]["podSelector"], labels)
                for rule in p["spec"].get("egress", []) for port in rule.get("ports", [])}

    needs = {"router": {6379, *SUBGRAPHS.values()}, "subgraph": {5432, 6379}, "migration": {5432}}
    for component, labels in components.items():
        ports = egress_ports(labels)
        if not needs[component] <= ports:
            problems.add("NetworkPolicy", f"{component} pods cannot reach ports {sorted(needs[component] - ports)}")
        for port, allowed in ((5432, {"subgraph", "migration"}), (6379, {"subgraph", "router"})):
            if port in ports and component not in allowed:
                problems.add("NetworkPolicy", f"{component} pods may reach port {port}")
    subgraph_labels = components["subgraph"]
    for policy in policies:
        if not selects(policy["spec"]["podSelector"], subgraph_labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", [{}]):
                router_pods = peer.get("podSelector") == {"matchLabels": components["router"]} \
                    and "namespaceSelector" not in peer
                monitoring = peer.get("namespaceSelector") == {
                    "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}} and "podSelector" not in peer
                if not (router_pods or monitoring):
                    problems.add(str(key_of(policy)), f"lets {peer or 'anyone'} reach the subgraphs")


# ---------------------------------------------------------------------------------------------------
# The binary


def help_of(shippy: str, subcommand: list[str]) -> tuple[set[str], set[str], str]:
    out = subprocess.run([shippy, *subcommand, "--help"], capture_output=True, text=True, check=True).stdout
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out))
    env = set(re.findall(r"\[env: ([A-Z0-9_]+)[=\]]", out))
    return flags, env, out


def check_against_binary(shippy: str, repo: Path, objects: list[dict], problems: Problems) -> None:
    helps = {sub: help_of(shippy, [sub]) for sub in ("subgraph", "router", "migrate")}
    for obj in objects:
        for container in pod_spec(obj).get("containers", []):
            where = f"{key_of(obj)} container {container['name']}"
            args = container.get("args", [])
            if not args or args[0] not in helps:
                problems.add(where, f"args {args} do not start with subgraph, router or migrate")
                continue
            flags, env_names, text = helps[args[0]]
            for arg in args[1:]:
                if arg.startswith("--") and arg not in flags:
                    problems.add(where, f"`shippy {args[0]}` has no flag {arg}")
            if args[0] in ("subgraph", "migrate"):
                possible = re.search(r"\[possible values: ([^\]]+)\]", text)
                if not possible or len(args) < 2 or args[1] not in possible.group(1).split(", "):
                    problems.add(where, f"`shippy {args[0]}` does not know the subgraph {args[1:2]}")
            for name in container_env(container, objects):
                router_key = args[0] == "router" and name.startswith("SHIPPY_ROUTER__")
                if name not in env_names and name not in EXTRA_ENV and not router_key:
                    problems.add(where, f"`shippy {args[0]}` reads no variable {name}")
    check_router_starts(shippy, repo, objects, problems)
    check_subgraph_env_loads(shippy, objects, problems)


def literal_env(container: dict, objects: list[dict], secrets: dict[str, str]) -> dict[str, str]:
    """The container's environment with each secret replaced by a test value of the right shape."""
    env = {}
    for name, entry in container_env(container, objects).items():
        if "value" in entry:
            env[name] = entry["value"]
        else:
            ref = entry.get("valueFrom", {}).get("secretKeyRef", {})
            env[name] = secrets[ref.get("name", "")]
    return env


def test_secrets(database_url: str) -> dict[str, str]:
    redis = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
    return {"shippy-jwt": "check-py-test-secret-not-for-use-0123456789abcdef", "shippy-redis": redis,
            "shippy-database": database_url,
            "shippy-router-signing": "check-py-test-signing-key-not-for-use-0123456789"}


def base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep}


def image_file(repo: Path, path_in_image: str) -> Path | None:
    """The repository file the Dockerfile copies to `path_in_image`."""
    for line in (repo / "Dockerfile").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not parts[1].startswith("--") and parts[-1] == path_in_image:
            return repo / parts[1]
    return None


def check_router_starts(shippy: str, repo: Path, objects: list[dict], problems: Problems) -> None:
    """Starts the router as the Deployment would (its args, env and config file) and waits for it to serve."""
    router = find(objects, "Deployment", "router")
    if router is None:
        problems.add("Deployment router", "missing")
        return
    container = pod_spec(router)["containers"][0]
    args = list(container["args"])
    config = flag_value(args, "--config")
    configmap = next((o for o in objects if o["kind"] == "ConfigMap" and config and
                      config.rsplit("/", 1)[1] in o.get("data", {})), None)
    if config is None or configmap is None:
        return  # reported by check_router_config_mount
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / config.rsplit("/", 1)[1]
        file.write_text(configmap["data"][file.name])
        args[args.index("--config") + 1] = str(file)
        supergraph = image_file(repo, flag_value(args, "--supergraph") or "")
        if supergraph is None:
            problems.add("Deployment router", f"the image has no {flag_value(args, '--supergraph')} (Dockerfile)")
            return
        args[args.index("--supergraph") + 1] = str(supergraph)
        args[args.index("--listen") + 1] = "127.0.0.1:0"
        env = {**base_env(), **literal_env(container, objects, test_secrets("unused"))}
        started = run_until_line(shippy, args, env, "router ")
        if started is not True:
            problems.add("Deployment router", f"`shippy {' '.join(container['args'])}` did not start: {started}")


def check_subgraph_env_loads(shippy: str, objects: list[dict], problems: Problems) -> None:
    """Each subgraph's environment, loaded by `shippy migrate <name>` against a throwaway SQLite file."""
    for name in SUBGRAPHS:
        deployment = find(objects, "Deployment", name)
        if deployment is None:
            problems.add(f"Deployment {name}", "missing")
            continue
        container = pod_spec(deployment)["containers"][0]
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite://{tmp}/{name}.db?mode=rwc"
            env = {**base_env(), **literal_env(container, objects, test_secrets(url))}
            out = subprocess.run([shippy, "migrate", name], env=env, capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                problems.add(f"Deployment {name}", f"its environment is refused: {out.stderr.strip()[-400:]}")


def run_until_line(shippy: str, args: list[str], env: dict[str, str], prefix: str) -> bool | str:
    with subprocess.Popen([shippy, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        return wait_for_line(process, prefix)


def wait_for_line(process: subprocess.Popen, prefix: str) -> bool | str:
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while (remaining := deadline - time.monotonic()) > 0:
            # Never block past the deadline on a process that prints nothing.
            if not select.select([process.stdout], [], [], remaining)[0]:
                continue
            line = process.stdout.readline()
            if line.startswith(prefix):
                return True
            if not line and process.poll() is not None:
                assert process.stderr is not None
                return process.stderr.read().strip()[-400:] or f"exit status {process.returncode}"
        return "no `router http://...` line within 60s"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


# ---------------------------------------------------------------------------------------------------
# compose.yaml


def check_compose(compose_path: Path, objects: list[dict], problems: Problems) -> None:
    compose = yaml.load(compose_path.read_text(), Loader=LOADER)
    services = compose["services"]
    shippy = {n: s for n, s in services.items() if image_name(str(s.get("image", ""))) == IMAGE}
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    routers = [n for n, s in shippy.items() if s["command"][0] == "router"]
    names = {("router" if n in routers else n) for n in shippy}
    if names != set(deployments):
        problems.add("compose.yaml", f"Shippy services {sorted(names)}, Deployments {sorted(deployments)}")
    for service_name, service in shippy.items():
        name = "router" if service_name in routers else service_name
        deployment = deployments.get(name)
        if deployment is None:
            continue
        container = pod_spec(deployment)["containers"][0]
        args = container["args"]
        extra = [a for a in args if a not in service["command"]]
        if [a for a in args if a in service["command"]] != service["command"] or \
                extra not in ([], ["--config", flag_value(args, "--config")]):
            problems.add(f"compose.yaml {service_name}", f"command {service['command']}, Deployment args {args}")
        kenv = container_env(container, objects)
        cenv = {k: str(v) for k, v in service.get("environment", {}).items()}
        if set(cenv) != set(kenv):
            problems.add(f"compose.yaml {service_name}",
                         f"environment differs: only compose {sorted(set(cenv) - set(kenv))}, "
                         f"only Kubernetes {sorted(set(kenv) - set(cenv))}")
        for key, value in cenv.items():
            entry = kenv.get(key, {})
            if "value" in entry and "${" not in value and key not in DIFFERENT_VALUES and entry["value"] != value:
                problems.add(f"compose.yaml {service_name}", f"{key} is {value!r} there, {entry['value']!r} here")
    hpa = find(objects, "HorizontalPodAutoscaler", "router")
    if hpa is None or hpa["spec"].get("minReplicas", 1) < len(routers):
        problems.add("compose.yaml", f"{len(routers)} routers there, a lower minReplicas here")
    # The services Kubernetes does not run: reached on compose's ports.
    policy_ports = {port["port"] for o in objects if o["kind"] == "NetworkPolicy"
                    for rule in o["spec"].get("egress", []) for port in rule.get("ports", [])}
    for external in ("postgres", "redis"):
        mapped = services.get(external, {}).get("ports", [])
        port = int(str(mapped[0]).rsplit(":", 1)[1]) if mapped else None
        if port not in policy_ports:
            problems.add(f"compose.yaml {external}", f"port {port} is not opened by any egress policy")
    endpoint = str(services[next(iter(shippy))]["environment"].get("SHIPPY_OTLP_ENDPOINT", ""))
    ours = find(objects, "ConfigMap", "shippy-settings")
    ours_endpoint = (ours or {}).get("data", {}).get("SHIPPY_OTLP_ENDPOINT", "")
    for label, value in (("compose", endpoint), ("shippy-settings", ours_endpoint)):
        port = re.search(r":(\d+)", value.split("//", 1)[-1])
        if not port or int(port.group(1)) not in policy_ports:
            problems.add("OTLP", f"{label} endpoint {value!r} has no port opened by an egress policy")
    gateway_port = services.get("gateway", {}).get("ports", ["::0"])[0].rsplit(":", 1)[1]
    if int(gateway_port) != ROUTER_PORT:
        problems.add("compose.yaml gateway", f"publishes {gateway_port}, the router Service is {ROUTER_PORT}")


# ---------------------------------------------------------------------------------------------------


def check(root: Path, compose: Path, shippy: str | None) -> Problems:
    """Every problem with the manifests under `root`; without `shippy`, the checks against the binary
    are skipped (the tests of check.py use that; CI always passes the binary)."""
    problems = Problems()
    used: set[Path] = set()
    builds = {}
    for part in (".", "namespace", "migrate"):
        directory = (root / part).resolve()
        builds[part] = build(directory, problems, used)
        compare_with_kubectl(directory, copy.deepcopy(builds[part]), problems)
    for path in sorted(root.rglob("*.y*ml")):
        if path.resolve() not in used:
            problems.add(str(path), "not part of any kustomization")
    everything = {key_of(o): o for objs in builds.values() for o in objs}
    objects = list(everything.values())
    check_schemas(objects, problems)
    if problems:
        # The checks below read the objects' fields; they need objects of the right shape first.
        problems.summary = f"{len(objects)} objects, stopped at the schema and kustomize problems"
        return problems
    check_no_secret_values(root, objects, problems)
    for obj in objects:
        if pod_spec(obj):
            check_security(obj, problems)
        if obj["kind"] == "Deployment":
            check_deployment(obj, objects, problems)
    jobs = {o["metadata"]["name"] for o in builds["migrate"] if o["kind"] == "Job"}
    for name in SUBGRAPHS:
        job = find(objects, "Job", f"migrate-{name}")
        if f"migrate-{name}" not in jobs or pod_spec(job)["containers"][0]["args"] != ["migrate", name]:
            problems.add(f"Job migrate-{name}", f"missing, or not `shippy migrate {name}`")
    check_ingress(objects, problems)
    check_network_policies(objects, problems)
    if shippy:
        check_against_binary(shippy, compose.parent, objects, problems)
    check_compose(compose, objects, problems)
    problems.summary = (f"{len(objects)} objects ({', '.join(sorted({o['kind'] for o in objects}))}), "
                        f"Kubernetes {' and '.join(VERSIONS)}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("deploy/kubernetes"))
    parser.add_argument("--compose", type=Path, default=Path("compose.yaml"))
    parser.add_argument("--shippy", required=True, help="the shippy binary whose flags the manifests must use")
    options = parser.parse_args()
    problems = check(options.root, options.compose, options.shippy)
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{problems.summary}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
