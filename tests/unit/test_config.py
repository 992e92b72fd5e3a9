"""The config parser: the file format, every key's validation, and properties."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lqos.daemon.config import (
    COERCERS,
    Config,
    ConfigError,
    FleetServer,
    load_config,
    parse_config,
    read_config_file,
    render_config,
)
from lqos.measure.grading import GradeThresholds


def test_defaults_when_there_is_no_file():
    config, warnings = load_config(None)
    assert config == Config()
    assert config.port == "tcp:8000" and config.probe_port == 8005
    assert warnings == ()


def test_comments_blank_lines_quotes_and_hashes_in_values():
    text = (
        "# Branding\n"
        "\n"
        "sponsor_name = \"  Example Fibre  \"\n"
        "sponsor_city='Springfield, IL'\n"
        "sponsor_url=https://fibre.example/#speed\n"
        "   # indented comment\n"
    )
    values = parse_config(text, "x.conf").values
    assert values == {
        "sponsor_name": "  Example Fibre  ",
        "sponsor_city": "Springfield, IL",
        "sponsor_url": "https://fibre.example/#speed",
    }


def test_typed_values():
    text = (
        "telemetry_max_tests=250\n"
        "trusted_proxies=10.0.0.0/8, 2001:db8::/32\n"
        "port=443\n"
        "probe_port=9005\n"
        "grade_thresholds_ms=5,20,60,200,400\n"
    )
    values = parse_config(text).values
    assert values["telemetry_max_tests"] == 250
    assert values["trusted_proxies"] == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert values["port"] == "tcp:443"
    assert values["probe_port"] == 9005
    assert values["grade_thresholds_ms"] == GradeThresholds(5, 20, 60, 200, 400)


@pytest.mark.parametrize(
    "line, reason",
    [
        ("telemetry_max_tests=lots", "telemetry_max_tests: 'lots' is not a whole number"),
        ("telemetry_max_tests=0", "telemetry_max_tests: 0 is outside 1..1000000"),
        ("probe_port=70000", "probe_port: 70000 is outside 1..65535"),
        ("sponsor_url=ftp://x", "sponsor_url: 'ftp://x' is not an http:// or https:// URL"),
        ("webhook_secret=short", "webhook_secret: must be empty or at least 16 characters long"),
        ("trusted_proxies=10.0.0.0/8,nonsense", "trusted_proxies: 'nonsense' is not an IP address"),
        ("port=http:80", "port: 'http:80' is not a port number or an endpoint"),
        ("grade_thresholds_ms=5,30,20,200,400", "strictly increasing"),
        ("grade_thresholds_ms=5,30", "expected 5 grade thresholds"),
        ('sponsor_name="unterminated', "unterminated quote"),
        ("just some words", "expected key=value"),
        ("Bad-Key=1", "is not a valid key name"),
        ("listen_address=localhost", "listen_address: 'localhost' is not an IP address"),
        ("telemetry_database=mysql://db/lqos", "telemetry_database: must be empty (SQLite in data_dir) or postgresql://"),
        ("telemetry_database=postgresql://db.example.net", "telemetry_database: must be empty"),
        ("telemetry_database=postgresql://db.example.net/lqos?colour=blue",
         'libpq cannot read it: invalid URI query parameter: "colour"'),
        ("telemetry_database=postgresql://db.example.net:5x/lqos", "the port '5x' is not a number"),
        ("server_id=pop north", "server_id: 'pop north' must be 1 to 64 letters, digits, dots, dashes or underscores"),
        ("server_id=" + "x" * 65, "must be 1 to 64 letters"),
        ("fleet_max_age_days=-1", "fleet_max_age_days: -1 is outside 0..100000"),
        ("nq_port=65536", "nq_port: 65536 is outside 0..65535"),
        ("nq_bulk_seconds=0.5", "nq_bulk_seconds"),
        ("nq_connections_per_ip=0", "nq_connections_per_ip: 0 is outside 1..1000000"),
    ],
)
def test_bad_value_names_file_line_and_reason(line, reason):
    with pytest.raises(ConfigError) as raised:
        parse_config(f"# first line\nsponsor_name=ok\n{line}\n", "/etc/lqos_test.conf")
    message = str(raised.value)
    assert message.startswith("/etc/lqos_test.conf:3: ")
    assert reason in message


def test_unknown_key_and_repeated_key_are_warnings():
    parsed = parse_config("colour=blue\nsponsor_name=A\nsponsor_name=B\n", "f.conf")
    assert parsed.values == {"sponsor_name": "B"}
    assert parsed.warnings == (
        "f.conf:1: unknown key 'colour' ignored",
        "f.conf:3: sponsor_name overrides line 2",
    )


def test_command_line_overrides_the_file(tmp_path):
    path = tmp_path / "lqos_test.conf"
    path.write_text("port=tcp:9000\nsponsor_name=File\n")
    config, _ = load_config(str(path), {"port": "tcp:9100"})
    assert config.port == "tcp:9100"
    assert config.sponsor_name == "File"


def test_bad_command_line_value_says_so():
    with pytest.raises(ConfigError, match="^command line: probe_port: 'x' is not a whole number"):
        load_config(None, {"probe_port": "x"})


def test_two_children_on_one_port_is_refused():
    with pytest.raises(ConfigError, match="gaming_port and probe_port are both 8005"):
        load_config(None, {"gaming_port": "8005"})


def test_the_networkquality_port_runs_only_with_tls_and_may_not_share_a_port():
    assert not load_config(None, {})[0].nq_enabled
    with_tls = {"tls_cert": "/etc/c.pem", "tls_key": "/etc/k.pem"}
    assert load_config(None, with_tls)[0].nq_enabled
    assert not load_config(None, with_tls | {"nq_port": "0"})[0].nq_enabled
    with pytest.raises(ConfigError, match="nq_port and load_port are both 8006"):
        load_config(None, with_tls | {"nq_port": "8006"})


def test_unreadable_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_config_file(str(tmp_path / "missing.conf"))
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"sponsor_name=\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_config_file(str(binary))


def test_oversized_file_is_refused():
    with pytest.raises(ConfigError, match="larger than"):
        parse_config("# padding\n" * 10_000)


# --- properties ---

printable_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\n\r\x85\u2028\u2029"),
    max_size=80,
)


@given(name=printable_values, city=printable_values)
def test_free_text_values_round_trip(name, city):
    text = render_config([("sponsor_name", name), ("sponsor_city", city)])
    values = parse_config(text).values
    assert values == {"sponsor_name": name, "sponsor_city": city}


@given(number=st.integers(min_value=1, max_value=65535))
def test_port_numbers_round_trip(number):
    assert parse_config(f"probe_port={number}\n").values["probe_port"] == number
    assert parse_config(f"port={number}\n").values["port"] == f"tcp:{number}"


@given(st.text(max_size=400))
def test_any_text_parses_or_fails_with_a_config_error(text):
    try:
        parsed = parse_config(text, "fuzz.conf")
    except ConfigError as error:
        assert str(error).startswith("fuzz.conf")
    else:
        assert set(parsed.values) <= set(COERCERS)
        Config(**parsed.values)


def test_the_example_file_parses_without_warnings():
    from daemon import REPO

    parsed = read_config_file(str(REPO / "etc" / "lqos_test.conf.example"))
    assert parsed.warnings == ()
    assert parsed.values["sponsor_name"] == "Example Fibre"
    documented = (REPO / "etc" / "lqos_test.conf.example").read_text()
    for key in COERCERS:
        assert f"{key}=" in documented, f"{key} is not documented in the example"


@pytest.mark.parametrize("raw, expected", [("on", True), ("Yes", True), ("true", True), ("off", False), ("no", False)])
@pytest.mark.parametrize("key", ["quick_schedule", "virtual_household"])
def test_on_off_keys_are_switches(key, raw, expected):
    assert parse_config(f"{key}={raw}\n").values[key] is expected


def test_a_switch_that_is_neither_on_nor_off_is_refused_with_its_line():
    with pytest.raises(ConfigError, match=r"x.conf:2: .*'maybe' is not on or off"):
        parse_config("sponsor_name=A\nquick_schedule=maybe\n", "x.conf")


# --- a fleet's servers: servers= and servers_file= ---


def test_servers_are_label_url_pairs_and_the_file_may_name_where_to_time_each(tmp_path):
    parsed = parse_config("servers=Oslo nord=https://oslo.example.net/, Bergen=http://10.0.0.2:8000\n")
    assert parsed.values["servers"] == (FleetServer("Oslo nord", "https://oslo.example.net"),
                                        FleetServer("Bergen", "http://10.0.0.2:8000"))
    listed = tmp_path / "servers.json"
    listed.write_text('[{"label": "Oslo", "url": "https://oslo.example.net", '
                      '"ping_url": "https://oslo.example.net:9005/ping"}]')
    config_file = tmp_path / "lqos_test.conf"
    config_file.write_text(f"servers_file={listed}\n")
    config, _ = load_config(str(config_file))
    assert config.servers == (FleetServer("Oslo", "https://oslo.example.net", "https://oslo.example.net:9005/ping"),)


@pytest.mark.parametrize("value, reason", [
    ("Oslo", "'Oslo' is not LABEL=URL"),
    ("Oslo=ftp://oslo.example.net", "is not an http:// or https:// URL"),
    ("Oslo=https://oslo.example.net/test", "must be a base URL"),
    ("Oslo=https://oslo.example.net/?a=1", "must be a base URL"),
    ("=https://oslo.example.net", "a server needs a label"),
    ("A=https://a.example.net, A=https://b.example.net", "two servers have the same label"),
    ("A=https://a.example.net, B=https://a.example.net", "two servers have the same URL"),
    (",".join(f"S{n}=https://s{n}.example.net" for n in range(65)), "more than 64 servers"),
])
def test_a_bad_servers_line_names_what_is_wrong(value, reason):
    with pytest.raises(ConfigError, match="servers: ") as raised:
        parse_config(f"servers={value}\n", "f.conf")
    assert reason in str(raised.value)


@pytest.mark.parametrize("content, reason", [
    ("not json", "not JSON"),
    ('{"label": "Oslo"}', "must be a JSON list"),
    ('[{"label": "Oslo", "url": "https://o.example", "weight": 2}]', "server 1: only the strings label, url"),
    ('[{"label": "Oslo", "url": 5}]', "server 1: only the strings"),
    ('[{"label": "Oslo", "url": "https://o.example"}, {"label": "", "url": "https://b.example"}]',
     "server 2: a server needs a label"),
    ('[{"label": "Oslo", "url": "https://o.example", "ping_url": "gopher://o"}]', "is not an http://"),
    ("[" + " " * (64 * 1024) + "]", "larger than 65536 bytes"),
])
def test_a_bad_servers_file_is_refused_naming_the_file(tmp_path, content, reason):
    listed = tmp_path / "servers.json"
    listed.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_config(None, {"servers_file": str(listed)})
    assert str(raised.value).startswith(f"{listed}: ") and reason in str(raised.value)


def test_servers_and_servers_file_together_or_a_missing_file_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="set servers or servers_file, not both"):
        load_config(None, {"servers": "A=https://a.example", "servers_file": str(tmp_path / "s.json")})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(None, {"servers_file": str(tmp_path / "missing.json")})
