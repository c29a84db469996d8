"""Tests of check.py: the real manifests pass, and each kind of mistake in a copy of them fails.

    SHIPPY_BIN=target/debug/shippy python deploy/kubernetes/test_check.py

Run by .ci/kubernetes. Each test copies deploy/kubernetes, compose.yaml, the Dockerfile and the supergraph
into a temporary repository, breaks one thing, and expects the problem naming it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest
from pathlib import Path

import check

REPO = Path(__file__).resolve().parents[2]


class CheckTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.repo = Path(self.tmp.name)
        shutil.copytree(REPO / "deploy/kubernetes", self.repo / "deploy/kubernetes",
                        ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.txt"))
        (self.repo / "schema").mkdir()
        for file in ("compose.yaml", "Dockerfile", "schema/supergraph.graphql"):
            shutil.copy(REPO / file, self.repo / file)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def edit(self, file: str, old: str, new: str, count: int = 1) -> None:
        path = self.repo / file
        text = path.read_text()
        self.assertIn(old, text, f"{file} no longer contains {old!r}: update the test")
        path.write_text(text.replace(old, new, count))

    def problems(self, shippy: str | None = None) -> list[str]:
        return list(check.check(self.repo / "deploy/kubernetes", self.repo / "compose.yaml", shippy))

    def assert_fails(self, expected: str, shippy: str | None = None) -> None:
        problems = self.problems(shippy)
        self.assertTrue(any(expected in p for p in problems), f"expected {expected!r} in {problems}")

    def test_the_manifests_pass(self) -> None:
        self.assertEqual(self.problems(shippy_bin()), [])

    def test_an_image_from_a_registry_passes(self) -> None:
        for file in ("deploy/kubernetes/kustomization.yaml", "deploy/kubernetes/migrate/kustomization.yaml"):
            self.edit(file, "newTag: latest", "newName: registry.example.com:5000/team/shippy\n    newTag: 1.0.0")
        self.assertEqual(self.problems(), [])

    def test_another_image_fails(self) -> None:
        self.edit("deploy/kubernetes/subgraph-user.yaml", "image: shippy", "image: nginx")
        self.assert_fails("image nginx is not shippy")

    def test_schema_violations_fail(self) -> None:
        self.edit("deploy/kubernetes/subgraph-user.yaml", "replicas: 2", "replicas: two")
        self.assert_fails("invalid for Kubernetes 1.30.0")

    def test_router_replicas_fighting_the_autoscaler_fail(self) -> None:
        self.edit("deploy/kubernetes/router.yaml", "  revisionHistoryLimit: 5", "  replicas: 2\n  revisionHistoryLimit: 5")
        self.assert_fails("the autoscaler owns the router's replicas")

    def test_fewer_routers_than_compose_fail(self) -> None:
        self.edit("deploy/kubernetes/router.yaml", "minReplicas: 2", "minReplicas: 1")
        self.assert_fails("2 routers there")

    def test_unknown_fields_fail(self) -> None:
        self.edit("deploy/kubernetes/subgraph-log.yaml", "revisionHistoryLimit", "revisionHistoryLimits")
        self.assert_fails("invalid for Kubernetes")

    def test_a_file_outside_every_kustomization_fails(self) -> None:
        (self.repo / "deploy/kubernetes/extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
        self.assert_fails("not part of any kustomization")

    def test_a_hash_suffix_on_the_router_config_fails(self) -> None:
        self.edit("deploy/kubernetes/kustomization.yaml", "disableNameSuffixHash: true", "disableNameSuffixHash: false")
        self.assert_fails("hash suffix")

    def test_secret_values_fail(self) -> None:
        (self.repo / "deploy/kubernetes/secret.yaml").write_text(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shippy-jwt\nstringData:\n  secret: hunter2\n")
        self.edit("deploy/kubernetes/kustomization.yaml", "  - ingress.yaml", "  - ingress.yaml\n  - secret.yaml")
        self.assert_fails("has values in the repository")

    def test_a_literal_database_url_fails(self) -> None:
        self.edit("deploy/kubernetes/subgraph-user.yaml", """            - name: DATABASE_URL
              valueFrom:
                secretKeyRef: {name: shippy-database, key: user}""", """            - name: DATABASE_URL
              value: postgres://shippy:password@db/user""")
        self.assert_fails("DATABASE_URL must come from a secretKeyRef")

    def test_a_wrong_probe_path_fails(self) -> None:
        self.edit("deploy/kubernetes/subgraph-vessel.yaml", "path: /ready", "path: /readyz")
        self.assert_fails("readinessProbe must GET /ready")

    def test_a_probe_on_another_port_fails(self) -> None:
        self.edit("deploy/kubernetes/router.yaml", "httpGet: {path: /health, port: http}\n            periodSeconds: 10",
                  "httpGet: {path: /health, port: 9000}\n            periodSeconds: 10")
        self.assert_fails("livenessProbe port 9000")

    def test_a_listen_port_other_than_compose_fails(self) -> None:
        self.edit("deploy/kubernetes/subgraph-consignment.yaml", "0.0.0.0:4003", "0.0.0.0:4013")
        self.assert_fails("--listen port 4013, expected 4003")

    def test_a_writable_root_filesystem_fails(self) -> None:
        self.edit("deploy/kubernetes/router.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
        self.assert_fails("readOnlyRootFilesystem must be true")

    def test_missing_limits_fail(self) -> None:
        self.edit("deploy/kubernetes/migrate/jobs.yaml", "              memory: 256Mi\n", "")
        self.assert_fails("resources.limits.memory is missing")

    def test_a_subpath_config_mount_fails(self) -> None:
        self.edit("deploy/kubernetes/router.yaml", "mountPath: /etc/shippy/router\n",
                  "mountPath: /etc/shippy/router\n              subPath: router.yaml\n")
        self.assert_fails("uses subPath")

    def test_a_missing_disruption_budget_fails(self) -> None:
        path = self.repo / "deploy/kubernetes/subgraph-log.yaml"
        path.write_text(path.read_text().rsplit("---", 1)[0])
        self.assert_fails("no PodDisruptionBudget")

    def test_subgraphs_open_to_anyone_fail(self) -> None:
        self.edit("deploy/kubernetes/namespace/network-policies.yaml", """        - podSelector:
            matchLabels:
              app.kubernetes.io/component: router
        - namespaceSelector:""", """        - namespaceSelector: {}
        - namespaceSelector:""")
        self.assert_fails("reach the subgraphs")

    def test_the_router_reaching_postgres_fails(self) -> None:
        self.edit("deploy/kubernetes/namespace/network-policies.yaml", "values: [subgraph, migration]",
                  "values: [subgraph, migration, router]")
        self.assert_fails("router pods may reach port 5432")

    def test_compose_environment_drift_fails(self) -> None:
        self.edit("compose.yaml", "      SHIPPY_HEALTH_PORT: \"4004\"\n",
                  "      SHIPPY_HEALTH_PORT: \"4004\"\n      SHIPPY_CLAIM_IDLE: 10s\n")
        self.assert_fails("only compose ['SHIPPY_CLAIM_IDLE']")

    def test_compose_value_drift_fails(self) -> None:
        self.edit("compose.yaml", "SHIPPY_ROUTER__SUBGRAPHS__LOG__URL: http://log:4004/graphql",
                  "SHIPPY_ROUTER__SUBGRAPHS__LOG__URL: http://log:4005/graphql")
        self.assert_fails("SHIPPY_ROUTER__SUBGRAPHS__LOG__URL is 'http://log:4005/graphql' there")

    def test_a_compose_service_missing_here_fails(self) -> None:
        self.edit("compose.yaml", "  router-1: &router\n", "  audit:\n    <<: *shippy\n    command: [\"subgraph\", "
                  "\"audit\"]\n\n  router-1: &router\n")
        self.assert_fails("Shippy services")

    def test_an_unknown_flag_fails(self) -> None:
        self.edit("deploy/kubernetes/subgraph-user.yaml", "--listen,", "--listen-on,")
        self.assert_fails("has no flag --listen-on", shippy_bin())

    def test_an_unknown_variable_fails(self) -> None:
        self.edit("deploy/kubernetes/settings.yaml", "SHIPPY_LOG_FORMAT: json", "SHIPPY_LOGFORMAT: json")
        self.assert_fails("reads no variable SHIPPY_LOGFORMAT", shippy_bin())

    def test_a_value_the_binary_refuses_fails(self) -> None:
        self.edit("deploy/kubernetes/settings.yaml", "SHIPPY_LOG_FORMAT: json", "SHIPPY_LOG_FORMAT: yaml")
        self.assert_fails("its environment is refused", shippy_bin())

    def test_a_router_config_the_router_refuses_fails(self) -> None:
        self.edit("deploy/kubernetes/config/router.yaml", "max_depth: 64", "max_dept: 64")
        self.assert_fails("did not start", shippy_bin())

    def test_a_supergraph_path_not_in_the_image_fails(self) -> None:
        self.edit("deploy/kubernetes/router.yaml", "- /app/schema/supergraph.graphql", "- /schema/supergraph.graphql")
        self.assert_fails("the image has no /schema/supergraph.graphql", shippy_bin())


def shippy_bin() -> str:
    path = os.environ.get("SHIPPY_BIN")
    if not path:
        raise AssertionError("set SHIPPY_BIN to the shippy binary (cargo build --bin shippy)")
    return path


if __name__ == "__main__":
    unittest.main()
