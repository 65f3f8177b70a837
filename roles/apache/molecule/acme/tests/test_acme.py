"""certbot in acme mode against pebble: first-run issuance, renewal, reload."""

from __future__ import annotations

import time

from baseline_testlib import instance_name, run_role

testinfra_hosts = ["ansible://apache-acme-trixie", "ansible://apache-acme-bookworm"]

PEBBLE = "https://pebble:14000/dir"
CA = "/etc/letsencrypt/baseline-acme-ca.pem"
CERTBOT_ENV = f"REQUESTS_CA_BUNDLE={CA}"
CONVERGE = {
    "apache_server_name": "{{ inventory_hostname }}",
    "apache_tls_mode": "acme",
    "apache_acme_email": "ops@example.org",
    "apache_acme_directory_url": PEBBLE,
    "apache_acme_ca_bundle": "{{ lookup('file', molecule_ephemeral_directory ~ '/pebble-pki/ca.crt') }}",
}


def s_client(host) -> str:
    return f"echo | openssl s_client -connect localhost:443 -servername {instance_name(host)}"


def served_serial(host) -> str:
    out = host.check_output(f"{s_client(host)} 2>/dev/null | openssl x509 -noout -serial")
    return out.strip().split("=", 1)[1]


def pebble_root(host) -> None:
    for path, name in (("roots/0", "root"), ("intermediates/0", "intermediate")):
        host.run_expect([0], f"curl -sf --cacert {CA} https://pebble:15000/{path} -o /tmp/pebble-{name}.pem")


def test_first_run_obtained_a_certificate_for_the_site(host):
    name = instance_name(host)
    live = host.file(f"/etc/letsencrypt/live/{name}/fullchain.pem")
    assert live.exists
    renewal = host.file(f"/etc/letsencrypt/renewal/{name}.conf").content_string
    assert f"server = {PEBBLE}" in renewal
    assert "authenticator = webroot" in renewal
    site = host.file("/etc/apache2/sites-available/django-app.conf").content_string
    assert f"SSLCertificateFile /etc/letsencrypt/live/{name}/fullchain.pem" in site


def test_served_certificate_chains_to_pebbles_root(host):
    pebble_root(host)
    result = host.run(f"{s_client(host)} -CAfile /tmp/pebble-root.pem -verify_return_error 2>&1")
    assert "Verify return code: 0 (ok)" in result.stdout, result.stdout[-2000:]
    subject = host.check_output(f"{s_client(host)} 2>/dev/null | openssl x509 -noout -ext subjectAltName")
    assert f"DNS:{instance_name(host)}" in subject


def test_renewal_runs_from_debians_timer_with_the_ca_bundle(host):
    assert host.service("certbot.timer").is_enabled
    assert host.service("certbot.timer").is_running
    env = host.check_output("systemctl show -p Environment --value certbot.service")
    assert f"REQUESTS_CA_BUNDLE={CA}" in env
    assert not host.file("/etc/cron.d/certbot").exists or "systemd" in host.file("/etc/cron.d/certbot").content_string


def test_certbot_renew_dry_run_against_pebble_succeeds(host):
    result = host.run(f"{CERTBOT_ENV} certbot renew --dry-run --server {PEBBLE} --no-random-sleep-on-renew")
    assert result.rc == 0, result.stdout + result.stderr
    assert "Congratulations, all simulated renewals succeeded" in result.stdout + result.stderr


def test_forced_renewal_reloads_apache_and_serves_the_new_certificate(host):
    before = served_serial(host)
    pid = host.check_output("systemctl show -p MainPID --value apache2")
    result = host.run(f"{CERTBOT_ENV} certbot renew --force-renewal --server {PEBBLE} --no-random-sleep-on-renew")
    assert result.rc == 0, result.stdout + result.stderr
    deadline = time.monotonic() + 30
    after = before
    while after == before and time.monotonic() < deadline:
        time.sleep(1)
        after = served_serial(host)
    print(f"\n[acme] {host.system_info.codename}: served certificate serial {before} -> {after}")
    assert after != before, "the renewed certificate is not served"
    assert host.check_output("systemctl show -p MainPID --value apache2") == pid, "Apache was restarted, not reloaded"


def served_names(host) -> set[str]:
    out = host.check_output(f"{s_client(host)} 2>/dev/null | openssl x509 -noout -ext subjectAltName")
    return {name.strip().removeprefix("DNS:") for name in out.splitlines()[-1].split(",")}


def test_the_certificate_follows_the_configured_names(host):
    """An added name is issued for; a removed one leaves the certificate (no `creates:` freeze).

    The same names issue nothing: that is molecule's idempotence run, on this configuration.
    """
    name = instance_name(host)
    alias = f"www.{name}.test"  # a network alias of this host (molecule.yml)
    added = run_role("apache", name, {**CONVERGE, "apache_server_aliases": [alias]})
    assert added.returncode == 0, added.output[-3000:]
    assert served_names(host) == {name, alias}, "a name added to the site was not issued for"
    removed = run_role("apache", name, CONVERGE)
    assert removed.returncode == 0, removed.output[-3000:]
    assert served_names(host) == {name}, "a name removed from the site is still in its certificate"
