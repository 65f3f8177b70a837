#!/usr/bin/env python3
"""The project's test command (``make test``), from a fresh Debian machine to a verdict.

Steps, each timed and listed in the summary table at the end:
  setup    the controller venv (.venv, from requirements.txt), a Docker engine
           (scripts/docker_engine.py) and the test images (scripts/build_images.py)
  lint     yamllint, ansible-lint (production profile), ruff check + format
  app      the sample app's pytest suite and ``check --deploy`` (once app/ has them)
  molecule ``molecule test`` for every scenario: roles/*/molecule/* and molecule/*

Needs only the Python standard library (it creates the venv everything else runs from).
Options: --only STEP[,STEP] (setup is always run), --scenario NAME (repeatable; a role name
such as ``redis`` or ``redis/default``, or a stack scenario such as ``stack``; the stack runs
on Debian 13, or on the release LAB_SUITE names, e.g. LAB_SUITE=bookworm), --jobs N
(molecule scenarios at once; default $TEST_JOBS or 2: most of a scenario's time is spent
waiting on apt, pip and services, so two overlap well on two cores), --keep-going.
Scenarios run longest first (durations of earlier runs are kept in .cache/durations.json; a
clone without them, as in CI, uses the reference run's in molecule/shared/durations.json).
Logs of every step: .cache/logs/<step>.log.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
# Tools whose pins clash with the controller venv get their own: venv -> requirements file.
TOOL_VENVS = {ROOT / ".venv-sslyze": ROOT / "requirements-sslyze.txt"}
LOGS = ROOT / ".cache" / "logs"
BASE_CONFIG = ROOT / ".config" / "molecule" / "config.yml"
# The stack scenario (nine hosts, two converges, five faults) takes ~30 min while another
# scenario runs beside it on two cores: a hung scenario still stops well inside CI's limit.
SCENARIO_TIMEOUT = int(os.environ.get("SCENARIO_TIMEOUT", "3000"))
DURATIONS = ROOT / ".cache" / "durations.json"
# What each scenario took in a full run on the 2-core reference machine: the order of a clone
# with no history of its own (CI), longest first, so that the parallel lanes end together.
EXPECTED_DURATIONS = ROOT / "molecule" / "shared" / "durations.json"
# Lines the verifiers print with their measurements, collected under "figures" at the end.
FIGURE = re.compile(r"\[(fault \d|(?:failover|switchover|restore) \w+|stack|celery|acme|lb|django_app)\][^\n]*")
_print_lock = threading.Lock()


@dataclass
class Result:
    step: str
    ok: bool
    seconds: float
    note: str = ""


def say(message: str) -> None:
    with _print_lock:
        print(f"[test] {message}", flush=True)


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env.setdefault("PY_COLORS", "0" if env.get("CI") else "1")
    env.setdefault("ANSIBLE_FORCE_COLOR", "false" if env.get("CI") else "true")
    # Wide enough that no log line the figures are read from gets wrapped.
    env["COLUMNS"] = "400"
    # The whole-stack scenario runs on Debian 13 unless LAB_SUITE names another release.
    suite = env.get("LAB_SUITE")
    if suite:
        env.setdefault("BASELINE_IMAGE_STACK", env.get(f"BASELINE_IMAGE_{suite.upper()}", f"baseline/debian:{suite}"))
    return env


def run_logged(name: str, command: list[str], cwd: Path = ROOT, stream: bool = True, timeout: int | None = None) -> int:
    """Run ``command``; its output goes to .cache/logs/<name>.log and, if ``stream``, to stdout."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name.replace('/', '-')}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        timer = None
        if timeout:
            timer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGTERM))
            timer.start()
        for line in process.stdout or []:
            log.write(line)
            if stream:
                with _print_lock:
                    sys.stdout.write(line)
                    sys.stdout.flush()
        code = process.wait()
        if timer:
            timer.cancel()
    return code


def make_venv(venv: Path, requirements: Path) -> None:
    """Create ``venv`` and install ``requirements`` into it, unless it is up to date."""
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        say(f"{venv.name} is up to date")
        return
    if not (venv / "bin" / "python").exists():
        say(f"creating {venv.name}")
        if subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False).returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            if os.geteuid() == 0 and shutil.which("apt-get"):
                say("python3 -m venv failed: installing Debian's python3-venv")
                subprocess.run(["apt-get", "install", "-y", "-q", "python3-venv"], check=True)
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            else:
                sys.exit("[test] ERROR: 'python3 -m venv' failed: install python3-venv and retry")
    say(f"installing {requirements.name} into {venv.name}")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    stamp.write_text(digest)


def ensure_venv() -> None:
    make_venv(VENV, ROOT / "requirements.txt")
    for venv, requirements in TOOL_VENVS.items():
        make_venv(venv, requirements)


def run_script(script: str) -> None:
    subprocess.run([sys.executable, f"scripts/{script}"], cwd=ROOT, check=True)


def setup() -> list[Result]:
    results = []
    for name, action in (
        ("setup: venv", ensure_venv),
        ("setup: docker engine", lambda: run_script("docker_engine.py")),
        ("setup: images", lambda: run_script("build_images.py")),
    ):
        started = time.monotonic()
        try:
            action()
        except (subprocess.CalledProcessError, SystemExit) as error:
            results.append(Result(name, False, time.monotonic() - started, str(error)))
            break
        results.append(Result(name, True, time.monotonic() - started))
    return results


def lint() -> list[Result]:
    results = []
    for name, command in (
        ("lint: yamllint", ["yamllint", "--strict", "."]),
        ("lint: ansible-lint", ["ansible-lint", "--strict"]),
        ("lint: ruff check", ["ruff", "check", "."]),
        ("lint: ruff format", ["ruff", "format", "--check", "."]),
    ):
        started = time.monotonic()
        code = run_logged(name.replace(": ", "-"), command)
        results.append(Result(name, code == 0, time.monotonic() - started))
    return results


def app_tests() -> list[Result]:
    runner = ROOT / "app" / "run_tests.py"
    if not runner.exists():
        say("app/ has no test runner yet: skipped")
        return []
    started = time.monotonic()
    code = run_logged("app", [str(BIN / "python"), str(runner)], cwd=ROOT / "app")
    return [Result("app: pytest + check --deploy", code == 0, time.monotonic() - started)]


@dataclass
class Scenario:
    label: str  # redis/default, or stack
    cwd: Path
    name: str


def discover() -> list[Scenario]:
    found = []
    for molecule_file in sorted(ROOT.glob("roles/*/molecule/*/molecule.yml")):
        role_dir = molecule_file.parents[2]
        found.append(Scenario(f"{role_dir.name}/{molecule_file.parent.name}", role_dir, molecule_file.parent.name))
    for molecule_file in sorted(ROOT.glob("molecule/*/molecule.yml")):
        found.append(Scenario(molecule_file.parent.name, ROOT, molecule_file.parent.name))
    return found


def select(scenarios: list[Scenario], wanted: list[str]) -> list[Scenario]:
    if not wanted:
        return scenarios
    chosen = [s for s in scenarios if s.label in wanted or s.label.split("/")[0] in wanted]
    unknown = [w for w in wanted if not any(w in (s.label, s.label.split("/")[0]) for s in scenarios)]
    if unknown:
        sys.exit(f"[test] ERROR: no scenario named {unknown}; known: {[s.label for s in scenarios]}")
    return chosen


def run_scenario(scenario: Scenario, stream: bool) -> Result:
    say(f"molecule test: {scenario.label}")
    started = time.monotonic()
    command = ["molecule", "--base-config", str(BASE_CONFIG), "test", "--no-command-borders"]
    command += ["--scenario-name", scenario.name]
    code = run_logged(f"molecule-{scenario.label}", command, cwd=scenario.cwd, stream=stream, timeout=SCENARIO_TIMEOUT)
    seconds = time.monotonic() - started
    say(f"molecule test: {scenario.label}: {'passed' if code == 0 else 'FAILED'} in {seconds:.0f} s")
    return Result(f"molecule: {scenario.label}", code == 0, seconds)


def expected_seconds(scenario: Scenario, history: dict[str, float]) -> float:
    """Last run's duration, else the reference run's, else a guess from the number of instances."""
    if scenario.label in history:
        return history[scenario.label]
    expected = json.loads(EXPECTED_DURATIONS.read_text()) if EXPECTED_DURATIONS.exists() else {}
    if scenario.label in expected:
        return expected[scenario.label]
    molecule_file = scenario.cwd / "molecule" / scenario.name / "molecule.yml"
    return 120 + 60 * molecule_file.read_text().count("- name:")


def molecule(wanted: list[str], jobs: int, keep_going: bool) -> list[Result]:
    history = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    scenarios = sorted(select(discover(), wanted), key=lambda s: -expected_seconds(s, history))
    results: list[Result] = []
    if jobs <= 1:
        for scenario in scenarios:
            results.append(run_scenario(scenario, stream=True))
            if not results[-1].ok and not keep_going:
                break
    else:
        # In parallel the logs would interleave: each goes to its file, a failed one is printed whole.
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_scenario, s, False) for s in scenarios]
            results = [f.result() for f in futures]
        for result in results:
            if not result.ok:
                say(f"log of {result.step}:")
                print(scenario_log(result).read_text(), flush=True)
    history.update({r.step.removeprefix("molecule: "): round(r.seconds) for r in results if r.ok})
    DURATIONS.parent.mkdir(parents=True, exist_ok=True)
    DURATIONS.write_text(json.dumps(history, indent=2, sort_keys=True))
    return results


def scenario_log(result: Result) -> Path:
    return LOGS / f"molecule-{result.step.removeprefix('molecule: ').replace('/', '-')}.log"


def figures(results: list[Result]) -> list[str]:
    """The measurements the verifiers printed (fault tests, failover, timings)."""
    found = []
    for result in results:
        if result.step.startswith("molecule: ") and scenario_log(result).exists():
            text = re.sub(r"\x1b\[[0-9;]*m", "", scenario_log(result).read_text())
            found += sorted({match.group(0).strip() for match in FIGURE.finditer(text)})
    return found


FAILURE = re.compile(
    r"^(?:(?:FAILED|ERROR) \S+::\S+.*|fatal: \[[^\]]+\]: .*|.*FAILED! => .*"
    r"|.*Idempotence test failed.*|\* \[[^\]]+\] => .*)$",
    re.MULTILINE,
)


def failures(results: list[Result]) -> list[str]:
    """What failed in each failed scenario (pytest's short summary, Ansible's fatal lines), so the
    last lines of a run, which are all CI shows, say which test and which assertion."""
    found = []
    for result in results:
        if not result.ok and result.step.startswith("molecule: ") and scenario_log(result).exists():
            text = re.sub(r"\x1b\[[0-9;]*m", "", scenario_log(result).read_text())
            found += [f"{result.step}: {line[:400]}" for line in FAILURE.findall(text)][-10:]
    return found


def summary(results: list[Result], started: float) -> bool:
    width = max([len(r.step) for r in results] + [10])
    lines = [f"{'step'.ljust(width)}  result  seconds", f"{'-' * width}  ------  -------"]
    lines += [f"{r.step.ljust(width)}  {'pass' if r.ok else 'FAIL':6}  {r.seconds:7.0f}" for r in results]
    lines.append(
        f"{'total'.ljust(width)}  {'pass' if all(r.ok for r in results) else 'FAIL':6}  "
        f"{time.monotonic() - started:7.0f}"
    )
    table = "\n".join(lines)
    found = figures(results)
    if found:
        table += "\n\nfigures:\n" + "\n".join(f"  {line}" for line in found)
    failed = failures(results)
    if failed:
        table += "\n\nfailures:\n" + "\n".join(f"  {line}" for line in failed)
    print(f"\n{table}\n", flush=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "summary.txt").write_text(table + "\n")
    return all(r.ok for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="lint,app,molecule", help="steps to run after setup")
    parser.add_argument("--scenario", action="append", default=[], help="molecule scenario(s) to run")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("TEST_JOBS", "2")))
    parser.add_argument("--keep-going", action="store_true", help="run every scenario even after a failure")
    args = parser.parse_args()
    steps = set(args.only.split(","))
    started = time.monotonic()
    results = setup()
    if all(r.ok for r in results):
        if "lint" in steps:
            results += lint()
        if "app" in steps and all(r.ok for r in results):
            results += app_tests()
        if "molecule" in steps and (all(r.ok for r in results) or args.keep_going):
            results += molecule(args.scenario, args.jobs, args.keep_going)
    return 0 if summary(results, started) else 1


if __name__ == "__main__":
    sys.exit(main())
