"""The [accounts] tables and the events settings: what is accepted, and what stops the start."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadata_gateway.config import ConfigError, load_settings
from metadata_gateway.sending.accounts import AccountCredentials


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_settings(config_file=str(path), environ={})


def test_profile_and_role_accounts_load(tmp_path: Path) -> None:
    """A profile account and a role account, with its optional keys, load as written."""
    settings = load(
        tmp_path,
        '[accounts."111111111111"]\nprofile = "a"\n\n'
        '[accounts."222222222222"]\nrole_arn = "arn:aws:iam::222222222222:role/gw"\n'
        'external_id = "ext-1"\nduration_seconds = 900\n',
    )
    assert settings.accounts == {  # type: ignore[attr-defined]
        "111111111111": AccountCredentials("111111111111", profile="a"),
        "222222222222": AccountCredentials(
            "222222222222",
            role_arn="arn:aws:iam::222222222222:role/gw",
            external_id="ext-1",
            duration_seconds=900,
        ),
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[accounts."1234"]\nprofile = "a"\n', "12 digits"),
        ('[accounts."111111111111"]\n', "either profile or role_arn"),
        (
            '[accounts."111111111111"]\nprofile = "a"\nrole_arn = "arn:aws:iam::1:role/x"\n',
            "either profile or role_arn",
        ),
        ('[accounts."111111111111"]\nrole_arn = "arn:aws:s3:::b"\n', "IAM role ARN"),
        ('[accounts."111111111111"]\nprofile = "a"\nexternal_id = "xy"\n', "go with role_arn"),
        (
            '[accounts."111111111111"]\nrole_arn = "arn:aws:iam::111111111111:role/r"\n'
            "duration_seconds = 60\n",
            "900-43200",
        ),
        ('[accounts."111111111111"]\nprofile = "a"\nkey = "AKID"\n', "unknown key 'key'"),
        ('[accounts."111111111111"]\nprofile = 1\n', "strings"),
    ],
)
def test_bad_accounts_stop_the_start_with_a_clear_message(
    tmp_path: Path, text: str, says: str
) -> None:
    """Each mistake names the account and what is wrong."""
    with pytest.raises(ConfigError, match=says):
        load(tmp_path, text)


def test_events_settings_from_flags_environment_and_file(tmp_path: Path) -> None:
    """events_queue_url from MG_EVENTS_QUEUE_URL, the flag wins; an SQS endpoint alone is an
    error."""
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/ivs-events"
    settings = load_settings(environ={"MG_EVENTS_QUEUE_URL": queue})
    assert settings.events_queue_url == queue
    flagged = load_settings(
        flags={"events_queue_url": "http://127.0.0.1:5000/1/q"},
        environ={"MG_EVENTS_QUEUE_URL": queue},
    )
    assert flagged.events_queue_url == "http://127.0.0.1:5000/1/q"
    with pytest.raises(ConfigError, match="sqs_endpoint_url"):
        load_settings(environ={"MG_SQS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    with pytest.raises(ConfigError, match="events_queue_url"):
        load_settings(environ={"MG_EVENTS_QUEUE_URL": "ivs-events"})
