"""Sandboxes graded at the same time do not share a process limit: each slot has its own user."""
import os
import signal
import subprocess
import sys

import pytest

from course_grading import sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sandbox users are set only when grading runs as root")

# Fork until the process limit says no, then hold every process.
HOLD = ("import os, sys, time\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "    except OSError:\n"
        "        break\n"
        "print('holding', flush=True); time.sleep(60)\n")
SPAWN = "import subprocess\nfor _ in range(3):\n    subprocess.run(['true'], check=True)\nprint('started')\n"


def _launcher(settings, code):
    return sandbox.launcher_command(settings, [sys.executable, "-c", code], {"workdir": "/tmp/work"})


def _spawn_as(user):
    settings = sandbox.SandboxSettings(processes=20, user_id=user)
    return subprocess.run(_launcher(settings, SPAWN), capture_output=True, text=True, timeout=120)


def test_one_sandbox_at_its_process_limit_does_not_stop_another():
    hoarder_user, other_user = sandbox.slot_user(0), sandbox.slot_user(1)
    hoarder = subprocess.Popen(_launcher(sandbox.SandboxSettings(processes=20, user_id=hoarder_user), HOLD),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert hoarder.stdout.readline().strip() == "holding"
        # Another slot's sandbox starts its processes as if nothing happened ...
        other = _spawn_as(other_user)
        assert other.returncode == 0 and "started" in other.stdout, other.stderr
        # ... while the control, a sandbox of the same user (all sandboxes were one user
        # before), cannot start any.
        same = _spawn_as(hoarder_user)
        assert same.returncode != 0 and "started" not in same.stdout
        assert "Resource temporarily unavailable" in same.stderr or "BlockingIOError" in same.stderr, same.stderr
    finally:
        os.killpg(hoarder.pid, signal.SIGKILL)
        hoarder.wait()


def test_each_grading_slot_has_its_own_user():
    assert len({sandbox.slot_user(slot) for slot in range(64)}) == 64
    assert sandbox.UNPRIVILEGED_ID not in {sandbox.slot_user(slot) for slot in range(64)}
