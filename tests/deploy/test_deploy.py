"""The container image and Kubernetes manifests in deploy/ are valid and agree
with the exporter: its flags, port, endpoints, config file and alert rules."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES = DEPLOY / "kubernetes"
RULES = REPO / "alerts" / "iam-credentials.rules.yml"
README = REPO / "README.md"
BINARY = REPO / "target" / "debug" / "iam-credentials-exporter"

NAMESPACE = "iam-credentials-exporter"
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
# An older Kubernetes release, and the newest that the schemas cover.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]


# --- what the exporter says about itself ---------------------------------------


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def readme_flags() -> dict[str, str]:
    """Flag name to default, from the README's flags table."""
    rows = re.findall(
        r"^\| `(--[\w.-]+)` \| `[A-Z_]+` \| ([^|]+) \|", readme_section("Flags"), re.M
    )
    return {flag: default.strip().strip("`") for flag, default in rows}


def help_text() -> str:
    return subprocess.run([BINARY, "--help"], capture_output=True, text=True, check=True).stdout


def known_flags() -> set[str]:
    """The flags the exporter accepts: the built binary's, else the README's."""
    if not BINARY.exists():
        return set(readme_flags())
    return set(re.findall(r"^\s+(?:-\w, )?(--[\w.-]+)", help_text(), re.M))


def default_port() -> int:
    """The port of the default listen address: the binary's, else the README's."""
    address = readme_flags()["--web.listen-address"]
    if BINARY.exists():
        default = re.search(r"--web\.listen-address .*?\[default: ([^\]]+)\]", help_text(), re.S)
        address = default.group(1)
    return int(address.rsplit(":", 1)[1])


def cargo_version() -> str:
    return tomllib.loads((REPO / "Cargo.toml").read_text(encoding="utf-8"))["package"]["version"]


def key_paths(node: Any, prefix: str = "") -> set[str]:
    """Every mapping key of a YAML document as a dotted path; list items are `[]`."""
    paths: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths |= {path} | key_paths(value, path)
    elif isinstance(node, list):
        for item in node:
            paths |= key_paths(item, f"{prefix}[]")
    return paths


# --- the manifests ----------------------------------------------------------------


def load_manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in MANIFESTS
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc is not None
    ]


def the(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in load_manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    containers = the("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def flag_values(args: list[str]) -> dict[str, str]:
    values = {}
    for arg in args:
        flag, _, value = arg.partition("=")
        values[flag] = value
    return values


def volume_of(path: str) -> dict[str, Any]:
    """The pod volume mounted at the directory that holds `path`."""
    pod = the("Deployment")["spec"]["template"]["spec"]
    mounts = [
        m for m in container()["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert len(mounts) == 1, f"{path} is on {len(mounts)} volume mounts"
    assert "subPath" not in mounts[0], "a subPath mount never sees updates"
    return next(v for v in pod["volumes"] if v["name"] == mounts[0]["name"])


def configmap_config() -> tuple[str, str]:
    """The config file's name in the ConfigMap and its text."""
    config_path = flag_values(container()["args"])["--config.file"]
    volume = volume_of(config_path)
    assert volume["configMap"]["name"] == the("ConfigMap")["metadata"]["name"]
    key = Path(config_path).name
    return key, the("ConfigMap")["data"][key]


def load_generator():
    path = KUBERNETES / "generate_prometheusrule.py"
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Dockerfile -------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def dockerignored(path: str) -> bool:
    """Whether .dockerignore leaves `path` (relative to the root) out of the context."""
    ignored = False
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(prefix, pattern) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_hadolint_finds_nothing_in_the_dockerfile():
    venv_bin = str(Path(sys.executable).parent)
    hadolint = shutil.which("hadolint", path=venv_bin) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -r tests/harness/requirements.txt"

    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_image_builds_on_pinned_bases_and_runs_the_exporter_as_non_root():
    instructions = dockerfile_instructions()
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    runtime = instructions[max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM") :]
    runtime_values = {ins: args for ins, args in runtime}

    assert froms == ["rust:1.95-bookworm AS builder", "gcr.io/distroless/cc-debian12:nonroot"]
    assert any(
        "cargo build --release --locked" in args for ins, args in instructions if ins == "RUN"
    )
    assert runtime_values["USER"] == "65532:65532"
    assert runtime_values["EXPOSE"] == str(default_port())
    assert json.loads(runtime_values["ENTRYPOINT"]) == ["/usr/local/bin/iam-credentials-exporter"]
    assert (
        runtime_values["ENV"]
        == "IAM_EXPORTER_STATE_FILE=/var/lib/iam-credentials-exporter/state.json"
    )
    assert json.loads(runtime_values["VOLUME"]) == ["/var/lib/iam-credentials-exporter"]


def test_the_image_version_label_defaults_to_the_crate_version():
    args = [args for ins, args in dockerfile_instructions() if ins == "ARG"]

    assert f"VERSION={cargo_version()}" in args
    assert 'org.opencontainers.image.version="${VERSION}"' in DOCKERFILE.read_text(encoding="utf-8")


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_private():
    sources = [
        source
        for ins, args in dockerfile_instructions()
        if ins == "COPY" and "--from=" not in args
        for source in args.split()[:-1]
        if not source.startswith("--")
    ]
    needed = [
        str(file.relative_to(REPO))
        for source in sources
        for file in (
            [REPO / source] if (REPO / source).is_file() else (REPO / source).rglob("*.rs")
        )
    ]

    assert sources and needed
    assert [path for path in needed if dockerignored(path)] == []
    for private in [
        "target/debug/iam-credentials-exporter",
        ".git/HEAD",
        ".venv/bin/python",
        ".e2e/x",
    ]:
        assert dockerignored(private), private


# --- Kubernetes: schemas ----------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_manifests_match_the_kubernetes_schemas_strictly(version):
    core = [(path, doc) for path, doc in load_manifests() if doc["kind"] not in CUSTOM_KINDS]

    failures = []
    for path, doc in core:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            failures.append(f"{path.name}: {e.message} at {'.'.join(map(str, e.absolute_path))}")

    assert failures == []
    assert {doc["kind"] for _, doc in core} == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    }


def test_every_resource_lives_in_the_exporter_namespace():
    for path, doc in load_manifests():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, path.name


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))

    assert kustomization["namespace"] == NAMESPACE
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]
    assert [i["newTag"] for i in kustomization["images"]] == [cargo_version()]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_every_resource_with_the_image_set():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES)], capture_output=True, text=True, check=True
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    image = kustomization["images"][0]

    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == sorted(
        (d["kind"], d["metadata"]["name"]) for _, d in load_manifests()
    )
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"{image['newName']}:{image['newTag']}"
    )


# --- Kubernetes: the Deployment and its neighbours agree ---------------------------


def test_the_service_selects_the_pods_of_the_deployment():
    deployment = the("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert the("Service")["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_the_service_port_reaches_the_exporters_default_port():
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    (service_port,) = the("Service")["spec"]["ports"]
    target = service_port["targetPort"]

    assert service_port["name"] == "metrics"
    assert ports.get(target, target) == default_port()
    assert service_port["port"] == default_port()
    assert "--web.listen-address" not in flag_values(container()["args"])


def test_probes_ask_the_health_and_readiness_endpoints():
    exporter = container()
    ports = {p["name"] for p in exporter["ports"]}

    assert exporter["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert exporter["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    for probe in ("livenessProbe", "readinessProbe"):
        assert exporter[probe]["httpGet"]["port"] in ports | {default_port()}


def test_the_arguments_are_flags_the_exporter_knows():
    args = flag_values(container()["args"])

    assert set(args) <= known_flags()
    assert set(args) >= {"--config.file", "--state.file"}


def test_the_state_file_is_on_the_persistent_volume_claim():
    state_file = flag_values(container()["args"])["--state.file"]
    volume = volume_of(state_file)

    assert (
        volume["persistentVolumeClaim"]["claimName"]
        == the("PersistentVolumeClaim")["metadata"]["name"]
    )
    assert the("Deployment")["spec"]["strategy"]["type"] == "Recreate"
    assert the("Deployment")["spec"]["replicas"] == 1


def test_the_pod_runs_locked_down():
    pod = the("Deployment")["spec"]["template"]["spec"]
    context = container()["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["serviceAccountName"] == the("ServiceAccount")["metadata"]["name"]
    assert "eks.amazonaws.com/role-arn" in the("ServiceAccount")["metadata"]["annotations"]


def test_resources_cover_the_measured_memory():
    resources = container()["resources"]

    assert resources["requests"] == {"cpu": "10m", "memory": "32Mi"}
    assert resources["limits"] == {"memory": "128Mi"}


def test_the_configmap_config_uses_only_the_documented_keys():
    config_block = re.search(r"```yaml\n(.*?)```", readme_section("Config file"), re.S).group(1)
    documented = key_paths(yaml.safe_load(config_block))
    _, text = configmap_config()

    used = key_paths(yaml.safe_load(text))

    assert used <= documented
    assert {"defaults.thresholds", "accounts[].account_id"} <= used


@pytest.mark.skipif(
    not BINARY.exists(), reason="target/debug/iam-credentials-exporter is not built"
)
def test_the_exporter_starts_with_the_configmap_config(tmp_path):
    key, text = configmap_config()
    config = tmp_path / key
    config.write_text(text, encoding="utf-8")
    # AWS is pointed at a closed loopback port: only the config file matters
    # here, and nothing leaves the machine.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
    }
    command = [
        BINARY,
        f"--config.file={config}",
        f"--state.file={tmp_path / 'state.json'}",
        "--web.listen-address=127.0.0.1:0",
        "--cloudtrail.regions=",
    ]

    log, status = run_until_listening(command, env, timeout=20)

    assert status is None, f"the exporter exited with {status}:\n{log}"
    assert "listening" in log


def run_until_listening(command: list, env: dict, timeout: float) -> tuple[str, int | None]:
    """Starts the exporter, waits for its "listening" log line, stops it, and
    returns its log and its exit status if it exited by itself."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    status = None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stderr, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(timeout=remaining):
                    pytest.fail("the exporter did not log `listening` in time:\n" + "".join(lines))
                line = process.stderr.readline()
                if not line:
                    status = process.wait(timeout=5)
                    break
                lines.append(line)
                if "listening" in line:
                    break
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return "".join(lines), status


# --- Kubernetes: Prometheus Operator resources --------------------------------------


def test_the_service_monitor_scrapes_the_metrics_port_of_the_service():
    monitor = the("ServiceMonitor")
    service = the("Service")
    port_names = {p["name"] for p in service["spec"]["ports"]}

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    assert [e["path"] for e in monitor["spec"]["endpoints"]] == [
        readme_flags()["--web.telemetry-path"]
    ]


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_the_scrape_interval_leaves_no_gap_in_the_five_minute_lookback():
    (endpoint,) = the("ServiceMonitor")["spec"]["endpoints"]

    assert seconds(endpoint["scrapeTimeout"]) == 30
    assert seconds(endpoint["scrapeTimeout"]) < seconds(endpoint["interval"])
    # Two scrapes fit in Prometheus's default lookback delta (5m), so one
    # lost scrape does not make the series vanish from alert evaluations.
    assert 2 * seconds(endpoint["interval"]) < 5 * 60


def test_the_prometheus_rule_holds_exactly_the_groups_of_the_rules_file():
    rule = the("PrometheusRule")
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))

    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == rules["groups"]


def test_the_committed_prometheus_rule_is_what_the_generator_writes():
    generator = load_generator()

    wanted = generator.render(RULES.read_text(encoding="utf-8"))

    assert (KUBERNETES / "prometheusrule.yaml").read_text(encoding="utf-8") == wanted, (
        "deploy/kubernetes/prometheusrule.yaml is out of date: "
        "run python3 deploy/kubernetes/generate_prometheusrule.py"
    )


# --- IAM policy ---------------------------------------------------------------------


def test_the_iam_policy_is_json():
    policy = json.loads((DEPLOY / "iam-policy.json").read_text(encoding="utf-8"))

    assert policy["Version"] == "2012-10-17"
