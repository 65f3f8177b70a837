"""Behaviour of the base role on a converged host."""

from __future__ import annotations

CODENAMES = {"12": "bookworm", "13": "trixie"}


def codename(host) -> str:
    return CODENAMES[host.system_info.release.split(".")[0]]


def test_security_and_updates_archives_are_in_use(host):
    policy = host.check_output("apt-cache policy")
    name = codename(host)
    for suite in (name, f"{name}-updates", f"{name}-security"):
        assert f"n={suite}," in policy, f"{suite} is not among APT's sources:\n{policy}"


def test_legacy_sources_list_lists_no_archive(host):
    legacy = host.file("/etc/apt/sources.list").content_string
    assert not [line for line in legacy.splitlines() if line.strip() and not line.startswith("#")], legacy
    assert host.file("/etc/apt/sources.list.d/debian.sources").exists


def test_private_ca_is_trusted_by_openssl(host):
    result = host.run("openssl verify /root/molecule-leaf.crt")
    assert result.rc == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("OK"), result.stdout


def test_pip_downloads_from_pypi_through_the_trusted_cas(host):
    result = host.run("cd /tmp && python3 -m pip download --no-deps --disable-pip-version-check -d /tmp/dl six")
    assert result.rc == 0, result.stdout + result.stderr
    assert host.file("/tmp/dl").exists


def test_timezone_is_applied(host):
    assert host.check_output("readlink -f /etc/localtime") == "/usr/share/zoneinfo/Europe/Paris"
    assert host.check_output("date +%Z") in {"CET", "CEST"}


def test_locales_are_generated_and_default_is_set(host):
    available = host.check_output("locale -a").split()
    assert {"en_US.utf8", "fr_FR.utf8"} <= set(available), available
    assert "LANG=en_US.UTF-8" in host.file("/etc/default/locale").content_string
    python = "import locale; print(locale.setlocale(locale.LC_ALL, ''))"
    assert host.check_output(f'LANG=fr_FR.UTF-8 python3 -c "{python}"') == "fr_FR.UTF-8"


def test_unattended_upgrade_dry_run_uses_security_origin_only(host):
    result = host.run("unattended-upgrade --dry-run --debug")
    assert result.rc == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    expected = f"origin=Debian,codename={codename(host)}-security,label=Debian-Security"
    allowed = next(line for line in output.splitlines() if "Allowed origins are" in line)
    assert expected in allowed, allowed
    assert f"{codename(host)}-updates" not in allowed, allowed


def test_apt_timers_are_enabled_and_active(host):
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        assert host.service(timer).is_enabled, timer
        assert host.service(timer).is_running, timer
    assert 'APT::Periodic::Unattended-Upgrade "1";' in host.check_output("apt-config dump")
