"""Credentials per AWS account: a named profile, or a role to assume, for the channels of that
account; every other account uses the default credential chain.

botocore's own providers do the work: a profile resolves as the AWS CLI would (static keys,
`role_arn` with `source_profile`, SSO, ...); a `role_arn` entry uses botocore's AssumeRole
fetcher behind refreshable credentials, which fetch new ones before the old expire (15 minutes
ahead, or at once when fewer remain). STS is reached as botocore configures it, so
`AWS_ENDPOINT_URL_STS` points it elsewhere (a local STS in tests).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiobotocore.credentials import (
    AioAssumeRoleCredentialFetcher,
    AioDeferredRefreshableCredentials,
)
from aiobotocore.session import AioSession
from botocore.credentials import CredentialProvider

ACCOUNT_ID = re.compile(r"[0-9]{12}")  # AWS account ids are 12 digits
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}")
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")  # STS's ExternalId shape
DEFAULT_SESSION_NAME = "metadata-gateway"  # shows in the account's CloudTrail as who called
MIN_DURATION_S, MAX_DURATION_S = 900, 43_200  # what STS AssumeRole accepts
_KEYS = frozenset({"profile", "role_arn", "external_id", "duration_seconds", "session_name"})


@dataclass(frozen=True, slots=True)
class AccountCredentials:
    """How to call one account: through a named profile, or by assuming a role."""

    account: str
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    duration_seconds: int | None = None  # of each assumed-role credential; STS's default if None
    session_name: str = DEFAULT_SESSION_NAME

    def __post_init__(self) -> None:
        where = f"accounts.{self.account}"
        if ACCOUNT_ID.fullmatch(self.account) is None:
            raise ValueError(f"{where}: an account id is 12 digits")
        if (self.profile is None) == (self.role_arn is None):
            raise ValueError(f"{where}: give either profile or role_arn, not both or neither")
        if self.profile is not None and not self.profile:
            raise ValueError(f"{where}: profile must name a profile")
        if self.role_arn is not None and ROLE_ARN.fullmatch(self.role_arn) is None:
            raise ValueError(f"{where}: role_arn must be an IAM role ARN")
        if self.profile is not None and (self.external_id or self.duration_seconds):
            raise ValueError(f"{where}: external_id and duration_seconds go with role_arn")
        if self.external_id is not None and EXTERNAL_ID.fullmatch(self.external_id) is None:
            raise ValueError(f"{where}: external_id must be 2-1224 characters of [\\w+=,.@:/-]")
        if self.duration_seconds is not None and not (
            MIN_DURATION_S <= self.duration_seconds <= MAX_DURATION_S
        ):
            raise ValueError(f"{where}: duration_seconds must be {MIN_DURATION_S}-{MAX_DURATION_S}")

    def __repr__(self) -> str:
        how = f"profile={self.profile}" if self.profile else f"role={self.role_arn}"
        return f"<AccountCredentials {self.account} {how}>"


def parse_accounts(value: object) -> dict[str, AccountCredentials]:
    """The `[accounts."<id>"]` tables of a TOML file; ValueError naming the first problem."""
    if not isinstance(value, dict):
        raise ValueError('accounts must be [accounts."<12-digit id>"] tables')
    parsed: dict[str, AccountCredentials] = {}
    for account, entry in value.items():
        if not isinstance(entry, dict):
            raise ValueError(f"accounts.{account} must be a table")
        unknown = entry.keys() - _KEYS
        if unknown:
            raise ValueError(f"accounts.{account}: unknown key {sorted(unknown)[0]!r}")
        duration = entry.get("duration_seconds")
        texts = {k: entry.get(k) for k in _KEYS - {"duration_seconds"}}
        if any(v is not None and not isinstance(v, str) for v in texts.values()) or (
            duration is not None and (isinstance(duration, bool) or not isinstance(duration, int))
        ):
            raise ValueError(f"accounts.{account}: values are strings (duration_seconds: int)")
        parsed[account] = AccountCredentials(
            account=account,
            profile=texts["profile"],
            role_arn=texts["role_arn"],
            external_id=texts["external_id"],
            duration_seconds=duration,
            session_name=texts["session_name"] or DEFAULT_SESSION_NAME,
        )
    return parsed


class _AssumeRoleProvider(CredentialProvider):  # type: ignore[misc]
    """Credentials of a role, assumed with the default chain's credentials, refreshed by
    botocore before they expire."""

    METHOD = "assume-role-for-account"
    CANONICAL_NAME = "custom-assume-role-for-account"

    def __init__(self, spec: AccountCredentials, *, source: AioSession, region: str) -> None:
        super().__init__()
        self._spec = spec
        self._source = source
        self._region = region

    async def load(self) -> Any:
        spec = self._spec
        extra: dict[str, Any] = {"RoleSessionName": spec.session_name}
        if spec.external_id:
            extra["ExternalId"] = spec.external_id
        if spec.duration_seconds:
            extra["DurationSeconds"] = spec.duration_seconds
        fetcher = AioAssumeRoleCredentialFetcher(
            client_creator=functools.partial(self._source.create_client, region_name=self._region),
            source_credentials=await self._source.get_credentials(),
            role_arn=spec.role_arn,
            extra_args=extra,
        )
        return AioDeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method=self.METHOD
        )


def account_session(spec: AccountCredentials, *, region: str) -> AioSession:
    """A botocore session whose clients call as `spec` says."""
    if spec.profile is not None:
        return AioSession(profile=spec.profile)
    session = AioSession()
    resolver = session.get_component("credential_provider")
    # First in the chain: a client of this session never falls back to the default keys.
    resolver.providers.insert(0, _AssumeRoleProvider(spec, source=AioSession(), region=region))
    return session


def account_sessions(
    accounts: Mapping[str, AccountCredentials], *, region: str
) -> dict[str, AioSession]:
    """One session per configured account."""
    return {account: account_session(spec, region=region) for account, spec in accounts.items()}
