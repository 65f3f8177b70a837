"""Reload instead of restart, a bad configuration that must not take the site down, bad input."""

from __future__ import annotations

import pytest

from baseline_testlib import assert_refused_before_any_change, instance_name, run_role

# Debian 13, the primary release.
testinfra_hosts = ["ansible://apache-trixie"]

CONVERGE = {"apache_server_name": "{{ inventory_hostname }}", "apache_tls_mode": "selfsigned"}


def main_pid(host) -> int:
    return int(host.check_output("systemctl show -p MainPID --value apache2"))


def test_a_config_change_reloads_without_a_restart(host):
    pid = main_pid(host)
    run = run_role("apache", instance_name(host), {**CONVERGE, "apache_content_security_policy": "default-src 'none'"})
    assert run.returncode == 0, run.output[-3000:]
    assert main_pid(host) == pid, "Apache was restarted for a change a reload applies"
    assert "default-src 'none'" in host.check_output("curl -skI https://localhost/")
    assert run_role("apache", instance_name(host), CONVERGE).returncode == 0


def test_a_broken_configuration_never_takes_the_site_down(host):
    pid = main_pid(host)
    run = run_role("apache", instance_name(host), {**CONVERGE, "apache_extra_vhost_config": "ThisIsNotADirective on"})
    assert run.returncode != 0, "a configuration that fails configtest was accepted"
    assert "ThisIsNotADirective" in run.output
    assert "ThisIsNotADirective" not in host.file("/etc/apache2/sites-available/django-app.conf").content_string
    assert main_pid(host) == pid
    assert host.check_output("curl -sk -o /dev/null -w '%{http_code}' https://localhost/") == "200"
    repaired = run_role("apache", instance_name(host), CONVERGE)
    assert repaired.returncode == 0, repaired.output[-3000:]


def test_a_virtualenv_from_another_python_is_refused_before_any_change(host):
    # A venv kept from Debian 11's Python, say, next to the real one.
    host.run_expect(
        [0], "mkdir -p /tmp/old-venv && printf 'home = /usr/bin\\nversion = 3.9.2\\n' > /tmp/old-venv/pyvenv.cfg"
    )
    run = run_role("apache", instance_name(host), {**CONVERGE, "apache_wsgi_python_home": "/tmp/old-venv"})
    assert_refused_before_any_change(run, instance_name(host), "apache_wsgi_python_home")
    assert "embeds Python 3.13" in run.output, run.output[-2000:]


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"apache_tls_mode": "acme", "apache_acme_email": ""}, "apache_acme_email"),
        (
            {"apache_tls_mode": "acme", "apache_acme_email": "ops@example.org", "apache_acme_domains": []},
            "apache_acme_domains",
        ),
        ({"apache_tls_mode": "provided", "apache_tls_cert": "-----BEGIN CERTIFICATE-----\nx\n"}, "apache_tls_key"),
        ({"apache_tls_profile": "paranoid"}, "apache_tls_profile"),
        ({"apache_wsgi_user": "www-data"}, "apache_wsgi_user"),
    ],
)
def test_bad_input_is_refused_before_any_change(host, overrides, variable):
    run = run_role("apache", instance_name(host), {**CONVERGE, **overrides})
    assert_refused_before_any_change(run, instance_name(host), variable)
