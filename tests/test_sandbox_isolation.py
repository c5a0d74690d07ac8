"""Sandboxes graded at the same time do not share a process limit: each slot has its own user;
and a sandbox whose starter is gone never runs on alone."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    # Slots that no grading uses (the suite grades beside this test, in the first slots).
    hoarder_user, other_user = sandbox.slot_user(60), sandbox.slot_user(61)
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


def _orphaned_launch(command):
    """Start ``command`` (a launcher command line) from a process that ends at once, before
    the launcher is set up (a grading process killed just as it starts a kernel); the
    launcher's process id."""
    read_end, write_end = os.pipe()
    starter = os.fork()
    if starter == 0:
        os.close(read_end)
        launcher = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        os.write(write_end, str(launcher.pid).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        pid = int(pipe.read())
    os.waitpid(starter, 0)
    return pid


def _running(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _sandboxed(user, marker):
    found = subprocess.run(["pgrep", "-u", str(user), "-f", marker], capture_output=True, text=True)
    return found.stdout.split()


def test_a_sandbox_whose_starter_died_while_it_started_runs_nothing():
    user = sandbox.slot_user(62)
    settings = sandbox.SandboxSettings(user_id=user)
    marker = "orphaned-sandbox-check"
    code = f"import time; time.sleep(300)  # {marker}"
    command = sandbox.launcher_command(settings, [sys.executable, "-c", code], {"workdir": "/tmp/work"})
    assert "--parent" in command
    # Without --parent (the launcher before), the orphan runs the learner's code for ever:
    # PR_SET_PDEATHSIG set after the parent's death never fires.
    unchecked = command[:command.index("--parent")] + command[command.index("--parent") + 2:]
    try:
        _orphaned_launch(unchecked)
        deadline = time.monotonic() + 60
        while not _sandboxed(user, marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _sandboxed(user, marker), "the control did not start: the test could not fail"
    finally:
        subprocess.run(["pkill", "-9", "-u", str(user)])
    launcher = _orphaned_launch(command)
    deadline = time.monotonic() + 60
    while _running(launcher) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        assert not _running(launcher), "the launcher of a dead starter is still running"
        assert not _sandboxed(user, marker)
    finally:
        subprocess.run(["pkill", "-9", "-u", str(user)])
