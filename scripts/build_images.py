#!/usr/bin/env python3
"""Build the systemd-capable Debian test images from Debian packages.

No registry is needed: each image is a ``debootstrap --variant=minbase`` tree
with systemd and python3, imported with ``docker import``. The tree gets the
security and updates suites in its sources and trusts the controller's locally
added CA certificates (``/usr/local/share/ca-certificates``), so that apt and
pip work behind an intercepting proxy.

Cached: an image whose build inputs (this script, the suite, the mirrors and
the CA certificates) are unchanged is not rebuilt. Environment:

    BASELINE_IMAGE_BOOKWORM  image name for Debian 12 (default baseline/debian:bookworm)
    BASELINE_IMAGE_TRIXIE    image name for Debian 13 (default baseline/debian:trixie)
    BASELINE_SUITES          suites to build, space separated (default "bookworm trixie")
    DEBIAN_MIRROR            default http://deb.debian.org/debian
    DEBIAN_SECURITY_MIRROR   default http://deb.debian.org/debian-security
    BASELINE_EXTRA_CA_DIR    CA certificates to trust (default /usr/local/share/ca-certificates)
    BASELINE_IMAGE_REBUILD   1 to rebuild even when cached
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITES = os.environ.get("BASELINE_SUITES", "bookworm trixie").split()
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
CA_DIR = Path(os.environ.get("BASELINE_EXTRA_CA_DIR", "/usr/local/share/ca-certificates"))
REBUILD = os.environ.get("BASELINE_IMAGE_REBUILD", "0") == "1"
LABEL = "org.baseline.inputs"
# Lab and test images only: compiled Ansible payload code is reused between tasks (see the file).
PAYLOAD_CODE_CACHE = Path(__file__).resolve().parent.parent / "molecule/shared/image/ansible_payload_code_cache.py"

# What a fresh cloud VM of Debian has, and what systemd needs to boot in a container.
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "procps",
    "ca-certificates",
]

SOURCES = """\
Types: deb
URIs: {mirror}
Suites: {suite} {suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security_mirror}
Suites: {suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# Units that have nothing to do in a container and only slow the boot down or fail.
MASKED_UNITS = [
    "getty.target",
    "console-getty.service",
    "systemd-firstboot.service",
    "systemd-remount-fs.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
]


def say(suite: str, message: str) -> None:
    print(f"[images:{suite}] {message}", flush=True)


def image_name(suite: str) -> str:
    return os.environ.get(f"BASELINE_IMAGE_{suite.upper()}", f"baseline/debian:{suite}")


def ca_files() -> list[Path]:
    if not CA_DIR.is_dir():
        return []
    return sorted(p for p in CA_DIR.rglob("*.crt") if p.is_file())


def inputs_digest(suite: str) -> str:
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update(PAYLOAD_CODE_CACHE.read_bytes())
    for part in (suite, MIRROR, SECURITY_MIRROR, " ".join(PACKAGES)):
        digest.update(part.encode())
    for path in ca_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_digest(name: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', name],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def run(suite: str, command: list[str], **kwargs: object) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        say(suite, f"FAILED: {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        raise RuntimeError(f"{suite}: {command[0]} failed")


def configure_tree(suite: str, root: Path) -> None:
    apt_dir = root / "etc/apt"
    (apt_dir / "sources.list").unlink(missing_ok=True)
    (apt_dir / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list.d/debian.sources").write_text(
        SOURCES.format(mirror=MIRROR, security_mirror=SECURITY_MIRROR, suite=suite)
    )
    target = root / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for path in ca_files():
        shutil.copy2(path, target / path.name)
    run(suite, ["chroot", str(root), "update-ca-certificates"])
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # Loaded at every interpreter start (a .pth line), active for Ansible's payloads run as root.
    site_packages = root / "usr/lib/python3/dist-packages"
    shutil.copy2(PAYLOAD_CODE_CACHE, site_packages / PAYLOAD_CODE_CACHE.name)
    (site_packages / "zz_ansible_payload_code_cache.pth").write_text(f"import {PAYLOAD_CODE_CACHE.stem}\n")
    cache = root / "var/cache/ansible-payload-code"
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o700)
    # Each container generates its own machine id at first boot.
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # No package lists and no "updated" stamp: the first apt run with a cache_valid_time must
    # refresh the lists, as on a fresh VM image.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "var/lib/apt/periodic", "var/cache/apt"):
        for path in (root / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    # apt (and Ansible's cache_valid_time) judge the lists' age by this directory's mtime.
    os.utime(root / "var/lib/apt/lists", (0, 0))


def build(suite: str) -> str:
    name = image_name(suite)
    digest = inputs_digest(suite)
    cached = cached_digest(name)
    if cached == digest and not REBUILD:
        say(suite, f"{name} is up to date (inputs {digest}): reused")
        return "reused"
    reason = "missing" if cached is None else "rebuild requested" if cached == digest else "inputs changed"
    say(suite, f"building {name} ({reason}) from {MIRROR}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"baseline-{suite}-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        run(
            suite,
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                f"--keyring={KEYRING}",
                suite,
                str(root),
                MIRROR,
            ],
        )
        configure_tree(suite, root)
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        run(
            suite,
            [
                "docker",
                "import",
                "--change",
                "ENV container=docker",
                "--change",
                'CMD ["/lib/systemd/systemd"]',
                "--change",
                f"LABEL {LABEL}={digest}",
                "-",
                name,
            ],
            stdin=tar.stdout,
        )
        tar.wait()
    say(suite, f"built {name} in {time.monotonic() - started:.0f} s")
    return "built"


KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def ensure_debootstrap() -> None:
    """debootstrap, and Debian's archive keyring (absent on Ubuntu controllers)."""
    if shutil.which("debootstrap") and KEYRING.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(
            "[images] ERROR: debootstrap or the Debian archive keyring is missing: as root run "
            "'apt-get install debootstrap debian-archive-keyring', or set BASELINE_IMAGE_BOOKWORM/"
            "BASELINE_IMAGE_TRIXIE to systemd images from your registry and BASELINE_SUITES=''"
        )
    print("[images] installing debootstrap and debian-archive-keyring with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "debootstrap", "debian-archive-keyring"],
    ):
        subprocess.run(command, env=env, check=True)


def main() -> int:
    started = time.monotonic()
    if all(cached_digest(image_name(s)) == inputs_digest(s) for s in SUITES) and not REBUILD:
        for suite in SUITES:
            say(suite, f"{image_name(suite)} is up to date: reused")
        return 0
    ensure_debootstrap()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(SUITES)) as pool:
        futures = {suite: pool.submit(build, suite) for suite in SUITES}
    failed = [suite for suite, future in futures.items() if future.exception()]
    for suite in failed:
        say(suite, f"ERROR: {futures[suite].exception()}")
    print(f"[images] done in {time.monotonic() - started:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
