"""Web tier: wrk over HTTPS with keep-alive against the lab's Apache.

(a) a light Django view (/livez) through mod_wsgi daemon mode as deployed, (b) a static file
from the same Apache and TLS listener (the tier's limit), (c) the same view with the naive
mod_wsgi setup of the tutorials (one daemon process, mod_wsgi's default 15 threads).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable

from .lab import SITE, in_container, playbook, sh

CONNECTIONS = 16
THREADS = 2
DURATION = "10s"
WARMUP = "2s"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("[bench] installing Debian's wrk", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "/usr/bin/wrk"


def wrk(url: str) -> dict[str, float]:
    binary = ensure_wrk()
    sh(binary, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{WARMUP}", url)
    return wrk_output(sh(binary, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", url))


def wrk_output(out: str) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) and non-2xx responses from wrk --latency's output."""
    figures = {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))}
    for percentile in ("50", "99"):
        value, unit = re.search(rf"^\s+{percentile}%\s+([0-9.]+)(us|ms|s)", out, re.MULTILINE).groups()
        figures[f"p{percentile}_ms"] = round(float(value) * UNITS[unit], 2)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = int(errors.group(1)) if errors else 0
    return figures


def static_url() -> str:
    manifest = json.loads(in_container("lab-web", "cat", "/srv/django-app/current/staticfiles/staticfiles.json"))
    return f"{SITE}/static/{manifest['paths']['css/app.css']}"


def run() -> dict:
    print("[bench] web: (a) /livez through mod_wsgi as deployed", flush=True)
    deployed = wrk(f"{SITE}/livez")
    print("[bench] web: (b) a static file from the same Apache", flush=True)
    static = wrk(static_url())
    print("[bench] web: (c) /livez with the naive setup (1 daemon process, 15 threads)", flush=True)
    naive = with_web_vars({"apache_wsgi_processes": 1, "apache_wsgi_threads": 15}, lambda: wrk(f"{SITE}/livez"))
    return {
        "tool": f"wrk (Debian), {THREADS} threads, {CONNECTIONS} keep-alive connections, "
        f"{DURATION} after a {WARMUP} warm-up",
        "deployed": deployed,
        "static": static,
        "naive": naive,
        "deployed_daemon": deployed_daemon(),
    }


def with_web_vars(extra_vars: dict, measure: Callable[[], dict]) -> dict:
    """Re-deploy the web tier with ``extra_vars``, measure, then deploy it back as it was."""
    playbook("playbooks/web.yml", "-e", json.dumps(extra_vars))
    try:
        return measure()
    finally:
        playbook("playbooks/web.yml")


def deployed_daemon() -> str:
    return in_container(
        "lab-web", "sh", "-c", "grep -o 'processes=[0-9]* threads=[0-9]*' /etc/apache2/sites-available/django-app.conf"
    ).strip()
