"""Settings: defaults < TOML < MG_* environment < flags, each validated with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadata_gateway.config import ConfigError, Settings, load_settings

ARN = "arn:aws:ivs:us-west-2:123456789012:channel/abcdEFGH1234"


def test_sources_override_in_order(tmp_path: Path) -> None:
    """A flag beats the environment, which beats the file, which beats the default."""
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'port = 9000\nregion = "eu-west-1"\ndrain_timeout = 3\n[channels]\nmain = "{ARN}"\n'
    )
    settings = load_settings(
        flags={"config": str(path), "port": 9100},
        environ={"MG_PORT": "9050", "MG_REGION": "ap-south-1", "MG_LOCAL_IVS": "true"},
    )
    assert (settings.port, settings.region, settings.drain_timeout) == (9100, "ap-south-1", 3.0)
    assert settings.local_ivs is True
    assert dict(settings.channels) == {"main": ARN}
    assert settings.account_rate == Settings().account_rate
    assert load_settings(environ={"MG_REPLICA_ID": "gw-7f9c.a_1"}).replica_id == "gw-7f9c.a_1"


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"account_rate": 200}, {}, "account_rate must be 1-155"),
        ({"port": 70000}, {}, "port must be 0-65535"),
        ({}, {"MG_PORT": "eighty"}, "MG_PORT: 'eighty' is not a valid int"),
        ({}, {"MG_DRAIN_TIMEOUT": "0"}, "drain_timeout must be greater than 0"),
        ({"replica_id": "pod 1"}, {}, "replica_id must be 1-64 letters"),
        ({}, {"MG_REPLICA_ID": "x" * 65}, "replica_id must be 1-64 letters"),
    ],
)
def test_invalid_settings_name_the_setting(
    flags: dict[str, object], environ: dict[str, str], message: str
) -> None:
    """Each impossible value is refused at start with its name in the message."""
    with pytest.raises(ConfigError, match=message):
        load_settings(flags=flags, environ=environ)


def test_bad_config_file_is_refused(tmp_path: Path) -> None:
    """Unknown keys, wrong types and bad aliases in the TOML file are refused."""
    cases = {
        "colour = 1": "unknown setting 'colour'",
        'port = "80"': "port must be a int",
        '[channels]\nmain = "arn:aws:ivs:nope"': "is not an IVS channel ARN",
        "port = ": "not valid TOML",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_settings(flags={"config": str(path)}, environ={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(flags={"config": str(tmp_path / "missing.toml")}, environ={})


def test_tokens_come_from_the_config_or_a_tokens_file(tmp_path: Path) -> None:
    """[[tokens]] entries load as hashes with scopes and rates; mistakes are refused."""
    digest = "a" * 64
    path = tmp_path / "tokens.toml"
    path.write_text(
        f'[[tokens]]\nname = "quiz"\nsha256 = "{digest}"\nchannels = ["main"]\nrate = 5\n'
    )
    settings = load_settings(flags={"tokens_file": str(path)}, environ={})
    [token] = settings.tokens
    assert (token.name, token.sha256, token.channels, token.rate) == (
        "quiz",
        digest,
        ("main",),
        5.0,
    )
    bad = {
        '[[tokens]]\nname = "x"\ntoken = "plain"': "unknown key 'token'",
        '[[tokens]]\nname = "x"': "sha256 is required",
        '[[tokens]]\nname = "x"\nsha256 = "abc"': "sha256 must be 64 hex digits",
        f'[[tokens]]\nname = "x"\nsha256 = "{digest}"\nrate = 0': "rate must be greater than 0",
    }
    for text, message in bad.items():
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_settings(flags={"tokens_file": str(path)}, environ={})


def test_regions_come_as_a_list_or_a_comma_separated_variable(tmp_path: Path) -> None:
    """regions is a TOML list, or MG_REGIONS="a,b"."""
    assert load_settings(environ={"MG_REGIONS": "us-west-2, eu-west-1"}).regions == (
        "us-west-2",
        "eu-west-1",
    )
    path = tmp_path / "gateway.toml"
    path.write_text('regions = ["ap-south-1"]\n')
    assert load_settings(flags={"config": str(path)}, environ={}).regions == ("ap-south-1",)


def test_payload_encoding_from_every_source_and_per_channel(tmp_path: Path) -> None:
    """payload_encoding: flag, MG_ variable or TOML, and per channel by alias or ARN."""
    other = ARN.replace("abcdEFGH1234", "other0000001")
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'max_cue_bytes = 32768\n[channels]\nshow = "{ARN}"\n'
        '[channel_options."show"]\npayload_encoding = "deflate"\n'
    )
    settings = load_settings(flags={"config": str(path)}, environ={})
    assert (settings.encoding(ARN).value, settings.encoding(other).value) == ("deflate", "json")
    assert settings.max_cue_bytes == 32768
    by_env = load_settings(environ={"MG_PAYLOAD_ENCODING": "deflate"})
    assert by_env.encoding(other).value == "deflate"
    by_flag = load_settings(flags={"payload_encoding": "json"}, environ={})
    assert by_flag.encoding(ARN).value == "json"
    path.write_text(f'[channel_options."{other}"]\npayload_encoding = "json"\n')
    arn_options = load_settings(flags={"config": str(path), "payload_encoding": "deflate"})
    assert (arn_options.encoding(other).value, arn_options.encoding(ARN).value) == (
        "json",
        "deflate",
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"payload_encoding": "gzip"}, "payload_encoding must be one of json, deflate"),
        ({"max_cue_bytes": 70_000}, "max_cue_bytes must be 1024-65536"),
        ({"channel_options": {"nobody": {"payload_encoding": "deflate"}}}, "'nobody': not a"),
        ({"channel_options": {ARN: {"encoding": "deflate"}}}, "unknown option 'encoding'"),
    ],
)
def test_invalid_encoding_settings_are_refused(changes: dict[str, object], message: str) -> None:
    """A bad encoding, cue limit or channel option stops the start with a clear message."""
    with pytest.raises(ConfigError, match=message):
        Settings(**changes)  # type: ignore[arg-type]
