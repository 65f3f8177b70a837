"""bench/RESULTS.md from one run's figures, with the targets and whether each is met."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

from .lab import sh, versions

HERE = Path(__file__).resolve().parent


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def table(headers: list[str], rows: list[list]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def machine() -> str:
    cpus = os.cpu_count()
    memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    docker = sh("docker", "version", "--format", "{{.Server.Version}}").strip()
    return f"{cpus} cores, {memory} GiB, Linux {platform.release()}, Docker {docker}"


def lab_containers() -> int:
    return sum(1 for name in sh("docker", "ps", "--format", "{{.Names}}").split() if name.startswith("lab-"))


def render(results: dict) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"Measured by `make bench` (`python -m bench`) on the local lab (`make lab`), {now}, in "
        f"{results['seconds']} s. Machine: {machine()}; the lab's {lab_containers()} containers, the load tools "
        "and "
        "the controller share it. Every figure is compared with another taken in the same run.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        "",
    ]
    met: list[tuple[str, bool, float]] = []
    if "web" in results:
        w = results["web"]
        a_b, a_c = ratio(w["deployed"]["rps"], w["static"]["rps"]), ratio(w["deployed"]["rps"], w["naive"]["rps"])
        met += [
            ("Django view ≥ 0.5× the static file", a_b >= 0.5, a_b),
            ("Django view ≥ 1.5× naive mod_wsgi", a_c >= 1.5, a_c),
        ]
        lines += [
            "## 1. Web tier (HTTPS, keep-alive)",
            "",
            f"Load: {w['tool']}. Deployed daemon: `{w['deployed_daemon']}`.",
            "",
            *table(
                ["target", "requests/s", "p50 ms", "p99 ms", "non-2xx"],
                [
                    [label, f"{w[key]['rps']:.0f}", w[key]["p50_ms"], w[key]["p99_ms"], w[key]["non_2xx"]]
                    for label, key in (
                        ("(a) Django view `/livez`, mod_wsgi daemon mode as deployed", "deployed"),
                        ("(b) static file, same Apache and TLS listener (the limit)", "static"),
                        ("(c) the same view, naive mod_wsgi (1 process × 15 threads)", "naive"),
                    )
                ],
            ),
            "",
            f"a/b = **{a_b}** (target ≥ 0.5: {verdict(a_b >= 0.5)}); "
            f"a/c = **{a_c}** (target ≥ 1.5: {verdict(a_c >= 1.5)}).",
            "",
        ]
    if "tasks" in results:
        t = results["tasks"]
        r_raw = ratio(t["deployed"]["tasks_per_s"], t["raw"]["tasks_per_s"])
        r_def = ratio(t["deployed"]["tasks_per_s"], t["defaults"]["tasks_per_s"])
        met += [
            ("reliable Celery ≥ 0.3× raw AMQP", r_raw >= 0.3, r_raw),
            ("reliable Celery ≥ 0.8× Celery's defaults", r_def >= 0.8, r_def),
        ]
        lines += [
            f"## 2. Task pipeline ({t['n']} trivial tasks, submit to result)",
            "",
            *table(
                ["pipeline", "tasks/s", "p50 ms", "p95 ms", "p99 ms"],
                [
                    [label, t[key]["tasks_per_s"], t[key]["p50_ms"], t[key]["p95_ms"], t[key]["p99_ms"]]
                    for label, key in (
                        ("deployed: quorum queues, confirms, acks_late, prefetch 1, results in Redis", "deployed"),
                        ("raw AMQP, same cluster: kombu publish (confirms) + consume (acks), quorum queue", "raw"),
                        ("same app, Celery's defaults: classic queue, no confirms, early acks, prefetch 4", "defaults"),
                    )
                ],
            ),
            "",
            f"deployed/raw = **{r_raw}** (target ≥ 0.3: {verdict(r_raw >= 0.3)}); "
            f"deployed/defaults = **{r_def}** (target ≥ 0.8: {verdict(r_def >= 0.8)}).",
            "",
        ]
    if "deploy" in results:
        d = results["deploy"]
        w_c, w_d = ratio(d["warm_seconds"], d["cold_seconds"]), ratio(d["warm_seconds"], d["warm_defaults_seconds"])
        met += [
            ("warm re-run ≤ 0.25× cold", w_c <= 0.25, w_c),
            ("warm re-run ≤ 0.5× with Ansible's defaults", w_d <= 0.5, w_d),
        ]
        lines += [
            "## 3. Deployment (`ansible-playbook -i inventory/lab playbooks/site.yml`)",
            "",
            "| run | seconds | changed |",
            "|---|---|---|",
            f"| cold: fresh lab (recorded by `make lab`, {d['cold_recorded']}) | {d['cold_seconds']} | — |",
            f"| warm: idempotent re-run, project `ansible.cfg` | {d['warm_seconds']} | {d['warm_changed']} |",
            "| warm, Ansible's defaults (no fact cache, no pipelining, 5 forks) "
            f"| {d['warm_defaults_seconds']} | {d['warm_defaults_changed']} |",
            "",
            f"warm/cold = **{w_c}** (target ≤ 0.25: {verdict(w_c <= 0.25)}); warm/defaults = **{w_d}** "
            f"(target ≤ 0.5: {verdict(w_d <= 0.5)}).",
            "",
        ]
    if "database" in results:
        b = results["database"]
        r_conn = ratio(b["persistent"]["rps"], b["per_request"]["rps"])
        lines += [
            "## 4. Database connections (a view that reads one row)",
            "",
            f"Load: {b['tool']}. Deployed daemon: `{b['deployed_daemon']}`; the app's PostgreSQL role's "
            "connections on the primary sampled every second.",
            "",
            *table(
                ["Django setting", "requests/s", "p50 ms", "p99 ms", "non-2xx", "connections held (peak)"],
                [
                    [
                        label,
                        f"{b[key]['rps']:.0f}",
                        b[key]["p50_ms"],
                        b[key]["p99_ms"],
                        b[key]["non_2xx"],
                        b[key]["connections_peak"],
                    ]
                    for label, key in (
                        ("`CONN_MAX_AGE` 60 with health checks (as deployed)", "persistent"),
                        ("`CONN_MAX_AGE` 0: a new TLS + SCRAM connection per request", "per_request"),
                    )
                ],
            ),
            "",
            f"persistent/per-request = **{r_conn}**. No target: this figure chose the design (see the "
            "postgresql role's README, connection budget).",
            "",
        ]
    lines += ["## Targets", "", "| target | ratio | |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {verdict(ok)} |" for name, ok, value in met]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"
