"""The running parts of the end-to-end alerting test, on loopback.

`Stack` starts the AWS emulator, the exporter, a real Alertmanager and a real Prometheus
as child processes, plus a webhook receiver thread that records every notification
Alertmanager sends. Every process writes its output to a log file in the test's
temporary directory; `Stack.logs_on_failure()` prints the tail of each log when the
block it guards raises, and `Stack.stop()` ends everything it started.

Every wait is bounded, every socket binds 127.0.0.1, and every port is a free one.
Python standard library and PyYAML only.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parents[2]
EMULATOR = REPO / "tests" / "harness" / "emulator.py"

START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10
HTTP_TIMEOUT_SECONDS = 10
LOG_TAIL_LINES = 40

T = TypeVar("T")


# ------------------------------------------------------------------------ small tools


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_json(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """Sends a request, with `body` as JSON when given: (HTTP status, parsed answer)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return response.status, _parse(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _parse(error.read())


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def wait_until(
    probe: Callable[[], T], timeout: float, what: str, interval: float = 0.25
) -> T:
    """Calls `probe` until it returns something truthy and returns that; raises
    TimeoutError naming `what` after `timeout` seconds. Connection errors count as
    "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except (OSError, urllib.error.URLError):
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def find_executable(*names: str) -> str:
    """The first of `names` found on PATH; raises FileNotFoundError otherwise."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        f"none of {', '.join(names)} is installed (scripts/test.sh installs them)"
    )


def exporter_binary() -> Path:
    """The exporter under test: $IAM_EXPORTER_BIN, else the debug build."""
    binary = Path(
        os.environ.get("IAM_EXPORTER_BIN")
        or REPO / "target" / "debug" / "iam-credentials-exporter"
    )
    if not binary.is_file():
        raise FileNotFoundError(
            f"{binary} does not exist: run `cargo build --bin iam-credentials-exporter` "
            "or set IAM_EXPORTER_BIN"
        )
    return binary


def write_yaml(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------------ processes


class ManagedProcess:
    """A child process whose stdout and stderr (merged) are copied to a log file.

    Its stdin is a pipe kept open until `stop()`, so that a child which stops at end
    of input (the emulator) lives exactly as long as this object wants it to.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ):
        self.name = name
        self.log_path = log_path
        self._lines: queue.Queue[str] = queue.Queue()
        self._log = log_path.open("w", encoding="utf-8", buffering=1)
        self._log.write(f"$ {' '.join(argv)}\n")
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=log_path.parent,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._copy_output, daemon=True)
        self._reader.start()

    def _copy_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._log.write(line)
            self._lines.put(line)

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        """The first output line that starts with `prefix`, without its line end."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.process.poll() is not None and self._lines.empty():
                    break
                continue
            if line.startswith(prefix):
                return line.rstrip("\n")
        raise TimeoutError(f"{self.name} printed no line starting with {prefix!r}")

    def check_running(self) -> None:
        """Raises RuntimeError if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with status {code}")

    def stop(self) -> None:
        """Closes stdin, sends SIGTERM, and SIGKILL if it is still there after a while."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_SECONDS)
        self._reader.join(STOP_TIMEOUT_SECONDS)
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        self._log.close()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------------ webhook


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every Alertmanager notification.

    Each notification is the JSON body Alertmanager's webhook integration POSTs:
    {"receiver", "status", "alerts": [{"status", "labels", "annotations", ...}], ...}.
    """

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self._notifications: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    notification = json.loads(self.rfile.read(length))
                except ValueError:
                    self.send_response(400)
                else:
                    receiver._record(notification)
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _record(self, notification: dict[str, Any]) -> None:
        with self._changed:
            self._notifications.append(notification)
            with self.log_path.open("a", encoding="utf-8") as log:
                for alert in notification.get("alerts") or []:
                    log.write(f"{alert.get('status')} {json.dumps(alert.get('labels'))}\n")
            self._changed.notify_all()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification so far, in arrival order."""
        with self._changed:
            return [a for n in self._notifications for a in n.get("alerts") or []]

    def notifications(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._notifications)

    def wait_for(
        self, condition: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> bool:
        """Waits until `condition(alerts())` holds; False when `timeout` runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                alerts = [a for n in self._notifications for a in n.get("alerts") or []]
                if condition(alerts):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.exists():
            return "(no notification received)"
        text = self.log_path.read_text(encoding="utf-8")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(STOP_TIMEOUT_SECONDS)


# ------------------------------------------------------------------------ the stack


class Stack:
    """Emulator, exporter, Alertmanager, Prometheus and webhook of one test run."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.processes: list[ManagedProcess] = []
        self.webhook: WebhookReceiver | None = None
        self.emulator_url = ""
        self.exporter_url = ""
        self.alertmanager_url = ""
        self.prometheus_url = ""

    def _spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.directory / f"{name}.log", env)
        self.processes.append(process)
        return process

    def _wait_ready(self, process: ManagedProcess, url: str) -> None:
        def ready() -> bool:
            process.check_running()
            return http_json("GET", url)[0] == 200

        wait_until(ready, START_TIMEOUT_SECONDS, f"{process.name} at {url}")

    def start_webhook(self) -> WebhookReceiver:
        self.webhook = WebhookReceiver(self.directory / "webhook.log")
        return self.webhook

    def start_emulator(self, scenario: Path) -> str:
        """Starts the AWS emulator on a scenario file; returns its base URL."""
        process = self._spawn(
            "emulator", [sys.executable, str(EMULATOR), "--scenario", str(scenario)]
        )
        line = process.wait_for_line("READY ", START_TIMEOUT_SECONDS)
        self.emulator_url = line.split()[1]
        return self.emulator_url

    def apply_scenario(self, scenario: Mapping[str, Any]) -> dict[str, Any]:
        """Replaces the emulator's scenario through its control API."""
        status, answer = http_json("PUT", f"{self.emulator_url}/_harness/scenario", scenario)
        if status != 200:
            raise RuntimeError(f"the emulator refused the scenario: {status} {answer}")
        return answer

    def start_exporter(self, config_file: Path, refresh_interval: str = "1s") -> str:
        """Starts the exporter against the emulator; returns its base URL once ready."""
        # Nothing from the caller's AWS or exporter settings may leak in.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "IAM_EXPORTER_"))
        }
        env.update(
            AWS_ENDPOINT_URL=self.emulator_url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )
        address = f"127.0.0.1:{free_port()}"
        process = self._spawn(
            "exporter",
            [
                str(exporter_binary()),
                f"--web.listen-address={address}",
                f"--refresh.interval={refresh_interval}",
                f"--config.file={config_file}",
            ],
            env,
        )
        self.exporter_url = f"http://{address}"
        self._wait_ready(process, f"{self.exporter_url}/-/ready")
        return self.exporter_url

    def start_alertmanager(self, config: Mapping[str, Any]) -> str:
        """Starts Alertmanager, clustering off; returns its base URL once ready."""
        config_file = write_yaml(self.directory / "alertmanager.yml", config)
        storage = self.directory / "alertmanager-data"
        storage.mkdir()
        address = f"127.0.0.1:{free_port()}"
        process = self._spawn(
            "alertmanager",
            [
                find_executable("prometheus-alertmanager", "alertmanager"),
                f"--config.file={config_file}",
                f"--storage.path={storage}",
                f"--web.listen-address={address}",
                "--cluster.listen-address=",
            ],
        )
        self.alertmanager_url = f"http://{address}"
        self._wait_ready(process, f"{self.alertmanager_url}/-/ready")
        return self.alertmanager_url

    def start_prometheus(self, config: Mapping[str, Any]) -> str:
        """Starts Prometheus; returns its base URL once ready. Rule files named
        relatively in `config` are read from the stack's directory."""
        config_file = write_yaml(self.directory / "prometheus.yml", config)
        storage = self.directory / "prometheus-data"
        storage.mkdir()
        address = f"127.0.0.1:{free_port()}"
        process = self._spawn(
            "prometheus",
            [
                find_executable("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address={address}",
            ],
        )
        self.prometheus_url = f"http://{address}"
        self._wait_ready(process, f"{self.prometheus_url}/-/ready")
        return self.prometheus_url

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        """Prometheus' active alerts (pending and firing), from /api/v1/alerts."""
        status, answer = http_json("GET", f"{self.prometheus_url}/api/v1/alerts")
        if status != 200 or answer.get("status") != "success":
            raise RuntimeError(f"/api/v1/alerts answered {status}: {answer}")
        return answer["data"]["alerts"]

    def check_running(self) -> None:
        for process in self.processes:
            process.check_running()

    def log_tails(self) -> str:
        parts = [f"----- {p.name} ({p.log_path}) -----\n{p.tail()}" for p in self.processes]
        if self.webhook is not None:
            parts.append(f"----- webhook ({self.webhook.log_path}) -----\n{self.webhook.tail()}")
        return "\n".join(parts)

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        """Prints the tail of every log when the block raises, then re-raises."""
        try:
            yield
        except BaseException:
            print(f"\nlast {LOG_TAIL_LINES} lines of each log:\n{self.log_tails()}")
            raise

    def stop(self) -> None:
        """Stops everything started, newest first; safe to call more than once."""
        while self.processes:
            self.processes.pop().stop()
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook = None
