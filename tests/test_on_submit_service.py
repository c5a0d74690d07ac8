"""The grading-on-submit service as a process (course_grading.on_submit serve), with a
stand-in job that grades nothing: killed mid-job and started again, it runs each pending
job once more and only once. Not a fast test: it starts Python processes that import nbgrader."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_on_submit import stamp


STAND_IN_JOB = """
import json, os, sys, time
from course_grading.on_submit_job import JobOutcome, JobRequest
from course_grading.sandbox import die_with_parent

die_with_parent()
request = JobRequest.from_json(sys.stdin.read())
runs = os.environ["RUNS"]
with open(runs, "a") as out:
    out.write(f"start {request.learner} {os.getpid()}\\n")
time.sleep(float(os.environ["JOB_SECONDS"]))
inbound = os.path.join(os.environ["COURSE_EXCHANGE"], "backprop", "inbound")
newest = sorted(name for name in os.listdir(inbound) if name.startswith(request.learner + "+"))[-1]
with open(runs, "a") as out:
    out.write(f"end {request.learner} {os.getpid()}\\n")
with open(request.outcome_path, "w") as out:
    out.write(JobOutcome("done", submitted_at=newest.split("+")[2], score=1.0, max_score=1.0).to_json())
"""

SERVE = """
import sys
from course_grading.on_submit import Settings, serve
serve(Settings(course_root=sys.argv[1], assignments=("backprop",), state=sys.argv[2], poll=0.2,
               job_command=(sys.executable, sys.argv[3])))
"""


def test_the_service_killed_mid_job_and_started_again_runs_the_job_once_more_and_only_once(tmp_path):
    """The real service process with a stand-in job (no grading): the job dies with the
    killed service, and the restarted service finishes what was pending, once."""
    project = Path(__file__).resolve().parent.parent
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'backprop'\n")
    exchange = tmp_path / "exchange"
    for name in (f"alice+backprop+{stamp(0)}+a", f"bob+backprop+{stamp(1)}+b"):
        (exchange / "backprop" / "inbound" / name).mkdir(parents=True)
    job, serve = tmp_path / "job.py", tmp_path / "serve.py"
    job.write_text(STAND_IN_JOB)
    serve.write_text(SERVE)
    state, runs = tmp_path / "state.json", tmp_path / "runs.txt"
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(project / "hub" / "jupyter" / "site"),
               COURSE_EXCHANGE=str(exchange), RUNS=str(runs), JOB_SECONDS="60",
               PYTHONPATH=str(project))

    def start():
        return subprocess.Popen([sys.executable, str(serve), str(course), str(state), str(job)], env=env,
                                cwd=course, stdin=subprocess.DEVNULL)

    def wait_for(condition, what):
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def lines():
        return runs.read_text().split("\n")[:-1] if runs.exists() else []

    service = start()
    try:
        wait_for(lambda: len(lines()) == 2, "both jobs to start")
        pids = [int(line.split()[2]) for line in lines()]
        os.kill(service.pid, signal.SIGKILL)
        service.wait()
        wait_for(lambda: not any(_alive(pid) for pid in pids), "the jobs to die with the service")
        saved = json.loads(state.read_text())
        assert sorted(saved["running"]) == ["alice", "bob"] and saved["history"] == []

        env["JOB_SECONDS"] = "0.2"
        service = start()
        wait_for(lambda: len(json.loads(state.read_text())["history"]) == 2, "the restarted service to finish")
        time.sleep(1)  # a second run of either, if there were one, would have started
        finished = json.loads(state.read_text())
        assert sorted((e["learner"], e["outcome"]) for e in finished["history"]) == [
            ("alice", "graded"), ("bob", "graded")]
        assert finished["running"] == {} and finished["queued"] == {}
        assert sorted(line.split()[:2] for line in lines()) == [
            ["end", "alice"], ["end", "bob"], ["start", "alice"], ["start", "alice"], ["start", "bob"], ["start", "bob"]]
        # Stopped as the hub stops it (SIGTERM): it exits.
        service.terminate()
        assert service.wait(timeout=30) == 0
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


def _alive(pid):
    """Whether process ``pid`` runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
