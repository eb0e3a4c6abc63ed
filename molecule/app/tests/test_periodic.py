"""The beat schedules the heartbeat task once per period for the whole lab."""

import json

from conftest import HEARTBEAT_SECONDS, WEB_HOSTS, manage, wait_until

WINDOW_SECONDS = 60


def heartbeat_times():
    result = manage(WEB_HOSTS[0], f"task_runs heartbeat --seconds {WINDOW_SECONDS}")
    assert result.rc == 0, result.stderr
    return [run["at"] for run in json.loads(result.stdout)]


def full_window():
    """Return the run times once they span the window, else None."""
    times = heartbeat_times()
    return times if times and times[-1] - times[0] >= WINDOW_SECONDS - 2 * HEARTBEAT_SECONDS else None


def test_heartbeat_runs_once_per_period():
    # The converge runs for minutes, so the beat has usually filled the
    # window already; after a restart of the beat this waits for it.
    times = wait_until(full_window, timeout=WINDOW_SECONDS, interval=HEARTBEAT_SECONDS) or heartbeat_times()
    periods = WINDOW_SECONDS / HEARTBEAT_SECONDS
    assert periods - 1 <= len(times) <= periods + 1, f"{len(times)} runs in {WINDOW_SECONDS} s"


def test_heartbeat_never_runs_twice_per_period():
    times = heartbeat_times()
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert gaps, "no two heartbeats in the window"
    assert min(gaps) > HEARTBEAT_SECONDS / 2, f"heartbeats {min(gaps):.1f} s apart"
