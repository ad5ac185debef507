"""How long and how big each scenario runs: quick (< 90 s), full (< 10 min), and the smoke test."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    """Durations (seconds) and sizes of one benchmark run."""

    name: str
    sizes: tuple[int, ...] = (40, 100, 300)  # bytes each cue takes in the payload
    overload: float = 10.0  # offered load as a multiple of what one channel can deliver
    saturated_s: float = 20.0  # offering at 10x, per size
    saturated_warmup_s: float = 1.0  # left out of the steady-state figures
    queue_s: float = 3.0  # channel queue bound, in seconds of full-rate delivery
    naive_sizes: tuple[int, ...] = (40, 100, 300)
    naive_s: float = 6.0  # offering at 10x through the naive client
    naive_tail_s: float = 20.0  # then waiting for its retries (legacy mode: up to ~15 s)
    account_channels: int = 200
    account_s: float = 15.0  # all channels backlogged for at least this long
    light_channels: int = 20
    light_period_s: float = 0.3
    light_s: float = 20.0
    ingress_rounds: int = 3
    ingress_s: float = 5.0
    ingress_warmup_s: float = 1.0
    ingress_ws_batch: int = 10  # also measure WebSocket frames of this many cues (0: skip)
    scale_channels: tuple[int, ...] = (1_000, 10_000, 100_000)
    scale_cpu_s: float = 5.0  # CPU is sampled this long while cues wait under the account cap
    disturbed_retries: int = 1  # reruns of a timing-sensitive scenario the machine disturbed
    distributed: bool = True  # run scenarios 1 (100 B) and 3 again on 3 replicas and Redis
    distributed_saturated_s: float = 20.0  # its saturated_s and account_s
    distributed_account_s: float = 15.0


FULL = Profile(name="full")

QUICK = Profile(
    name="quick",
    saturated_s=4.0,
    queue_s=2.0,
    naive_sizes=(100,),
    naive_s=3.0,
    naive_tail_s=11.0,
    account_s=5.0,
    light_s=5.0,
    ingress_rounds=1,
    ingress_s=2.0,
    ingress_warmup_s=0.5,
    ingress_ws_batch=0,
    scale_channels=(1_000, 10_000),
    scale_cpu_s=2.0,
    distributed_saturated_s=3.0,
    distributed_account_s=3.0,
    disturbed_retries=0,
)

# The suite's smoke test: one saturated size, briefly, so the harness cannot rot unnoticed.
SMOKE = Profile(
    name="smoke",
    sizes=(100,),
    saturated_s=3.0,
    saturated_warmup_s=0.5,
    queue_s=1.0,
    account_channels=20,
    account_s=2.0,
    distributed_saturated_s=3.0,
    distributed_account_s=2.0,
    disturbed_retries=0,
)
