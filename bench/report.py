"""The summary the benchmark promises (its JSON contract), the targets, and the printed table."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUMMARY_SIZE = "100"  # the summary's per-size figures are those of the 100-byte cues
SUMMARY_SCALE = "10000"

SUMMARY_KEYS = (
    "delivered_cues_per_s",
    "channel_calls_per_s",
    "max_calls_in_any_1s_window",
    "payload_fill",
    "cues_per_call",
    "throttled",
    "lost_cues",
    "delivery_latency_p50_ms",
    "delivery_latency_p99_ms",
    "naive_delivered_cues_per_s",
    "naive_throttled",
    "naive_lost_cues",
    "speedup_vs_naive",
    "account_calls_per_s",
    "account_utilization",
    "max_account_calls_in_any_1s_window",
    "fairness",
    "added_latency_p50_ms",
    "added_latency_p99_ms",
    "http_ingress_ratio",
    "ws_ingress_ratio",
    "rss_mb_per_10k_channels",
    "cpu_percent_10k_channels_waiting",
    "deflate_cues_per_call_ratio",
    "large_cue_16k_latency_p99_ms",
)


# The figures of scenarios 1 (100 B) and 3 that the distributed scenario measures again.
DISTRIBUTED_KEYS = (
    "delivered_cues_per_s",
    "channel_calls_per_s",
    "max_calls_in_any_1s_window",
    "payload_fill",
    "cues_per_call",
    "throttled",
    "lost_cues",
    "delivery_latency_p50_ms",
    "delivery_latency_p99_ms",
    "account_calls_per_s",
    "account_utilization",
    "max_account_calls_in_any_1s_window",
    "fairness",
)


# How the replicas compare with one process run beside them in the same run (parity).
PARITY_KEYS = (
    "distributed_fill_ratio",  # payload fill, replicas / one process (saturated, 100 B)
    "distributed_p50_ratio",  # delivery latency p50, replicas / one process
    "distributed_p99_ratio",
    "distributed_429_share_points",  # POSTs refused 429, replicas minus one process, in points
    "distributed_account_429_share_points",  # the same in the account scenario
    "distributed_fairness",  # Jain over the channels, busy channels spread unevenly (30 / 3 / 0)
)


@dataclass(frozen=True, slots=True)
class Target:
    """One figure's target: `key <op> bound`."""

    key: str
    op: str
    bound: float

    def check(self, value: Any) -> bool | None:
        """Whether `value` meets the target; None when there is no value."""
        if value is None:
            return None
        compare: Callable[[Any, Any], bool] = _OPS[self.op]
        return bool(compare(value, self.bound))


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "within": lambda value, bound: abs(value) <= bound,
}

TARGETS = (
    Target("max_calls_in_any_1s_window", "<=", 5),
    Target("throttled", "==", 0),
    Target("lost_cues", "==", 0),
    Target("channel_calls_per_s", ">=", 4.8),
    Target("payload_fill", ">=", 0.9),
    Target("speedup_vs_naive", ">=", 6),
    Target("account_utilization", ">=", 0.95),
    Target("fairness", ">=", 0.99),
    Target("max_account_calls_in_any_1s_window", "<=", 155),
    Target("added_latency_p99_ms", "<=", 10),
    Target("schedule_lag_p99_ms", "<=", 210),  # one call interval plus 10 ms
    Target("http_ingress_ratio", ">=", 0.7),
    Target("ws_ingress_ratio", ">=", 0.5),
    Target("rss_mb_per_10k_channels", "<=", 20),
    Target("throttled_any_scenario", "==", 0),
    Target("lost_cues_any_scenario", "==", 0),
    Target("deflate_cues_per_call_ratio", ">=", 2.0),
    Target("distributed_fill_ratio", ">=", 0.99),
    Target("distributed_p50_ratio", "<=", 1.1),
    Target("distributed_p99_ratio", "<=", 1.1),
    Target("distributed_429_share_points", "within", 5),
    Target("distributed_account_429_share_points", "within", 5),
    Target("distributed_fairness", ">=", 0.99),
)


def _get(tree: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def summarize(scenarios: dict[str, Any]) -> dict[str, Any]:
    """The `summary` object: exactly `SUMMARY_KEYS`, None for a scenario that did not run."""
    saturated = _get(scenarios, "saturated", "by_size", SUMMARY_SIZE) or {}
    naive = _get(scenarios, "naive", "by_size", SUMMARY_SIZE) or {}
    account = scenarios.get("account") or {}
    light = scenarios.get("light") or {}
    ingress = scenarios.get("ingress") or {}
    scale = _get(scenarios, "scale", "by_channels", SUMMARY_SCALE) or {}
    gateway_rate = saturated.get("delivered_cues_per_s")
    naive_rate = naive.get("naive_delivered_cues_per_s")
    summary = {
        "delivered_cues_per_s": gateway_rate,
        "channel_calls_per_s": saturated.get("channel_calls_per_s"),
        "max_calls_in_any_1s_window": saturated.get("max_calls_in_any_1s_window"),
        "payload_fill": saturated.get("payload_fill"),
        "cues_per_call": saturated.get("cues_per_call"),
        "throttled": saturated.get("throttled"),
        "lost_cues": saturated.get("lost_cues"),
        "delivery_latency_p50_ms": _get(saturated, "latency", "p50_ms"),
        "delivery_latency_p99_ms": _get(saturated, "latency", "p99_ms"),
        "naive_delivered_cues_per_s": naive_rate,
        "naive_throttled": naive.get("naive_throttled"),
        "naive_lost_cues": naive.get("naive_lost_cues"),
        "speedup_vs_naive": _ratio(gateway_rate, naive_rate),
        "account_calls_per_s": account.get("account_calls_per_s"),
        "account_utilization": account.get("account_utilization"),
        "max_account_calls_in_any_1s_window": account.get("max_account_calls_in_any_1s_window"),
        "fairness": account.get("fairness"),
        "added_latency_p50_ms": light.get("added_latency_p50_ms"),
        "added_latency_p99_ms": light.get("added_latency_p99_ms"),
        "http_ingress_ratio": ingress.get("http_ingress_ratio"),
        "ws_ingress_ratio": ingress.get("ws_ingress_ratio"),
        "rss_mb_per_10k_channels": scale.get("rss_mb_per_10k_channels"),
        "cpu_percent_10k_channels_waiting": scale.get("cpu_percent_waiting"),
        "deflate_cues_per_call_ratio": _get(scenarios, "encoding", "deflate_cues_per_call_ratio"),
        "large_cue_16k_latency_p99_ms": _get(
            scenarios, "encoding", "large_cue_latency", "16384", "busy", "p99_ms"
        ),
    }
    assert tuple(summary) == SUMMARY_KEYS
    return summary


def summarize_distributed(distributed: dict[str, Any]) -> dict[str, Any]:
    """The `distributed_summary` object: `DISTRIBUTED_KEYS` as `summarize` computes them from
    the distributed runs, plus `replicas`, the same keys of the single process run beside them
    (`single_process`) and `PARITY_KEYS`; or None each and `skipped` when it did not run."""
    summary = summarize(distributed)
    figures: dict[str, Any] = {"replicas": distributed.get("replicas")}
    figures.update({key: summary[key] for key in DISTRIBUTED_KEYS})
    single_runs = distributed.get("single_process") or {}
    single = summarize(single_runs)
    figures["single_process"] = {key: single[key] for key in DISTRIBUTED_KEYS}

    def share(runs: dict[str, Any], *path: str) -> Any:
        return _get(runs, *path, "refused_share")

    sat = ("saturated", "by_size", SUMMARY_SIZE)
    figures.update(
        {
            "distributed_fill_ratio": _ratio(
                summary["payload_fill"], single["payload_fill"], digits=4
            ),
            "distributed_p50_ratio": _ratio(
                summary["delivery_latency_p50_ms"], single["delivery_latency_p50_ms"], digits=4
            ),
            "distributed_p99_ratio": _ratio(
                summary["delivery_latency_p99_ms"], single["delivery_latency_p99_ms"], digits=4
            ),
            "distributed_429_share_points": _points(
                share(distributed, *sat), share(single_runs, *sat)
            ),
            "distributed_account_429_share_points": _points(
                share(distributed, "account"), share(single_runs, "account")
            ),
            "distributed_fairness": _get(distributed, "uneven", "fairness"),
        }
    )
    if "skipped" in distributed:
        figures["skipped"] = distributed["skipped"]
    return figures


def _points(part: Any, whole: Any) -> float | None:
    """The difference of two shares, in percentage points."""
    if part is None or whole is None:
        return None
    return round(float(part - whole) * 100, 2)


def _gateway_runs(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    runs = list((_get(scenarios, "saturated", "by_size") or {}).values())
    # The replicas' runs count too: a throttle or a lost cue is one whatever the mode.
    runs += list((_get(scenarios, "distributed", "saturated", "by_size") or {}).values())
    if _get(scenarios, "distributed", "account"):
        runs.append(scenarios["distributed"]["account"])
    runs += list((_get(scenarios, "scale", "by_channels") or {}).values())
    runs += [scenarios[name] for name in ("account", "light") if scenarios.get(name)]
    return runs


def check_targets(summary: dict[str, Any], scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its value and whether it is met (None: not measured in this run)."""
    runs = _gateway_runs(scenarios)
    values = dict(summary)
    values["throttled_any_scenario"] = max(r.get("throttled", 0) for r in runs) if runs else None
    lost = [r["lost_cues"] for r in runs if "lost_cues" in r]
    values["lost_cues_any_scenario"] = max(lost) if lost else None
    values["schedule_lag_p99_ms"] = _get(scenarios, "light", "schedule_lag_p99_ms")
    parity = summarize_distributed(scenarios.get("distributed") or {})
    values.update({key: parity[key] for key in PARITY_KEYS})
    return [
        {
            "key": t.key,
            "target": f"{t.op} {t.bound:g}",
            "value": values.get(t.key),
            "met": t.check(values.get(t.key)),
        }
        for t in TARGETS
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, list):
        return " / ".join(_fmt(v) for v in value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _rows(title: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    table = [header, *[[_fmt(c) if i else str(c) for i, c in enumerate(r)] for r in rows]]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = ["", title]
    for n, row in enumerate(table):
        cells = [
            str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
            for i, c in enumerate(row)
        ]
        lines.append("  " + "  ".join(cells))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def _delivery(scenarios: dict[str, Any]) -> list[str]:
    saturated = _get(scenarios, "saturated", "by_size") or {}
    naive = _get(scenarios, "naive", "by_size") or {}
    if not saturated and not naive:
        return []
    sizes = sorted({*saturated, *naive}, key=int)

    def row(label: str, source: dict[str, Any], *path: str) -> list[Any]:
        return [label, *(_get(source.get(s, {}), *path) for s in sizes)]

    speedups = [
        _ratio(
            _get(saturated.get(s, {}), "delivered_cues_per_s"),
            _get(naive.get(s, {}), "naive_delivered_cues_per_s"),
        )
        for s in sizes
    ]
    return _rows(
        "1-2. One channel offered 10x what fits: gateway vs naive client",
        ["figure", *(f"{s} B cues" for s in sizes)],
        [
            row("gateway delivered cues/s", saturated, "delivered_cues_per_s"),
            row("naive delivered cues/s", naive, "naive_delivered_cues_per_s"),
            ["speedup vs naive", *speedups],
            row("PutMetadata calls/s", saturated, "channel_calls_per_s"),
            row("max calls in any 1 s", saturated, "max_calls_in_any_1s_window"),
            row("tightest 6 calls, ms", saturated, "tightest_6_calls_ms"),
            row("payload fill", saturated, "payload_fill"),
            row("  (best possible)", saturated, "ideal_payload_fill"),
            row("cues per call", saturated, "cues_per_call"),
            row("throttled (gateway)", saturated, "throttled"),
            row("lost cues (gateway)", saturated, "lost_cues"),
            row("latency p50 ms", saturated, "latency", "p50_ms"),
            row("latency p99 ms", saturated, "latency", "p99_ms"),
            row("POSTs refused 429, share", saturated, "refused_share"),
            row("naive throttled calls", naive, "naive_throttled"),
            row("naive lost cues", naive, "naive_lost_cues"),
            row("naive offered cues", naive, "offered_cues"),
            row("naive tightest 6 calls, ms", naive, "tightest_6_calls_ms"),
        ],
    )


def _account(account: dict[str, Any]) -> list[str]:
    return _rows(
        f"3. {account['channels']} busy channels on one account (limit 155 calls/s)",
        ["figure", "value"],
        [
            ["account calls/s", account["account_calls_per_s"]],
            ["account utilization", account["account_utilization"]],
            ["max calls in any 1 s", account["max_account_calls_in_any_1s_window"]],
            ["tightest 156 calls, ms", account["tightest_156_calls_ms"]],
            ["mean PutMetadata call, ms", account.get("mean_call_ms")],
            [f"fairness (Jain, {account['fairness_turns']} turns)", account["fairness"]],
            ["calls per channel min / max", account["calls_per_channel_min_max"]],
            ["throttled", account["throttled"]],
            ["lost cues", account["lost_cues"]],
        ],
    )


def _light(light: dict[str, Any]) -> list[str]:
    return _rows(
        f"4. Light load: one cue every {light['period_ms']} ms on {light['channels']} channels",
        ["figure", "value"],
        [
            ["added latency p50 ms", light["added_latency_p50_ms"]],
            ["added latency p99 ms", light["added_latency_p99_ms"]],
            ["schedule lag p99 ms (not_before to IVS)", light.get("schedule_lag_p99_ms")],
            ["  from request sent, p99 ms", light["latency"]["from_request_p99_ms"]],
            ["throttled", light["throttled"]],
            ["lost cues", light["lost_cues"]],
        ],
    )


def _ingress(ingress: dict[str, Any]) -> list[str]:
    rows = [
        [
            "HTTP POST /v1/cues",
            ingress["gateway_http_per_s"],
            ingress["bare_http_per_s"],
            ingress["http_ingress_ratio"],
            ingress["gateway_http_cpu_us"],
            ingress["bare_http_cpu_us"],
            ingress["http_cpu_ratio"],
        ],
        [
            "WebSocket cue frames",
            ingress["gateway_ws_per_s"],
            ingress["bare_ws_per_s"],
            ingress["ws_ingress_ratio"],
            ingress["gateway_ws_cpu_us"],
            ingress["bare_ws_cpu_us"],
            ingress["ws_cpu_ratio"],
        ],
    ]
    if ingress.get("gateway_ws_batched_cues_per_s"):
        rows.append(
            [
                f"  WebSocket, {ingress['ws_batch_cues_per_frame']} cues a frame",
                ingress["gateway_ws_batched_cues_per_s"],
                None,
                None,
                ingress["gateway_ws_batched_cpu_us_per_cue"],
                None,
                None,
            ]
        )
    return _rows(
        "5. Ingress, single cues, same load generator (CPU: the server's, per cue)",
        [
            "figure",
            "gateway/s",
            "bare aiohttp/s",
            "ratio",
            "gateway CPU us",
            "bare CPU us",
            "CPU ratio",
        ],
        rows,
    )


def _scale(scale: dict[str, Any]) -> list[str]:
    return _rows(
        "6. Channel scale: one cue on each channel, then waiting under the account cap",
        ["channels", "RSS MB", "+MB per 10k ch", "B per channel", "intake s", "CPU % waiting"],
        [
            [
                f"{int(n):,}",
                s["rss_mb_loaded"],
                s["rss_mb_per_10k_channels"],
                s["bytes_per_channel"],
                s["intake_s"],
                s["cpu_percent_waiting"],
            ]
            for n, s in scale.items()
        ],
    )


def _distributed(result: dict[str, Any]) -> list[str]:
    distributed = result["scenarios"]["distributed"]
    title = "7. Distributed mode: the figures of 1 (100 B) and 3, one process vs 3 replicas"
    if "skipped" in distributed:
        return ["", title, f"  skipped: {distributed['skipped']}"]
    replicas = result.get("distributed_summary") or {}
    # The single process run beside the replicas; from scenarios 1 and 3 in older documents.
    here = "single_process" in distributed
    single_runs = distributed["single_process"] if here else result["scenarios"]
    single = replicas.get("single_process") if here else result["summary"]
    single = single or {}
    targets = {t.key: f"{t.op} {t.bound:g}" for t in TARGETS}
    sat = _get(distributed, "saturated", "by_size", SUMMARY_SIZE) or {}
    acc = distributed.get("account") or {}
    uneven = distributed.get("uneven") or {}
    single_sat = _get(single_runs, "saturated", "by_size", SUMMARY_SIZE) or {}
    single_acc = single_runs.get("account") or {}
    single_uneven = single_runs.get("uneven") or {}
    rows: list[list[Any]] = [
        [key, single.get(key), replicas.get(key), targets.get(key, "")] for key in DISTRIBUTED_KEYS
    ]
    rows += [
        [
            "tightest 6 calls, ms",
            single_sat.get("tightest_6_calls_ms"),
            sat.get("tightest_6_calls_ms"),
            "",
        ],
        [
            "tightest 156 calls, ms",
            single_acc.get("tightest_156_calls_ms"),
            acc.get("tightest_156_calls_ms"),
            "",
        ],
        ["POSTs refused 429, share", single_sat.get("refused_share"), sat.get("refused_share"), ""],
        [
            "account: POSTs refused 429, share",
            single_acc.get("refused_share"),
            acc.get("refused_share"),
            "",
        ],
        ["account lost cues", single_acc.get("lost_cues"), acc.get("lost_cues"), ""],
        [
            "duplicate deliveries",
            single_sat.get("duplicate_deliveries"),
            sat.get("duplicate_deliveries"),
            "",
        ],
        [
            f"uneven ({' / '.join(map(str, uneven.get('channels_per_replica', [])))}): fairness",
            single_uneven.get("fairness"),
            uneven.get("fairness"),
            "",
        ],
        [
            "uneven: calls per channel min / max",
            single_uneven.get("calls_per_channel_min_max"),
            uneven.get("calls_per_channel_min_max"),
            "",
        ],
        [
            "uneven: account utilization",
            single_uneven.get("account_utilization"),
            uneven.get("account_utilization"),
            "",
        ],
    ]
    lines = _rows(
        title, ["figure", "1 process", f"{replicas.get('replicas')} replicas", "target"], rows
    )
    if here:
        lines += _rows(
            "   parity: 3 replicas against the process run beside them",
            ["figure", "value", "target"],
            [[key, replicas.get(key), targets.get(key, "")] for key in PARITY_KEYS],
        )
    return lines


def render(result: dict[str, Any]) -> str:
    """The run as text tables: per-scenario figures, then the targets."""
    scenarios = result["scenarios"]
    lines = [f"metadata_gateway benchmark ({result['bench']['profile']} profile)"]
    lines += _delivery(scenarios)
    if scenarios.get("account"):
        lines += _account(scenarios["account"])
    if scenarios.get("light"):
        lines += _light(scenarios["light"])
    if scenarios.get("ingress"):
        lines += _ingress(scenarios["ingress"])
    if scale := _get(scenarios, "scale", "by_channels"):
        lines += _scale(scale)
    if scenarios.get("distributed"):
        lines += _distributed(result)
    if scenarios.get("encoding"):
        lines += _encoding(scenarios)
    lines += _rows(
        "Targets",
        ["figure", "value", "target", "met"],
        [
            [t["key"], t["value"], t["target"], {True: "yes", False: "NO", None: "-"}[t["met"]]]
            for t in result["targets"]
        ],
    )
    return "\n".join(lines)


def _encoding(scenarios: dict[str, Any]) -> list[str]:
    encoding = scenarios["encoding"]
    by = encoding["by_encoding"]
    naive = _get(scenarios, "naive", "by_size", SUMMARY_SIZE, "naive_delivered_cues_per_s")
    names = ("json", "deflate")

    def row(label: str, *path: str) -> list[Any]:
        return [label, *(_get(by, name, *path) for name in names)]

    lines = _rows(
        "8. json vs deflate on a show's corpus (captions, quiz, polls), one channel each at 10x",
        ["figure", *names],
        [
            row("delivered cues/s", "delivered_cues_per_s"),
            row("cues per call", "cues_per_call"),
            row("PutMetadata calls/s", "channel_calls_per_s"),
            row("payload fill", "payload_fill"),
            row("largest payload, bytes", "max_payload_bytes"),
            row("max calls in any 1 s", "max_calls_in_any_1s_window"),
            row("lost cues", "lost_cues"),
            row("latency p99 ms", "latency", "p99_ms"),
            [
                "speedup vs naive (100 B naive run)",
                *(_ratio(_get(by, n, "delivered_cues_per_s"), naive) for n in names),
            ],
            [
                "Node decoder CPU us/payload",
                *(_get(encoding, "node_decoder", n, "us_per_payload") for n in names),
            ],
        ],
    )
    latency = encoding["large_cue_latency"]
    lines += _rows(
        "   large cues of multi-byte text: accept to last part at IVS (busy: high priority)",
        ["figure", *(f"{s} B {state}" for s in latency for state in ("idle", "busy"))],
        [
            [
                label,
                *(latency[s][state][key] for s in latency for state in ("idle", "busy")),
            ]
            for label, key in (("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"), ("samples", "samples"))
        ],
    )
    return lines


def _ratio(part: Any, whole: Any, *, digits: int = 2) -> float | None:
    return round(part / whole, digits) if part and whole else None
