"""The IVS control-plane wire API (rest-json, as botocore sends it) over a LocalIvsState."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType

import orjson
from aiohttp import web

from metadata_gateway.local_ivs.accounts import Caller, acting_as, caller_for
from metadata_gateway.local_ivs.errors import UNKNOWN_OPERATION, IvsError, validation
from metadata_gateway.local_ivs.keys import state_of
from metadata_gateway.local_ivs.members import Members
from metadata_gateway.local_ivs.resources import ChannelChanges, Multitrack
from metadata_gateway.local_ivs.state import JsonObject, LocalIvsState
from metadata_gateway.local_ivs.stats import ACCEPTED, DISCONNECTED

logger = logging.getLogger(__name__)

Operation = Callable[[LocalIvsState, Members], JsonObject | None]
# The stats key for calls that name no operation; one key, so junk paths cannot grow the table.
UNKNOWN_OPERATION_STATS_KEY = "UnknownOperation"


def _multitrack(members: Members | None) -> Multitrack | None:
    if members is None:
        return None
    defaults = Multitrack()
    enabled = members.boolean("enabled")
    policy, resolution = members.string("policy"), members.string("maximumResolution")
    if enabled and (policy is None or resolution is None):
        missing = "policy" if policy is None else "maximumResolution"
        raise validation(f"multitrackInputConfiguration.{missing} is required when enabled is true")
    return Multitrack(
        enabled=defaults.enabled if enabled is None else enabled,
        policy=policy or defaults.policy,
        maximum_resolution=resolution or defaults.maximum_resolution,
    )


def channel_changes(body: Members) -> ChannelChanges:
    """The channel settings a CreateChannel or UpdateChannel body names, read once."""
    return ChannelChanges(
        name=body.string("name"),
        latency_mode=body.string("latencyMode"),
        channel_type=body.string("type"),
        authorized=body.boolean("authorized"),
        insecure_ingest=body.boolean("insecureIngest"),
        preset=body.string("preset"),
        recording_configuration_arn=body.string("recordingConfigurationArn"),
        playback_restriction_policy_arn=body.string("playbackRestrictionPolicyArn"),
        ad_configuration_arn=body.string("adConfigurationArn"),
        container_format=body.string("containerFormat"),
        multitrack=_multitrack(body.structure("multitrackInputConfiguration")),
    )


def _create_channel(state: LocalIvsState, body: Members) -> JsonObject:
    changes = channel_changes(body)
    return state.create_channel(changes, tags=body.string_map("tags"))


def _update_channel(state: LocalIvsState, body: Members) -> JsonObject:
    arn = body.required_string("arn")
    return state.update_channel(arn, channel_changes(body))


def _list_channels(state: LocalIvsState, body: Members) -> JsonObject:
    return state.list_channels(
        filter_by_name=body.string("filterByName"),
        filter_by_recording_configuration_arn=body.string("filterByRecordingConfigurationArn"),
        filter_by_playback_restriction_policy_arn=body.string(
            "filterByPlaybackRestrictionPolicyArn"
        ),
        filter_by_ad_configuration_arn=body.string("filterByAdConfigurationArn"),
        next_token=body.string("nextToken"),
        max_results=body.integer("maxResults"),
    )


def _list_streams(state: LocalIvsState, body: Members) -> JsonObject:
    filters = body.structure("filterBy")
    return state.list_streams(
        health=filters.string("health") if filters is not None else None,
        next_token=body.string("nextToken"),
        max_results=body.integer("maxResults"),
    )


def _get_stream_session(state: LocalIvsState, body: Members) -> JsonObject:
    channel_arn = body.required_string("channelArn")
    state.get_channel(channel_arn)  # ValidationException or ResourceNotFoundException first
    return state.sessions.get_stream_session(channel_arn, body.string("streamId"))


def _list_stream_sessions(state: LocalIvsState, body: Members) -> JsonObject:
    channel_arn = body.required_string("channelArn")
    state.get_channel(channel_arn)
    return state.sessions.list_stream_sessions(
        channel_arn, next_token=body.string("nextToken"), max_results=body.integer("maxResults")
    )


def _put_metadata(state: LocalIvsState, body: Members) -> None:
    state.put_metadata(body.required_string("channelArn"), body.required_string("metadata"))


def _required_list(body: Members, name: str) -> list[str]:
    values = body.string_list(name, required=True)
    return values if values is not None else []


def _required_map(body: Members, name: str) -> dict[str, str]:
    values = body.string_map(name, required=True)
    return values if values is not None else {}


# Operation name -> handler; the name is the request path (`POST /<name>`) except for tags.
OPERATIONS: Mapping[str, Operation] = MappingProxyType(
    {
        "CreateChannel": _create_channel,
        "GetChannel": lambda state, body: state.get_channel(body.required_string("arn")),
        "BatchGetChannel": lambda state, body: state.batch_get_channel(
            _required_list(body, "arns")
        ),
        "ListChannels": _list_channels,
        "UpdateChannel": _update_channel,
        "DeleteChannel": lambda state, body: state.delete_channel(body.required_string("arn")),
        "CreateStreamKey": lambda state, body: state.create_stream_key(
            body.required_string("channelArn"), tags=body.string_map("tags")
        ),
        "GetStreamKey": lambda state, body: state.get_stream_key(body.required_string("arn")),
        "BatchGetStreamKey": lambda state, body: state.batch_get_stream_key(
            _required_list(body, "arns")
        ),
        "ListStreamKeys": lambda state, body: state.list_stream_keys(
            body.required_string("channelArn"),
            next_token=body.string("nextToken"),
            max_results=body.integer("maxResults"),
        ),
        "DeleteStreamKey": lambda state, body: state.delete_stream_key(body.required_string("arn")),
        "GetStream": lambda state, body: state.get_stream(body.required_string("channelArn")),
        "ListStreams": _list_streams,
        "StopStream": lambda state, body: state.stop_stream(body.required_string("channelArn")),
        "GetStreamSession": _get_stream_session,
        "ListStreamSessions": _list_stream_sessions,
        "PutMetadata": _put_metadata,
        "TagResource": lambda state, body: state.tag_resource(
            body.required_string("resourceArn"), _required_map(body, "tags")
        ),
        "UntagResource": lambda state, body: state.untag_resource(
            body.required_string("resourceArn"), _required_list(body, "tagKeys")
        ),
        "ListTagsForResource": lambda state, body: state.list_tags_for_resource(
            body.required_string("resourceArn")
        ),
    }
)
# These answer through /tags/{resourceArn}, never through POST /<name>.
TAG_OPERATIONS = frozenset({"TagResource", "UntagResource", "ListTagsForResource"})
_TAG_OPERATION_BY_METHOD = MappingProxyType(
    {"POST": "TagResource", "DELETE": "UntagResource", "GET": "ListTagsForResource"}
)


def _headers() -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4())}


def error_response(error: IvsError) -> web.Response:
    """Return the rest-json error answer botocore turns into the modeled exception."""
    headers = {**_headers(), "x-amzn-ErrorType": error.name}
    body: dict[str, str] = {"exceptionMessage": error.message}
    if error.name == UNKNOWN_OPERATION:
        # Not a modeled error, so botocore reads only `message` into Error.Message.
        body["message"] = error.message
    return web.Response(
        status=error.status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def _success_response(answer: JsonObject | None) -> web.Response:
    if answer is None:
        return web.Response(status=204, headers=_headers())
    return web.Response(
        body=orjson.dumps(answer), content_type="application/json", headers=_headers()
    )


async def _read_body(request: web.Request) -> dict[str, object]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise validation("The request body is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise validation("The request body must be a JSON object")
    return decoded


def _caller(state: LocalIvsState, request: web.Request) -> Caller:
    return caller_for(
        request.headers.get("Authorization"),
        accounts=state.settings.account_keys,
        default_account=state.settings.account_id,
    )


def _answer(
    state: LocalIvsState, name: str, values: Mapping[str, object], caller: Caller
) -> web.Response:
    """Run operation `name` on `values` as `caller`, count its outcome and return the answer."""
    try:
        with acting_as(caller):
            answer = OPERATIONS[name](state, Members(values))
    except IvsError as error:
        state.count_outcome(name, error.name)
        return error_response(error)
    except Exception:
        # A bug here must still look like IVS to botocore: a modeled 500, logged with its cause.
        logger.exception("local IVS failed answering %s", name)
        state.count_outcome(name, "InternalServerException")
        return error_response(IvsError("InternalServerException", "Local IVS internal error"))
    state.count_outcome(name, ACCEPTED)
    return _success_response(answer)


async def _faulted(
    request: web.Request, state: LocalIvsState, values: Mapping[str, object]
) -> web.Response | None:
    """Apply any injected PutMetadata fault; return its answer, or None to carry on normally."""
    channel_arn = values.get("channelArn")
    decision = state.faults.decide(channel_arn if isinstance(channel_arn, str) else None)
    if decision is None:
        return None
    if decision.latency_s > 0:
        await asyncio.sleep(decision.latency_s)
    if decision.disconnect:
        state.count_outcome("PutMetadata", DISCONNECTED)
        if request.transport is not None:
            request.transport.close()
        # aiohttp fails to write this to the closed transport and drops it quietly.
        return web.Response(status=204)
    if decision.error is not None:
        state.count_outcome("PutMetadata", decision.error)
        return error_response(IvsError(decision.error, "Injected fault (local IVS)"))
    return None


def unknown_operation(state: LocalIvsState, request: web.Request) -> web.Response:
    """Answer a path or method that names none of the operations this local IVS implements."""
    state.count_outcome(UNKNOWN_OPERATION_STATS_KEY, UNKNOWN_OPERATION)
    implemented = ", ".join(sorted(OPERATIONS))
    return error_response(
        IvsError(
            UNKNOWN_OPERATION,
            f"The local IVS does not implement {request.method} {request.path}; "
            f"it implements {implemented}",
        )
    )


async def handle_operation(request: web.Request) -> web.Response:
    """Answer `POST /<OperationName>` with a JSON body."""
    state = state_of(request)
    name = request.match_info["operation"]
    if name not in OPERATIONS or name in TAG_OPERATIONS:
        return unknown_operation(state, request)
    try:
        values = await _read_body(request)
    except IvsError as error:
        state.count_outcome(name, error.name)
        return error_response(error)
    if name == "PutMetadata":
        faulted = await _faulted(request, state, values)
        if faulted is not None:
            return faulted
    return _answer(state, name, values, _caller(state, request))


async def handle_tags(request: web.Request) -> web.Response:
    """Answer TagResource, UntagResource and ListTagsForResource on `/tags/{resourceArn}`."""
    state = state_of(request)
    name = _TAG_OPERATION_BY_METHOD[request.method]
    # botocore percent-encodes the whole ARN (":" and "/" too) into one path segment;
    # match_info holds it decoded.
    values: dict[str, object] = {"resourceArn": request.match_info["resourceArn"]}
    if name == "TagResource":
        try:
            values = {**await _read_body(request), **values}
        except IvsError as error:
            state.count_outcome(name, error.name)
            return error_response(error)
    elif name == "UntagResource" and "tagKeys" in request.query:
        values["tagKeys"] = request.query.getall("tagKeys")
    return _answer(state, name, values, _caller(state, request))


async def handle_unknown(request: web.Request) -> web.Response:
    """Answer any other path or method with UnknownOperationException."""
    return unknown_operation(state_of(request), request)


def add_routes(app: web.Application) -> None:
    """Register the IVS operations; call after the admin routes, which must match first."""
    app.router.add_route("POST", "/tags/{resourceArn:.+}", handle_tags)
    app.router.add_route("DELETE", "/tags/{resourceArn:.+}", handle_tags)
    app.router.add_route("GET", "/tags/{resourceArn:.+}", handle_tags)
    app.router.add_route("POST", "/{operation}", handle_operation)
    # Last: anything else, in any method, names no operation.
    app.router.add_route("*", "/{tail:.*}", handle_unknown)
