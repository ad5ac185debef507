"""Which account a request acts as: the access key id that signed it, mapped by `--account`.

IVS decides from the caller's credentials which account a request acts in; a resource of another
account is AccessDeniedException. The local IVS checks no signature, but it reads the key id
from the SigV4 `Authorization` header, so tests can give each account its own keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from metadata_gateway.local_ivs.errors import IvsError

ACCOUNT_ID = re.compile(r"[0-9]{12}")  # AWS account ids are 12 digits
# `Credential=<key id>/<date>/<region>/<service>/aws4_request` in a SigV4 Authorization header.
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
# Any IVS resource ARN: the account is the fifth field.
_RESOURCE_ARN = re.compile(r"arn:aws:ivs:[a-z0-9-]+:([0-9]+):[a-z-]+/[a-zA-Z0-9-]+")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the access key id it was signed with (if any) and its account."""

    account: str
    access_key_id: str | None = None


_CALLER: ContextVar[Caller | None] = ContextVar("local_ivs_caller", default=None)


def parse_account_option(text: str) -> tuple[str, str]:
    """`KEY_ID=ACCOUNT` (the `--account` option) as a pair; ValueError if malformed."""
    key, sep, account = text.partition("=")
    if not sep or not key.strip() or ACCOUNT_ID.fullmatch(account.strip()) is None:
        raise ValueError(f"--account takes KEY_ID=ACCOUNT with a 12-digit account, not {text!r}")
    return key.strip(), account.strip()


def access_key_of(authorization: str | None) -> str | None:
    """The access key id a SigV4 `Authorization` header names, or None."""
    if not authorization:
        return None
    match = _CREDENTIAL.search(authorization)
    return match.group(1) if match else None


def caller_for(
    authorization: str | None, *, accounts: Mapping[str, str], default_account: str
) -> Caller:
    """The caller a request's `Authorization` header makes: a listed key's account, else the
    default one."""
    key = access_key_of(authorization)
    account = accounts.get(key, default_account) if key is not None else default_account
    return Caller(account, key)


@contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    """Run one operation as `caller`: the state names new resources in its account."""
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)


def current_caller() -> Caller | None:
    """The caller of the operation under way, or None outside one (admin API, Python calls)."""
    return _CALLER.get()


def acting_account(default: str) -> str:
    """The account of the operation under way, or `default` outside one."""
    caller = _CALLER.get()
    return caller.account if caller is not None else default


def owns(arn: str, default: str) -> bool:
    """Whether the resource `arn` is in the acting account (always, outside an operation)."""
    caller = _CALLER.get()
    if caller is None:
        return True
    match = _RESOURCE_ARN.fullmatch(arn)
    return match is None or match.group(1) == caller.account


def require_owner(arn: str) -> None:
    """Raise AccessDeniedException if `arn` (already validated) is another account's resource."""
    caller = _CALLER.get()
    match = _RESOURCE_ARN.fullmatch(arn)
    if caller is None or match is None or match.group(1) == caller.account:
        return
    raise IvsError(
        "AccessDeniedException",
        f"User: arn:aws:iam::{caller.account}:user/local is not authorized to access {arn}",
    )


def channel_account(channel_arn: str, default: str) -> str:
    """The account a channel ARN names (the default for a malformed one)."""
    match = _RESOURCE_ARN.fullmatch(channel_arn)
    return match.group(1) if match is not None and ":channel/" in channel_arn else default
