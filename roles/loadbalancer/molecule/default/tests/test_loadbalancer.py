"""HAProxy in front of two Apache hosts, tested from an outside client (the pebble container).

Public TLS on the balancer, re-encrypted and verified to the web hosts, the client's address
carried in the PROXY protocol, readiness checks, runtime drain kept across reloads, reloads
and certificate renewals that drop no request, and an ACME certificate that follows the names.
"""

from __future__ import annotations

import json
import shlex
import threading
import time

import pytest
import testinfra

from baseline_testlib import assert_refused_before_any_change, run_role, wait_for

testinfra_hosts = ["ansible://lb-pebble"]

BALANCERS = ("lb-trixie", "lb-bookworm")
WEB = ("lb-web-trixie", "lb-web-bookworm")
PEBBLE = "https://lb-pebble:14000/dir"
ACME_CA = "/etc/letsencrypt/baseline-acme-ca.pem"
SOCKET = "/run/haproxy/admin.sock"

# A steady client: HTTPS requests from a few threads, a new connection for each, until the
# stop file appears; prints the count of requests and the failures (non-2xx or errors).
LOAD = r"""
import http.client, json, os, ssl, sys, threading
host, cafile, stop = sys.argv[1], sys.argv[2], sys.argv[3]
context = ssl.create_default_context(cafile=cafile)
counts = {"requests": 0, "failures": 0, "errors": []}
lock = threading.Lock()
def run():
    while not os.path.exists(stop):
        try:
            conn = http.client.HTTPSConnection(host, 443, context=context, timeout=10)
            conn.request("GET", "/")
            status = conn.getresponse().status
            conn.close()
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:
            error = repr(exc)
        with lock:
            counts["requests"] += 1
            if error:
                counts["failures"] += 1
                counts["errors"].append(error)
            elif counts["requests"] == 1:
                open(stop + ".started", "w").close()
threads = [threading.Thread(target=run) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
counts["errors"] = counts["errors"][:5]
print(json.dumps(counts))
"""


def node(name: str):
    return testinfra.get_host(f"docker://{name}")


@pytest.fixture(scope="module")
def cafiles(host) -> dict[str, str]:
    """The client trusts pebble's root (lb-trixie) and lb-bookworm's local CA, nothing else."""
    api_ca = node("lb-trixie").file(ACME_CA).content_string
    host.run_expect([0], f"printf '%s\\n' {shlex.quote(api_ca.strip())} > /tmp/pebble-api-ca.pem")
    root = host.check_output("curl -sf --cacert /tmp/pebble-api-ca.pem https://lb-pebble:15000/roots/0")
    local = node("lb-bookworm").file("/etc/haproxy/tls/local-ca.crt").content_string
    files = {"lb-trixie": "/tmp/lb-trixie-ca.pem", "lb-bookworm": "/tmp/lb-bookworm-ca.pem"}
    for name, text in (("lb-trixie", root), ("lb-bookworm", local)):
        host.run_expect([0], f"printf '%s\\n' {shlex.quote(text.strip())} > {files[name]}")
    host.run_expect([0], f"printf '%s' {shlex.quote(LOAD)} > /tmp/load.py")
    return files


def get(host, balancer: str, cafile: str, path: str = "/", headers: tuple[str, ...] = ()) -> dict:
    extra = " ".join(f"-H {shlex.quote(header)}" for header in headers)
    out = host.check_output(f"curl -sf --cacert {cafile} {extra} https://{balancer}{path}")
    return json.loads(out)


def client_address(host) -> str:
    return host.check_output("hostname -I").split()[0]


def stat(balancer: str) -> dict[str, dict[str, str]]:
    """HAProxy's `show stat` for the web backend's servers, by server name."""
    out = node(balancer).check_output(f"echo 'show stat' | socat {SOCKET} -")
    lines = [line for line in out.splitlines() if line]
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]
    return {row["svname"]: row for row in rows if row["pxname"] == "web" and row["svname"] in WEB}


def all_up(balancer: str) -> None:
    """A test starts with both web hosts in the pool (an earlier one may have taken one out)."""
    wait_for(
        lambda: all(row["status"] == "UP" for row in stat(balancer).values()),
        timeout=30,
        message=f"both web hosts up on {balancer}",
    )


def runtime(balancer: str, command: str) -> str:
    return node(balancer).check_output(f"echo {shlex.quote(command)} | socat {SOCKET} -")


class Load:
    """The steady client in a thread: ``with Load(host, balancer, cafile) as load: ...``."""

    def __init__(self, host, balancer: str, cafile: str):
        self.host, self.balancer, self.cafile = host, balancer, cafile
        self.stop = f"/tmp/load-stop-{balancer}"
        self.result: dict = {}

    def _run(self):
        out = self.host.check_output(f"timeout 300 python3 /tmp/load.py {self.balancer} {self.cafile} {self.stop}")
        self.result = json.loads(out.strip().splitlines()[-1])

    def __enter__(self):
        self.host.run_expect([0], f"rm -f {self.stop} {self.stop}.started")
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        # Traffic flows before the test acts.
        try:
            started = self.host.file(f"{self.stop}.started")
            wait_for(lambda: started.exists, timeout=30, message="the first request served")
        except AssertionError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self.host.run_expect([0], f"touch {self.stop}")
        self.thread.join(60)
        return False


@pytest.mark.parametrize("balancer", BALANCERS)
def test_both_web_hosts_serve_through_the_balancer_with_the_clients_address(host, cafiles, balancer):
    address = client_address(host)
    seen = set()
    for _ in range(8):
        body = get(host, balancer, cafiles[balancer])
        assert body["scheme"] == "https"
        assert body["remote_addr"] == address, f"the app saw {body['remote_addr']}, not the client {address}"
        assert body["host"] == balancer
        seen.add(body["server"])
    assert seen == set(WEB), f"requests reached {seen} only"
    print(f"\n[lb] {balancer}: round robin over {sorted(seen)}, client address {address} reaches the app")


def test_apache_logs_the_clients_address(host, cafiles):
    address = client_address(host)
    marker = f"/log-marker-{time.time_ns()}"
    for _ in range(2):
        host.run_expect([0], f"curl -s -o /dev/null --cacert {cafiles['lb-bookworm']} https://lb-bookworm{marker}")
    logged = [node(web).check_output(f"grep -h {marker} /var/log/apache2/django-app-access.log || true") for web in WEB]
    lines = [line for text in logged for line in text.splitlines()]
    assert lines, "no web host logged the request"
    assert all(line.startswith(address + " ") for line in lines), lines


def test_the_clients_address_cannot_be_spoofed(host, cafiles):
    address = client_address(host)
    forged = ("X-Forwarded-For: 203.0.113.9", "X-Real-IP: 203.0.113.9")
    body = get(host, "lb-trixie", cafiles["lb-trixie"], headers=forged)
    assert body["remote_addr"] == address
    # A client that reaches a web host directly, without the balancer's PROXY header, is refused.
    direct = host.run("curl -sk -o /dev/null -w '%{http_code}' https://lb-web-trixie/")
    assert direct.rc != 0 or direct.stdout in ("000", "400"), direct.stdout


@pytest.mark.parametrize("balancer", BALANCERS)
def test_public_tls_is_mozilla_intermediate_with_hsts(host, cafiles, balancer):
    s_client = f"echo | timeout 10 openssl s_client -connect {balancer}:443 -servername {balancer}"
    assert host.run(f"{s_client} -tls1_1").rc != 0, "TLS 1.1 accepted"
    assert host.run(f"{s_client} -tls1_2 -cipher AES128-SHA").rc != 0, "a CBC cipher outside the profile accepted"
    assert host.run(f"{s_client} -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256").rc == 0
    verified = host.run(f"{s_client} -tls1_3 -CAfile {cafiles[balancer]} -verify_return_error 2>&1")
    assert "Verify return code: 0 (ok)" in verified.stdout, verified.stdout[-1500:]
    headers = host.check_output(f"curl -sI --http2 --cacert {cafiles[balancer]} https://{balancer}/")
    assert headers.startswith("HTTP/2 200"), headers
    hsts = [line for line in headers.splitlines() if line.lower().startswith("strict-transport-security")]
    assert hsts == ["strict-transport-security: max-age=63072000; includeSubDomains"], hsts
    redirect = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{balancer}/a?b=1")
    assert redirect == f"301 https://{balancer}/a?b=1", redirect


@pytest.mark.parametrize("balancer", BALANCERS)
def test_the_balancer_checks_each_web_hosts_readiness_over_verified_tls(balancer):
    servers = stat(balancer)
    assert set(servers) == set(WEB)
    for name, row in servers.items():
        assert row["status"] == "UP", (name, row["status"], row["check_status"])
        assert row["check_status"] == "L7OK", (name, row["check_status"])
        assert row["check_code"] == "200", (name, row["check_code"])


def test_a_web_host_with_another_ca_is_not_trusted():
    """lb-bookworm given another CA for the web hosts: every check fails at the TLS handshake."""
    lb = node("lb-bookworm")
    ca = "/etc/haproxy/backend-ca.crt"
    lb.run_expect([0], f"cp -a {ca} /tmp/backend-ca.keep && cp /etc/haproxy/tls/local-ca.crt {ca}")
    try:
        lb.run_expect([0], "systemctl reload haproxy")
        wait_for(
            lambda: all(row["status"].startswith("DOWN") for row in stat("lb-bookworm").values()),
            timeout=30,
            message="the web hosts marked down under a CA that did not sign them",
        )
        checks = {name: row["check_status"] for name, row in stat("lb-bookworm").items()}
        assert all(status.startswith("L6") for status in checks.values()), checks
    finally:
        lb.run_expect([0], f"cp -a /tmp/backend-ca.keep {ca} && systemctl reload haproxy")
    wait_for(
        lambda: all(row["status"] == "UP" for row in stat("lb-bookworm").values()),
        timeout=30,
        message="the web hosts up again under their CA",
    )


@pytest.mark.parametrize("balancer", BALANCERS)
def test_a_host_that_is_not_ready_leaves_the_pool_and_comes_back(host, cafiles, balancer):
    web = node("lb-web-trixie")
    all_up(balancer)
    with Load(host, balancer, cafiles[balancer]) as load:
        web.run_expect([0], "touch /srv/django-app/shared/not-ready")
        try:
            down = wait_for(
                lambda: stat(balancer)["lb-web-trixie"]["status"].startswith("DOWN"),
                timeout=20,
                message="lb-web-trixie down after its readiness check fails",
            )
            served = {get(host, balancer, cafiles[balancer])["server"] for _ in range(6)}
            assert served == {"lb-web-bookworm"}, served
        finally:
            web.run_expect([0], "rm -f /srv/django-app/shared/not-ready")
        up = wait_for(
            lambda: stat(balancer)["lb-web-trixie"]["status"] == "UP",
            timeout=20,
            message="lb-web-trixie back once ready",
        )
    print(f"\n[lb] {balancer}: not ready -> down in {down:.1f} s, ready -> up in {up:.1f} s; {load.result}")
    assert load.result["failures"] == 0, load.result


@pytest.mark.parametrize("balancer", BALANCERS)
def test_reloads_drop_no_request_and_keep_a_drained_server_drained(host, cafiles, balancer):
    lb = node(balancer)
    all_up(balancer)
    runtime(balancer, "set server web/lb-web-bookworm state drain")
    try:
        with Load(host, balancer, cafiles[balancer]) as load:
            for _ in range(3):
                lb.run_expect([0], "systemctl reload haproxy")
                wait_for(
                    lambda: lb.run("systemctl is-active haproxy").stdout.strip() == "active",
                    timeout=20,
                    message="haproxy active after its reload",
                )
            assert stat(balancer)["lb-web-bookworm"]["status"] == "DRAIN", "a reload forgot the drain"
            served = {get(host, balancer, cafiles[balancer])["server"] for _ in range(6)}
            assert served == {"lb-web-trixie"}, f"a drained server got new requests: {served}"
    finally:
        runtime(balancer, "set server web/lb-web-bookworm state ready")
    print(f"\n[lb] {balancer}: 3 reloads under load: {load.result}")
    assert load.result["requests"] > 0
    assert load.result["failures"] == 0, load.result


def test_the_acme_certificate_renews_without_dropping_a_request(host, cafiles):
    lb = node("lb-trixie")

    def serial() -> str:
        s_client = "echo | openssl s_client -connect lb-trixie:443 -servername lb-trixie 2>/dev/null"
        out = host.check_output(f"{s_client} | openssl x509 -noout -serial")
        return out.strip().split("=", 1)[1]

    before = serial()
    master = lb.check_output("systemctl show -p MainPID --value haproxy")
    with Load(host, "lb-trixie", cafiles["lb-trixie"]) as load:
        renew = lb.run(
            f"REQUESTS_CA_BUNDLE={ACME_CA} certbot renew --force-renewal --server {PEBBLE} --no-random-sleep-on-renew"
        )
        assert renew.rc == 0, renew.stdout + renew.stderr
        wait_for(lambda: serial() != before, timeout=30, message="the renewed certificate served")
    assert lb.check_output("systemctl show -p MainPID --value haproxy") == master, "HAProxy restarted, not reloaded"
    print(f"\n[lb] lb-trixie: renewal under load: {load.result}")
    assert load.result["failures"] == 0, load.result


def served_names(host, balancer: str) -> set[str]:
    out = host.check_output(
        f"echo | openssl s_client -connect {balancer}:443 -servername {balancer} 2>/dev/null"
        " | openssl x509 -noout -ext subjectAltName"
    )
    return {name.strip().removeprefix("DNS:") for name in out.splitlines()[-1].split(",")}


def test_the_acme_certificate_follows_the_configured_names(host):
    """An added name is issued for, a removed one leaves the certificate, the same ones do nothing."""
    assert served_names(host, "lb-trixie") == {"lb-trixie"}
    added = run_role("loadbalancer", "lb-trixie", {"loadbalancer_server_aliases": ["www.lb-trixie.test"]})
    assert added.returncode == 0, added.output[-3000:]
    assert served_names(host, "lb-trixie") == {"lb-trixie", "www.lb-trixie.test"}
    removed = run_role("loadbalancer", "lb-trixie")
    assert removed.returncode == 0, removed.output[-3000:]
    assert served_names(host, "lb-trixie") == {"lb-trixie"}
    again = run_role("loadbalancer", "lb-trixie")
    assert again.recap("lb-trixie").get("changed") == 0, again.output[-3000:]


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"loadbalancer_backend_ca": ""}, "loadbalancer_backend_ca"),
        ({"loadbalancer_backend_group": "nosuchgroup"}, "loadbalancer_backend_group"),
        ({"loadbalancer_tls_mode": "acme", "loadbalancer_acme_email": "ops"}, "loadbalancer_acme_email"),
        ({"loadbalancer_tls_mode": "provided"}, "loadbalancer_tls_cert"),
        ({"loadbalancer_tls_mode": "plaintext"}, "loadbalancer_tls_mode"),
        # The web hosts would get plaintext or no client address (a cross-tier rule).
        ({"apache_proxy_protocol": False}, "apache_proxy_protocol"),
        ({"apache_tls_mode": "selfsigned"}, "apache_tls_mode"),
    ],
)
def test_bad_input_is_refused_before_any_change(overrides, variable):
    run = run_role("loadbalancer", "lb-bookworm", overrides)
    assert_refused_before_any_change(run, "lb-bookworm", variable)
