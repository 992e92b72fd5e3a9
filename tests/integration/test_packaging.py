"""What an installed daemon depends on: files it must be able to read, the unit,
the Debian packaging's consistency and the certificate script.

Building and installing the .deb takes minutes; that check is
``tests/packaging/check_deb.sh``, run by hand (docs/OPERATORS.md).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import lqos
from daemon import CHILD_ROLES, REPO, start_daemon, twistd_command

# Root reads any file; without these two capabilities it obeys file modes like
# any other user (the .venv's Python under /root stays usable, unlike with runuser).
DROP_FILE_CAPABILITIES = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def run_daemon_unprivileged(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """twistd as a user that cannot read what its mode forbids; it must not start."""
    prefix = DROP_FILE_CAPABILITIES if os.geteuid() == 0 else []
    return subprocess.run(
        prefix + twistd_command(*args, "--data-dir", str(tmp_path / "var")),
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def own_certificates(tmp_path, certificates) -> tuple[Path, Path]:
    """A copy of the test pair whose modes a test may change."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copyfile(certificates[0], cert)
    shutil.copyfile(certificates[1], key)
    return cert, key


@pytest.mark.parametrize("unreadable", ["certificate", "key"])
def test_unreadable_tls_file_refuses_to_start_and_names_it(tmp_path, own_certificates, unreadable):
    cert, key = own_certificates
    path = cert if unreadable == "certificate" else key
    path.chmod(0)
    result = run_daemon_unprivileged(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    assert result.returncode != 0
    assert f"cannot read TLS {unreadable} {path}: Permission denied" in result.stdout + result.stderr


def test_key_given_as_certificate_is_refused(tmp_path, own_certificates):
    cert, key = own_certificates
    result = run_daemon_unprivileged(tmp_path, "--tls-cert", str(key), "--tls-key", str(key))
    assert result.returncode != 0
    assert f"{key} is not a PEM certificate" in result.stdout + result.stderr


def test_unreadable_config_file_refuses_to_start(tmp_path):
    config = tmp_path / "lqos_test.conf"
    config.write_text("sponsor_name=Example Fibre\n")
    config.chmod(0)
    result = run_daemon_unprivileged(tmp_path, "--config", str(config))
    assert result.returncode != 0
    assert f"{config}: cannot read: Permission denied" in result.stdout + result.stderr


def test_data_directory_that_cannot_be_made_refuses_to_start(tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    prefix = DROP_FILE_CAPABILITIES if os.geteuid() == 0 else []
    result = subprocess.run(prefix + twistd_command("--data-dir", str(parent / "var")),
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"cannot create data directory {parent / 'var'}: Permission denied" in result.stdout + result.stderr


# --- TLS as browsers speak it ---


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory, certificates):
    running = start_daemon(tmp_path_factory.mktemp("tls"), tls=certificates)
    yield running
    running.stop()


# Twisted 26's TLS server answers a ClientHello that offers ALPN with an
# internal_error alert when the wrapped factory offers no protocol
# (IProtocolNegotiationFactory): every factory on a port must name one.
@pytest.mark.parametrize("role", ["main", *CHILD_ROLES])
def test_every_port_completes_a_browser_like_tls_handshake(tls_daemon, certificates, role):
    """Browsers offer ALPN (h2, http/1.1); urllib and websockets do not, so test it here."""
    context = ssl.create_default_context(cafile=certificates[0])
    context.set_alpn_protocols(["h2", "http/1.1"])
    port = tls_daemon.port if role == "main" else tls_daemon.child_ports[role]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() in (None, "http/1.1", "h2")


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def chained_daemon(tmp_path_factory):
    """A daemon whose certificate file is a leaf and its intermediate, as Let's Encrypt's fullchain.pem."""
    directory = tmp_path_factory.mktemp("chain")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (directory / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
    (directory / "leaf.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-x509", *key, "-days", "2", "-subj", "/CN=root", "-keyout", str(directory / "root.key"),
            "-out", str(directory / "root.pem"), "-addext", "basicConstraints=critical,CA:TRUE")
    for name, issuer, extensions in (("inter", "root", "ca.ext"), ("leaf", "inter", "leaf.ext")):
        openssl("req", *key, "-subj", f"/CN={name}", "-keyout", str(directory / f"{name}.key"),
                "-out", str(directory / f"{name}.csr"))
        openssl("x509", "-req", "-in", str(directory / f"{name}.csr"), "-CA", str(directory / f"{issuer}.pem"),
                "-CAkey", str(directory / f"{issuer}.key"), "-CAcreateserial", "-days", "2",
                "-extfile", str(directory / extensions), "-out", str(directory / f"{name}.pem"))
    (directory / "fullchain.pem").write_bytes((directory / "leaf.pem").read_bytes() + (directory / "inter.pem").read_bytes())
    running = start_daemon(directory / "daemon", config_text="virtual_household=off\n",
                           tls=(str(directory / "fullchain.pem"), str(directory / "leaf.key")),
                           tls_ca=str(directory / "root.pem"))
    yield running, str(directory / "root.pem")
    running.stop()


@pytest.mark.parametrize("role", ["main", "probe", "load", "upload", "nq"])
def test_every_port_sends_the_intermediate_of_a_full_chain(chained_daemon, role):
    """A client that trusts only the root verifies every port: Twisted's ssl: endpoint sent the leaf alone."""
    daemon, root = chained_daemon
    context = ssl.create_default_context(cafile=root)
    port = daemon.port if role == "main" else daemon.child_ports[role]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.getpeercert()["subject"] == ((("commonName", "leaf"),),)


# --- the systemd unit ---


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(REPO / "etc" / "lqos-bufferbloat.service")
    return parser


def test_unit_runs_twistd_in_the_foreground_as_its_own_user():
    service = unit()["Service"]
    assert service["ExecStart"] == "/opt/venvs/lqos-bufferbloat/bin/twistd --nodaemon --pidfile= lqos-bufferbloat"
    assert service["User"] == service["Group"] == "lqos-bufferbloat"
    assert service["WorkingDirectory"] == "/var/lib/lqos-bufferbloat"
    assert service["Restart"] == "on-failure"
    assert "StandardOutput" not in service  # the journal


def test_unit_is_hardened_and_may_bind_443_only():
    service = unit()["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["ReadWritePaths"] == "/var/lib/lqos-bufferbloat"
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"


def test_debian_symlinks_the_one_unit_file():
    link = REPO / "debian" / "lqos-bufferbloat.service"
    assert link.is_symlink() and link.resolve() == (REPO / "etc" / "lqos-bufferbloat.service").resolve()


# --- Debian packaging consistency (what would fail the .deb build late) ---


def test_changelog_version_is_the_code_version():
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    assert re.match(r"lqos-bufferbloat \(([^)]+)\)", first).group(1) == lqos.__version__


def install_requires() -> list[Requirement]:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    return [Requirement(line) for line in setup["options"]["install_requires"].strip().splitlines()]


def test_every_package_of_the_checkout_is_installed():
    """setup.cfg lists the packages by hand; a package left out works in the checkout and is missing from the .deb."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    listed = set(setup["options"]["packages"].split())
    in_checkout = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "lqos").rglob("__init__.py")}
    assert in_checkout - listed == set()


def test_pinned_requirements_satisfy_setup_cfg():
    pins = {}
    for line in (REPO / "debian" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    for requirement in install_requires():
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{requirement.name} is not pinned in debian/requirements.txt"
        assert requirement.specifier.contains(pins[name]), f"pin {name}=={pins[name]} breaks {requirement}"


def test_no_plugin_package_init_or_cache_is_shipped():
    tracked = subprocess.run(["git", "ls-files", "twisted", "lqos/plugins"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    assert "twisted/plugins/__init__.py" not in tracked
    assert not [path for path in tracked if path.endswith("dropin.cache")]


def test_conffile_is_the_example_with_the_packaged_data_dir():
    example = (REPO / "etc" / "lqos_test.conf.example").read_text()
    assert re.search(r"^#data_dir=", example, re.MULTILINE), "debian/rules rewrites the #data_dir= line"


@pytest.mark.parametrize("script", [
    "etc/install_service.sh", "etc/setup_ssl_certificates.sh", "tests/packaging/check_deb.sh",
    "debian/lqos-bufferbloat.postinst", "debian/lqos-bufferbloat.prerm", "debian/lqos-bufferbloat.postrm",
])
def test_shell_scripts_parse_and_are_executable(script):
    path = REPO / script
    assert os.access(path, os.X_OK)
    subprocess.run(["sh", "-n", str(path)], check=True)


# --- etc/setup_ssl_certificates.sh, with a stand-in certbot ---

FAKE_CERTBOT = textwrap.dedent("""\
    #!/bin/sh
    # Stands in for certbot certonly: records its arguments, makes a lineage.
    echo "$@" >> "$FAKE_CERTBOT_LOG"
    while [ $# -gt 0 ]; do
        case "$1" in
            --config-dir) dir=$2; shift ;;
            -d) domain=$2; shift ;;
        esac
        shift
    done
    sh "$CREATE_CERTS" "$dir/archive/$domain" "$domain" >/dev/null
    mkdir -p "$dir/live/$domain"
    ln -sf "../../archive/$domain/cert.pem" "$dir/live/$domain/fullchain.pem"
    ln -sf "../../archive/$domain/key.pem" "$dir/live/$domain/privkey.pem"
    chmod 700 "$dir/archive"
""")


@pytest.fixture
def certbot_setup(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the script installs files owned by root")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "certbot").write_text(FAKE_CERTBOT)
    (bin_dir / "certbot").chmod(0o755)
    config = tmp_path / "lqos_test.conf"
    config.write_text((REPO / "etc" / "lqos_test.conf.example").read_text())
    le_dir, tls_dir = tmp_path / "letsencrypt", tmp_path / "tls"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "FAKE_CERTBOT_LOG": str(tmp_path / "certbot.log"),
           "CREATE_CERTS": str(REPO / "etc" / "create_test_certificates.sh")}

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO / "etc" / "setup_ssl_certificates.sh"), "test.example.net", *extra,
             "--config", str(config), "--tls-dir", str(tls_dir), "--group", "nogroup",
             "--letsencrypt-dir", str(le_dir)],
            env=env, capture_output=True, text=True, timeout=60)

    return run, config, le_dir, tls_dir, tmp_path / "certbot.log"


def test_certificate_script_copies_the_pair_and_points_the_config_at_it(certbot_setup):
    run, config, le_dir, tls_dir, certbot_log = certbot_setup
    result = run()
    assert result.returncode == 0, result.stderr
    assert "--standalone" in certbot_log.read_text() and "-d test.example.net" in certbot_log.read_text()
    hook = le_dir / "renewal-hooks" / "deploy" / "lqos-bufferbloat"
    assert os.access(hook, os.X_OK)
    key = tls_dir / "privkey.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o640 and key.stat().st_gid == 65534  # nogroup
    assert key.read_bytes() == (le_dir / "live" / "test.example.net" / "privkey.pem").read_bytes()
    lines = config.read_text().splitlines()
    assert lines.count(f"tls_cert={tls_dir}/fullchain.pem") == 1
    assert lines.count(f"tls_key={tls_dir}/privkey.pem") == 1
    assert f"copied {le_dir}/live/test.example.net/fullchain.pem" in result.stdout
    assert "restart the daemon" in result.stdout  # no systemd here: says what is left to do

    again = run("--webroot", str(config.parent))
    assert again.returncode == 0, again.stderr
    assert f"--webroot -w {config.parent}" in certbot_log.read_text()
    assert config.read_text().splitlines().count(f"tls_cert={tls_dir}/fullchain.pem") == 1


def test_renewal_hook_keeps_the_old_pair_when_the_new_one_does_not_match(certbot_setup, tmp_path):
    run, config, le_dir, tls_dir, _ = certbot_setup
    assert run().returncode == 0
    before = (tls_dir / "fullchain.pem").read_bytes()
    lineage = le_dir / "live" / "test.example.net"
    subprocess.run(["sh", str(REPO / "etc" / "create_test_certificates.sh"), str(tmp_path / "other")],
                   check=True, capture_output=True)
    os.unlink(lineage / "privkey.pem")
    shutil.copyfile(tmp_path / "other" / "key.pem", lineage / "privkey.pem")
    hook = le_dir / "renewal-hooks" / "deploy" / "lqos-bufferbloat"
    result = subprocess.run([str(hook)], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "RENEWED_LINEAGE": str(lineage),
                                 "RENEWED_DOMAINS": "test.example.net"})
    assert result.returncode != 0 and "do not match" in result.stderr
    assert (tls_dir / "fullchain.pem").read_bytes() == before
    # A renewal of some other certificate on the host is none of its business.
    other = subprocess.run([str(hook)], capture_output=True, text=True, timeout=30,
                           env={**os.environ, "RENEWED_LINEAGE": "/nonexistent", "RENEWED_DOMAINS": "mail.example.net"})
    assert other.returncode == 0
