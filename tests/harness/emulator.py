"""AWS emulator for the exporter's tests: moto, plus what moto lacks.

    python tests/harness/emulator.py --scenario FILE.yaml [--host 127.0.0.1] [--port 0]

Serves IAM, STS and CloudTrail on one loopback port and prints `READY http://HOST:PORT`
on stdout once it accepts connections. It runs until SIGTERM or SIGINT, or until its
stdin reaches end of file, so that a test that dies never leaves it behind. See
README.md for the control API and the scenario keys.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from werkzeug.serving import make_server

from emulator_app import EmulatorApp, utc_now
from scenario import ScenarioError, load_scenario_text

# How often the main thread looks up from waiting; signals are handled in between.
WAKE_INTERVAL_SECONDS = 0.5
SHUTDOWN_TIMEOUT_SECONDS = 5.0

log = logging.getLogger("emulator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", required=True, type=Path,
                        help="scenario file (YAML or JSON)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", default=0, type=int, help="port to bind (0: any free)")
    parser.add_argument("--ignore-stdin", action="store_true",
                        help="keep running at end of stdin (stop with SIGTERM)")
    parser.add_argument("--verbose", action="store_true",
                        help="log every AWS call on stderr")
    return parser.parse_args(argv)


def watch_stdin(stop: threading.Event) -> None:
    """Sets `stop` when stdin reaches end of file (the parent closed it or died)."""
    # os.read rather than sys.stdin: a daemon thread blocked inside Python's buffered
    # reader holds its lock and makes the interpreter abort at exit.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="emulator: %(message)s", stream=sys.stderr)
    # Werkzeug logs one line per request; only its errors matter unless asked for.
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)

    try:
        scenario = load_scenario_text(args.scenario.read_bytes(), utc_now())
    except (OSError, ScenarioError) as error:
        log.error("cannot load scenario %s: %s", args.scenario, error)
        return 2

    server = make_server(args.host, args.port, EmulatorApp(scenario), threaded=True)
    serving = threading.Thread(target=server.serve_forever, name="server", daemon=True)
    serving.start()

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if not args.ignore_stdin:
        threading.Thread(target=watch_stdin, args=(stop,), name="stdin", daemon=True).start()

    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"READY http://{host}:{server.server_port}", flush=True)
    log.info("serving account %s on %s:%d", scenario.account_id, args.host, server.server_port)

    while not stop.wait(WAKE_INTERVAL_SECONDS):
        pass
    log.info("shutting down")
    server.shutdown()
    serving.join(SHUTDOWN_TIMEOUT_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
