"""Sandboxes graded at the same time do not share a process limit: each slot has its own user;
and a sandbox whose starter is gone never runs on alone."""
import os
import signal
import subprocess
import sys
import time

import psutil
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


# A starter that builds the launcher command (so --parent is its own id), starts the
# launcher, prints its process id and ends at once, before the launcher is set up: a grading
# process killed just as it starts a kernel. With "unchecked", the command without --parent
# (the launcher before it had one).
STARTER = ("import os, subprocess, sys\n"
           "from course_grading import sandbox\n"
           "settings = sandbox.SandboxSettings(user_id=int(sys.argv[1]))\n"
           "command = sandbox.launcher_command(settings, [sys.executable, '-c', sys.argv[2]], {'workdir': '/tmp/work'})\n"
           "if sys.argv[3] == 'unchecked':\n"
           "    at = command.index('--parent')\n"
           "    command = command[:at] + command[at + 2:]\n"
           "launcher = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,\n"
           "                            stderr=subprocess.DEVNULL)\n"
           "print(launcher.pid, flush=True)\n"
           "os._exit(0)\n")


def _orphaned_launch(user, code, how):
    """The process id of a launcher whose starter has ended (see STARTER)."""
    started = subprocess.run([sys.executable, "-c", STARTER, str(user), code, how],
                             capture_output=True, text=True, check=True, timeout=60)
    return int(started.stdout)


def _end(user, launcher):
    """End the launcher's process group (if it is still there) and the sandbox user's processes."""
    try:
        os.killpg(launcher, signal.SIGKILL)
    except ProcessLookupError:
        pass
    subprocess.run(["pkill", "-9", "-u", str(user)])


def _running(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _sandboxed(user, marker):
    found = subprocess.run(["pgrep", "-u", str(user), "-f", marker], capture_output=True, text=True)
    return found.stdout.split()


def test_a_sandbox_whose_starter_died_while_it_started_runs_nothing():
    user = sandbox.slot_user(62)
    marker = "orphaned-sandbox-check"
    code = f"import time; time.sleep(300)  # {marker}"
    # The control: without --parent, the orphan runs the learner's code for ever
    # (PR_SET_PDEATHSIG set after the parent's death never fires).
    launcher = _orphaned_launch(user, code, "unchecked")
    try:
        deadline = time.monotonic() + 60
        while not _sandboxed(user, marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _sandboxed(user, marker), "the control did not start: the test could not fail"
    finally:
        _end(user, launcher)
    launcher = _orphaned_launch(user, code, "checked")
    try:
        deadline = time.monotonic() + 60
        while _running(launcher) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(launcher), "the launcher of a dead starter is still running"
        time.sleep(1)  # what it might have started would be there by now
        assert not _sandboxed(user, marker)
    finally:
        _end(user, launcher)
