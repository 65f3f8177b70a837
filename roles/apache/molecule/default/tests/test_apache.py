"""Apache + mod_wsgi daemon mode + HTTPS on the converged host."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from baseline_testlib import instance_name

SITE = "https://localhost"
# sslyze has its own venv (its cryptography pin clashes with the controller's): make test builds it.
SSLYZE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parent.parent / ".venv-sslyze" / "bin" / "sslyze"


def curl(host, *args: str) -> str:
    return host.check_output("curl -sk --max-time 10 " + " ".join(args))


def headers(host, url: str) -> dict[str, list[str]]:
    raw = curl(host, "-D -", "-o /dev/null", url)
    found: dict[str, list[str]] = {}
    for line in raw.splitlines()[1:]:
        name, _, value = line.partition(":")
        if value:
            found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def test_http_redirects_permanently_to_https(host):
    out = curl(host, "-o /dev/null", "-w '%{http_code} %{redirect_url}'", "http://localhost/some/page?x=1")
    assert out == f"301 https://{instance_name(host)}/some/page?x=1", out


def test_acme_challenge_path_is_not_redirected(host):
    host.run_expect([0], "echo token > /var/www/acme/.well-known/acme-challenge/probe")
    out = curl(host, "-w ' %{http_code}'", "http://localhost/.well-known/acme-challenge/probe")
    assert out == "token\n 200", out


def test_https_answers_from_the_daemon_process_as_the_app_user(host):
    body = json.loads(curl(host, f"{SITE}/"))
    assert body["process_group"] == "django-app", body
    assert body["application_group"] == "", body
    assert body["user"] == "app", body
    assert body["prefix"] == "/srv/django-app/current/venv", body
    assert body["scheme"] == "https", body


def test_daemon_processes_run_as_the_app_user_and_none_embedded(host):
    processes = host.check_output("ps -eo user:16,args | grep '[w]sgi:django-app'").splitlines()
    assert processes, "no mod_wsgi daemon process"
    assert {line.split()[0] for line in processes} == {"app"}, processes
    assert "WSGIRestrictEmbedded On" in host.file("/etc/apache2/conf-enabled/baseline-hardening.conf").content_string


def test_http2_is_offered(host):
    assert curl(host, "--http2", "-o /dev/null", "-w '%{http_version}'", f"{SITE}/") == "2"


def test_hsts_and_security_headers_are_set_once(host):
    found = headers(host, f"{SITE}/")
    assert found["strict-transport-security"] == ["max-age=63072000; includeSubDomains"]
    assert found["x-content-type-options"] == ["nosniff"]
    assert found["x-frame-options"] == ["DENY"], "the app's SAMEORIGIN must be replaced, not doubled"
    assert found["referrer-policy"] == ["same-origin"]
    assert "frame-ancestors 'none'" in found["content-security-policy"][0]


def test_server_header_says_only_apache(host):
    for url in (f"{SITE}/", f"{SITE}/static/missing.css", "http://localhost/x"):
        assert headers(host, url)["server"] == ["Apache"], url


def test_hashed_static_files_are_cached_for_a_year(host):
    hashed = headers(host, f"{SITE}/static/css/app.0123456789ab.css")
    assert hashed["cache-control"] == ["public, max-age=31536000, immutable"]
    plain = headers(host, f"{SITE}/static/robots.txt")
    assert plain["cache-control"] == ["public, max-age=3600"]


def test_directory_listing_is_off(host):
    assert curl(host, "-o /dev/null", "-w '%{http_code}'", f"{SITE}/static/css/") in {"403", "404"}


def test_unneeded_modules_are_off(host):
    loaded = host.check_output("apache2ctl -M 2>/dev/null")
    for module in ("cgi_module", "cgid_module", "dav_module", "autoindex_module", "status_module"):
        assert module not in loaded, module
    for module in ("wsgi_module", "ssl_module", "http2_module", "headers_module", "reqtimeout_module"):
        assert module in loaded, module


def test_default_site_is_gone(host):
    assert not host.file("/etc/apache2/sites-enabled/000-default.conf").exists
    assert host.file("/etc/apache2/sites-enabled/django-app.conf").is_symlink


def test_tls_scan_is_mozilla_intermediate_compliant_and_refuses_tls_1_0_and_1_1(host):
    name = instance_name(host)
    address = host.interface("eth0").addresses[0]
    cert = host.file("/etc/ssl/apache-baseline/local-ca.crt").content_string
    with tempfile.TemporaryDirectory() as tmp:
        ca = Path(tmp) / "ca.pem"
        ca.write_text(cert)
        report = Path(tmp) / "scan.json"
        scan = subprocess.run(
            [
                str(SSLYZE),
                "--mozilla_config=intermediate",
                f"--certinfo_ca_file={ca}",
                f"--json_out={report}",
                f"{name}:443{{{address}}}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        print(scan.stdout[-1500:])
        # sslyze exits 0 when it cannot reach the host at all: the verdict text is what counts.
        assert f"{name}:443: OK - Compliant." in scan.stdout, scan.stdout[-3000:]
        assert scan.returncode == 0, scan.stderr[-2000:]
        result = json.loads(report.read_text())["server_scan_results"][0]["scan_result"]
    for protocol in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        accepted = result[f"{protocol}_cipher_suites"]["result"]["accepted_cipher_suites"]
        assert accepted == [], f"{protocol} is accepted: {accepted}"
    assert result["tls_1_2_cipher_suites"]["result"]["accepted_cipher_suites"]
    assert result["tls_1_3_cipher_suites"]["result"]["accepted_cipher_suites"]


def test_certificate_is_ecdsa_and_valid_less_than_a_year(host):
    name = instance_name(host)
    cert = f"/etc/ssl/apache-baseline/{name}.crt"
    text = host.check_output(f"openssl x509 -noout -text -in {cert}")
    assert "id-ecPublicKey" in text
    assert f"DNS:{name}" in text
    days = host.check_output(
        f'echo $(( ($(date -d "$(openssl x509 -noout -enddate -in {cert} | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))'
    )
    assert 360 <= int(days) <= 366, days
    assert re.search(r"Signature Algorithm: ecdsa-with-SHA256", text)
    tls = "/etc/ssl/apache-baseline"
    chain = host.run(f"openssl verify -CAfile {tls}/local-ca.crt {cert}")
    assert chain.rc == 0, chain.stdout + chain.stderr
