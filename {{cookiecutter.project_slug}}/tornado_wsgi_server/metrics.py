"""Counting what one server process does, cheaply, and turning the counts into Prometheus text.

``Counters`` is touched on the event loop only (a few list increments per request); a reporter
thread copies it with the process's gauges into a snapshot (plain values) once a second.
``render()`` writes the sum of every process's snapshot in the Prometheus text format.
"""

from __future__ import annotations

import bisect
import os
import sys
import time

PREFIX = "tornado_server_"
# Methods outside this list are counted as "other": a client must not be able to invent
# new time series by sending made-up methods.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other")
_METHOD_INDEX = {name: index for index, name in enumerate(METHODS)}
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Upper bounds of the duration histogram, in seconds; the last bucket is +Inf.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# Event counters, one line each: key -> (metric name, labels, help). Count with
# ``container.metrics.count(key)`` where it happens; keys that share a metric name form one
# family told apart by their labels (the first one's help is the family's).
EVENTS = {
    "shed queue full": ("requests_shed_total", 'reason="queue_full"',
                        "Requests dropped unrun: 503 when the queue was full (or the server stopping) "
                        "or past --max-queue-wait; no answer when the client had gone."),
    "shed deadline": ("requests_shed_total", 'reason="deadline"', ""),
    "shed client gone": ("requests_shed_total", 'reason="client_gone"', ""),
    "rejected 413": ("requests_rejected_total", 'status="413"',
                     "Requests refused at once: 413 body too large, 431 headers too large."),
    "rejected 431": ("requests_rejected_total", 'status="431"', ""),
}
HELP = {
    "requests_total": "Requests answered, by method and status class.",
    "request_duration_seconds": "Time from the end of the request headers to the end of the response.",
    "requests_in_flight": "Requests read and not yet answered (running or waiting for a thread).",
    "queue_depth": "Requests waiting for a free thread.",
    "open_connections": "Open client connections, HTTP (keep-alive included) and WebSocket.",
    "worker_restarts_total": "Worker processes that died and were replaced.",
    "workers": "Server processes currently reporting.",
    "process_resident_memory_bytes": "Resident memory of each server process.",
    "process_cpu_seconds_total": "CPU time (user + system) used by each server process.",
    "process_start_time_seconds": "Start time of each server process, seconds since the epoch.",
}


class Counters:
    """Plain counts for one process; every method runs on the event loop thread."""

    def __init__(self) -> None:
        self.requests = [0] * (len(METHODS) * len(STATUS_CLASSES))
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.events = dict.fromkeys(EVENTS, 0)  # fixed keys: safe to copy from another thread
        self.answered = 0  # requests answered (any status): what `status` shows

    def request_done(self, method: str, status: int, seconds: float) -> None:
        self.answered += 1
        status_class = min(max(status // 100, 1), 5) - 1
        self.requests[_METHOD_INDEX.get(method, 7) * 5 + status_class] += 1
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.duration_sum += seconds

    def count(self, event: str) -> None:
        self.events[event] += 1


class NoCounting:
    """What the container counts with while --metrics is off: only the requests answered."""

    def __init__(self) -> None:
        self.answered = 0

    def request_done(self, method: str, status: int, seconds: float) -> None:
        self.answered += 1

    def count(self, event: str) -> None:
        pass

PROCESS_STARTED = time.time()


def resident_memory() -> int:
    """This process's resident memory in bytes (0 if unknown)."""
    if sys.platform == "win32":
        return _windows_working_set()
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS: peak, in bytes
    except (ImportError, OSError):
        return 0


def _windows_working_set() -> int:
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
            (name, ctypes.c_size_t) for name in (
                "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage",
                "PagefileUsage", "PeakPagefileUsage")
        ]

    counters = Counters()
    counters.cb = ctypes.sizeof(counters)
    psapi = ctypes.WinDLL("psapi")
    psapi.GetProcessMemoryInfo.argtypes = [wintypes.HANDLE, ctypes.POINTER(Counters), wintypes.DWORD]
    handle = ctypes.windll.kernel32.GetCurrentProcess()
    if not psapi.GetProcessMemoryInfo(handle, ctypes.byref(counters), counters.cb):
        return 0
    return counters.WorkingSetSize


def snapshot(counters: Counters, container, server) -> dict:
    """Everything one process reports, as plain values; safe to call from any thread."""
    shed = container.queue.shed_counts
    events = dict(counters.events)
    events["shed deadline"] += shed["deadline"]
    events["shed client gone"] += shed["client gone"]
    detached = list(server.detached)  # one C call: no lock needed against the loop thread
    return {
        "worker": "",  # the hub fills in which worker sent it
        "pid": os.getpid(),
        "started": PROCESS_STARTED,
        "requests": list(counters.requests),
        "buckets": list(counters.buckets),
        "duration_sum": counters.duration_sum,
        "events": events,
        "in_flight": container.in_flight,
        "queue": len(container.queue),
        "http_connections": len(server._connections),
        "websocket_connections": sum(1 for stream in detached if not stream.closed()),
        "memory": resident_memory(),
        "cpu": time.process_time(),
    }


COUNTER_FIELDS = ("requests", "buckets")


def add_counts(total: dict, snap: dict) -> None:
    """Add the counters (not the gauges) of ``snap`` into ``total`` (from ``empty_counts()``)."""
    for field in COUNTER_FIELDS:
        total[field] = [a + b for a, b in zip(total[field], snap[field], strict=True)]
    total["duration_sum"] += snap["duration_sum"]
    events = total["events"]
    for key, value in snap["events"].items():
        events[key] = events.get(key, 0) + value


def empty_counts() -> dict:
    return {"requests": [0] * (len(METHODS) * len(STATUS_CLASSES)),
            "buckets": [0] * (len(BUCKETS) + 1), "duration_sum": 0.0,
            "events": dict.fromkeys(EVENTS, 0)}


def series(name: str, labels: str, value) -> str:
    """One sample line: ``name{labels} value``."""
    return name + "{" + labels + "} " + str(value)


def render(total: dict, processes: list[dict], restarts: int) -> str:
    """The Prometheus text exposition (format 0.0.4) of the summed counts and the gauges."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str = "") -> str:
        full = PREFIX + name
        lines.append(f"# HELP {full} {help_text or HELP[name]}")
        lines.append(f"# TYPE {full} {kind}")
        return full

    name = family("requests_total", "counter")
    for index, count in enumerate(total["requests"]):
        if count:
            method, status_class = METHODS[index // 5], STATUS_CLASSES[index % 5]
            lines.append(series(name, f'method="{method}",status_class="{status_class}"', count))
    name = family("request_duration_seconds", "histogram")
    cumulative = 0
    for bound, count in zip((*BUCKETS, "+Inf"), total["buckets"], strict=True):
        cumulative += count
        lines.append(series(name + "_bucket", f'le="{bound}"', cumulative))
    lines.append(f"{name}_sum {total['duration_sum']:.6f}")
    lines.append(f"{name}_count {cumulative}")
    for gauge, field in (("requests_in_flight", "in_flight"), ("queue_depth", "queue")):
        name = family(gauge, "gauge")
        lines.append(f"{name} {sum(process[field] for process in processes)}")
    seen: set = set()
    for key, (metric, labels, help_text) in EVENTS.items():
        if metric not in seen:
            seen.add(metric)
            family(metric, "counter", help_text)
        lines.append(series(PREFIX + metric, labels, total["events"].get(key, 0)))
    name = family("open_connections", "gauge")
    for kind in ("http", "websocket"):
        lines.append(series(name, f'kind="{kind}"', sum(p[kind + "_connections"] for p in processes)))
    lines.append(f"{family('worker_restarts_total', 'counter')} {restarts}")
    lines.append(f"{family('workers', 'gauge')} {len(processes)}")
    for gauge, field, kind in (("process_resident_memory_bytes", "memory", "gauge"),
                               ("process_cpu_seconds_total", "cpu", "counter"),
                               ("process_start_time_seconds", "started", "gauge")):
        name = family(gauge, kind)
        for process in processes:  # by slot (1..--workers); one still waiting for its slot: none
            if process.get("slot") is not None:
                lines.append(series(name, f'worker="{process["slot"]}"', f"{process[field]:.3f}"))
    return "\n".join(lines) + "\n"


def quantile(q: float, buckets: list[int]) -> float | None:
    """Estimate the ``q`` quantile in seconds from histogram bucket counts (not cumulative)."""
    total = sum(buckets)
    if not total:
        return None
    wanted = q * total
    cumulative = 0
    for index, count in enumerate(buckets):
        if count and cumulative + count >= wanted:
            if index >= len(BUCKETS):
                return BUCKETS[-1]
            lower = BUCKETS[index - 1] if index else 0.0
            return lower + (BUCKETS[index] - lower) * (wanted - cumulative) / count
        cumulative += count
    return BUCKETS[-1]
