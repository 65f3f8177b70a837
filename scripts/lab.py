#!/usr/bin/env python3
"""The local lab: ``make lab`` (up) and ``make lab-down``.

``up``: the controller venv, a Docker engine and the Debian image (as ``make test`` does),
then one systemd container per host of inventory/lab (playbooks/lab.yml), then the very
command ops run against production: ``ansible-playbook -i inventory/lab playbooks/site.yml``.
It ends with the URL, the admin login and the health of every component. Running it again on
a running lab is an idempotent re-deploy.

The lab runs Debian 13 (trixie); ``LAB_SUITE=bookworm make lab`` brings it up on Debian 12.
A running lab keeps its release: ``make lab-down`` first to switch.

``down``: removes the containers and their network (the generated secrets stay in
inventory/lab/.secrets; delete that directory for new ones).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_tests import BIN, ROOT, ensure_venv, run_script

INVENTORY = ROOT / "inventory" / "lab"
SECRETS = INVENTORY / ".secrets"
WEB = "lab-web"
URL = "https://localhost:8443"
HEALTH_WAIT_SECONDS = 180
DEPLOY_TIMES = ROOT / ".cache" / "lab" / "deploy-times.json"
SUITES = ("trixie", "bookworm")


def say(message: str) -> None:
    print(f"[lab] {message}", flush=True)


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env.setdefault("ANSIBLE_FORCE_COLOR", "false" if env.get("CI") else "true")
    return env


def lab_suite() -> str:
    suite = os.environ.get("LAB_SUITE", SUITES[0])
    if suite not in SUITES:
        sys.exit(f"[lab] ERROR: LAB_SUITE={suite!r}: the lab runs on {' or '.join(SUITES)}")
    return suite


def image_for(suite: str) -> str:
    """The test image of ``suite``, as scripts/build_images.py names it."""
    return os.environ.get(f"BASELINE_IMAGE_{suite.upper()}", f"baseline/debian:{suite}")


def build_image(suite: str) -> None:
    """Build (or reuse) the one image the lab needs, unless BASELINE_SUITES says otherwise."""
    env = dict(os.environ)
    env.setdefault("BASELINE_SUITES", suite)
    subprocess.run([sys.executable, "scripts/build_images.py"], cwd=ROOT, env=env, check=True)


def images_in_use(hosts: list[str]) -> dict[str, str]:
    """Image of each existing lab container."""
    found = {}
    for host in hosts:
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{.Config.Image}}", host], capture_output=True, text=True, check=False
        )
        if out.returncode == 0:
            found[host] = out.stdout.strip()
    return found


def playbook(*args: str) -> int:
    command = ["ansible-playbook", "-i", str(INVENTORY), *args]
    say(" ".join(command))
    return subprocess.run(command, cwd=ROOT, env=ansible_env(), check=False).returncode


def lab_hosts() -> list[str]:
    hosts = (INVENTORY / "hosts.yml").read_text()
    return sorted(set(re.findall(r"^\s+(lab-[\w-]+):", hosts, re.MULTILINE)))


def running_containers() -> set[str]:
    out = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def forget_facts(hosts: list[str]) -> None:
    """A re-created host has new facts (its address): drop the cached ones (ansible.cfg caches 2 h)."""
    for path in (ROOT / ".cache" / "facts").glob("*"):
        if any(path.name.endswith(host) for host in hosts):
            path.unlink()


def fetch_lab_ca() -> Path:
    """The web host's local CA, so that the lab's HTTPS can be verified from this machine."""
    ca = SECRETS / "lab-ca.crt"
    pem = subprocess.run(
        ["docker", "exec", WEB, "cat", "/etc/ssl/apache-baseline/local-ca.crt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ca.write_text(pem)
    return ca


def app_setting(name: str) -> str:
    """A variable of the app's environment file on the web host ("" when unset)."""
    env = subprocess.run(
        ["docker", "exec", WEB, "cat", "/etc/django-app/app.env"], capture_output=True, text=True, check=False
    ).stdout
    for line in env.splitlines():
        key, _, value = line.partition("=")
        if key == name:
            return value.strip().strip('"')
    return ""


def health(ca: Path) -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(f"{URL}/healthz", context=context, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        return 0, {"error": str(error)}


def wait_for_health(ca: Path) -> tuple[int, dict]:
    deadline = time.monotonic() + HEALTH_WAIT_SECONDS
    status, body = health(ca)
    while status != 200 and time.monotonic() < deadline:
        time.sleep(3)
        status, body = health(ca)
    return status, body


def up() -> int:
    started = time.monotonic()
    suite = lab_suite()
    image = image_for(suite)
    ensure_venv()
    run_script("docker_engine.py")
    other = sorted({used for used in images_in_use(lab_hosts()).values() if used != image})
    if other:
        say(
            f"ERROR: the running lab is on {', '.join(other)}, not {image} (LAB_SUITE={suite}). "
            "Remove it with 'make lab-down' first, or keep it with the LAB_SUITE it was made with."
        )
        return 1
    build_image(suite)
    before = running_containers()
    say(f"Debian {suite} ({image})")
    if playbook("playbooks/lab.yml", "-e", f"lab_image={image}") != 0:
        say("ERROR: the lab's containers did not come up")
        return 1
    new = [host for host in lab_hosts() if host not in before]
    if new:
        forget_facts(lab_hosts())
    deploy_started = time.monotonic()
    if playbook("playbooks/site.yml") != 0:
        say("ERROR: the site playbook failed (see above); fix and run make lab again")
        return 1
    if new:
        # A deploy onto fresh containers: the cold figure the benchmark compares re-runs with.
        DEPLOY_TIMES.parent.mkdir(parents=True, exist_ok=True)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        DEPLOY_TIMES.write_text(json.dumps({"seconds": round(time.monotonic() - deploy_started, 1), "when": when}))
    ca = fetch_lab_ca()
    status, body = wait_for_health(ca)
    admin_password = (SECRETS / "django_admin_password").read_text().split()[0]
    admin_path = app_setting("DJANGO_ADMIN_PATH") or "backoffice/"
    print(
        f"""
The lab is up on Debian {suite} ({time.monotonic() - started:.0f} s).

  URL           {URL}/      (log in first; HTTP on http://localhost:8080 redirects there)
  a user        docker exec -it {WEB} django-app-manage create_user alice      (asks for a password)
  their token   docker exec {WEB} django-app-manage api_token create alice   (shown once; list, revoke)
                curl --cacert {ca.relative_to(ROOT)} -H "Authorization: Bearer $TOKEN" {URL}/api/jobs/
  admin         {URL}/{admin_path}  user: admin  password: {admin_password}
  probes        {URL}/livez  {URL}/readyz  {URL}/healthz
  CA            {ca}   (curl --cacert {ca.relative_to(ROOT)} {URL}/healthz)
  service token {SECRETS / "django_api_token"}   (the API's bootstrap token)
  database      docker exec -it lab-pg1 runuser -u postgres -- psql app   (primary; lab-pg2 streams from it)
  backups       docker exec lab-backup runuser -u postgres -- pgbackrest --stanza=main info
  re-deploy     make lab        remove: make lab-down
""",
        flush=True,
    )
    print(f"Health ({URL}/healthz): HTTP {status}")
    for name, check in sorted(body.get("checks", {}).items()):
        detail = {k: v for k, v in check.items() if k not in {"ok"}}
        if name == "database":
            # The replicas' lag is what ops look for: keep it inside the line's width.
            detail["replicas"] = [
                f"{r['name']} {r['state']} {r['sync']} lag {r['lag_bytes']} B {r['replay_lag_seconds']} s"
                for r in detail.get("replicas", [])
            ]
        print(f"  {'ok  ' if check.get('ok') else 'FAIL'} {name:9} {json.dumps(detail)[:160]}")
    if status != 200:
        say(f"ERROR: /healthz answered {status}: {body.get('error', '')}")
        return 1
    return 0


def down() -> int:
    code = playbook("playbooks/lab.yml", "-e", "lab_state=absent")
    forget_facts(lab_hosts())
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    return up() if parser.parse_args().action == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
