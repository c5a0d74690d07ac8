"""Grading on submit: a JupyterHub service that grades each new submission and releases
that learner's feedback, minutes after the learner pressed Submit.

``course-on-submit serve`` (the hub starts it, see ``hub/jupyterhub_config.py``) polls the
inbound folder of the course's nbgrader exchange. Each new submission of an assignment
that is switched on becomes a job of ``course_grading.on_submit_job`` (a process of its
own): collect, ``course-grade`` for that learner, feedback released to that learner.

The policy (``SubmissionQueue``, no I/O, the clock injected):

- one job at a time per learner; a newer submission replaces that learner's queued older
  one (the job collects the newest anyway);
- at most ``per_hour`` gradings per learner in any hour; a learner past it is told,
  through the feedback of the waiting submission, when it will be graded;
- learners served in turn (the one served longest ago first), ``parallel`` jobs at a time;
- a job whose machinery failed is run once more, then reported to the instructor (the
  status page) and the learner told that the feedback is delayed; never a zero.

The queue and the history are saved after every change (a JSON file replaced atomically).
A service killed mid-grading and started again puts the interrupted job back in the queue
(its process died with the service) and grades it once: ``course-grade`` records a grading
in one transaction and skips a submission it already graded.

``course-on-submit status`` prints the queue, the last gradings and the failures; the
service shows the same at ``/services/<name>/`` to the hub's admins.
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import html
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .on_submit_job import JobOutcome, JobRequest

HOUR = 3600.0
#: How many finished jobs the history keeps (the status page shows them).
HISTORY_LENGTH = 200
#: A failed job is run this many times in all before the instructor is told.
ATTEMPTS = 2


def parse_timestamp(text):
    """nbgrader's submission timestamp (``2026-01-01 12:00:00.000000 UTC``) as seconds since the epoch."""
    from nbgrader.utils import parse_utc

    return parse_utc(text).timestamp()


@dataclass
class Job:
    """A learner's submission of an assignment waiting for, or in, a job."""

    learner: str
    assignment: str
    submitted_at: str              # nbgrader's timestamp of the newest submission seen
    noticed: float                 # when the service saw it (seconds since the epoch)
    kind: str = "grade"            # grade | tell-delayed (what to do next for it)
    attempts: int = 0              # failed runs so far
    told_wait_for: str = ""        # the submission a tell-wait notice was released for
    running: str = ""              # the kind of the job process running for it, if any
    started: float = 0.0
    pid: int = 0

    @property
    def key(self):
        return f"{self.learner}/{self.assignment}"


@dataclass
class Action:
    """A job process to start: what to do (``kind``) for which queued job."""

    kind: str                      # grade | tell-wait | tell-delayed
    job: Job
    wait_until: float = 0.0        # tell-wait: when the grading will run


@dataclass
class SubmissionQueue:
    """The service's queue, history and policy, as plain data (saved as JSON).

    ``queued`` holds at most one job per learner and assignment, ``running`` at most one
    per learner; ``latest`` the newest submission timestamp seen per learner/assignment,
    ``graded`` the finish times of each learner's gradings (the hourly limit), ``served``
    when each learner's last job started (the turns).
    """

    per_hour: int = 4
    parallel: int = 2
    queued: dict = field(default_factory=dict)      # key -> Job
    running: dict = field(default_factory=dict)     # learner -> Job
    latest: dict = field(default_factory=dict)      # key -> submitted_at
    graded: dict = field(default_factory=dict)      # learner -> [finish times]
    served: dict = field(default_factory=dict)      # learner -> last start
    history: list = field(default_factory=list)     # finished jobs, newest last
    failures: list = field(default_factory=list)    # jobs given up on, for the instructor

    def __post_init__(self):
        if self.per_hour < 1 or self.parallel < 1:
            raise ValueError(f"per_hour and parallel must be at least 1, not {self.per_hour} and {self.parallel}")

    # --- what comes in ------------------------------------------------------------------

    def submitted(self, learner, assignment, submitted_at, now):
        """A submission seen in the exchange; returns True if it is new (then it is queued,
        replacing that learner's queued older one)."""
        key = f"{learner}/{assignment}"
        seen = self.latest.get(key)
        if seen is not None and parse_timestamp(submitted_at) <= parse_timestamp(seen):
            return False
        self.latest[key] = submitted_at
        older = self.queued.get(key)
        if older is not None:
            self._record(older, now, "superseded", f"replaced by the submission of {submitted_at}")
        self.queued[key] = Job(learner, assignment, submitted_at, noticed=now)
        return True

    # --- what to start ------------------------------------------------------------------

    def next_graded_at(self, learner, now):
        """When ``learner`` may be graded again (``now`` if under the hourly limit)."""
        recent = sorted(t for t in self.graded.get(learner, ()) if now - t < HOUR)
        if len(recent) < self.per_hour:
            return now
        return recent[len(recent) - self.per_hour] + HOUR

    def next_actions(self, now):
        """The job processes to start now, in turn, up to ``parallel`` running in all.

        A learner with a running job waits. A learner past the hourly limit waits too; the
        first time for a submission, a ``tell-wait`` job tells the learner until when.
        """
        free = self.parallel - len(self.running)
        waiting = [job for job in self.queued.values() if job.learner not in self.running]
        # The learner served longest ago first (never served: first of all), then the oldest.
        waiting.sort(key=lambda job: (self.served.get(job.learner, float("-inf")), job.noticed))
        actions, busy = [], set()
        for job in waiting:
            if free <= 0:
                break
            if job.learner in busy:
                continue
            if job.kind == "grade" and job.attempts == 0:
                ready = self.next_graded_at(job.learner, now)
                if ready > now:
                    if job.told_wait_for != job.submitted_at:
                        actions.append(Action("tell-wait", job, wait_until=ready))
                        busy.add(job.learner)
                        free -= 1
                    continue
            actions.append(Action(job.kind, job))
            busy.add(job.learner)
            free -= 1
        return actions

    def started(self, action, now, pid=0):
        """``action``'s job process has started (process id ``pid``)."""
        job = self.queued.pop(action.job.key)
        job.running, job.started, job.pid = action.kind, now, pid
        self.running[job.learner] = job
        if action.kind != "tell-wait":
            self.served[job.learner] = now

    # --- what comes back ----------------------------------------------------------------

    def finished(self, learner, outcome, now):
        """The running job of ``learner`` ended with ``outcome`` (a JobOutcome)."""
        job = self.running.pop(learner)
        kind, job.running, job.pid = job.running, "", 0
        newer = self.queued.get(job.key)
        if outcome.status == "done":
            if kind == "grade":
                self.graded.setdefault(learner, []).append(now)
                self._record(job, now, "graded", "", outcome)
                # The job collected the newest submission: a queued one it already graded is done.
                if newer is not None and outcome.submitted_at and \
                        parse_timestamp(outcome.submitted_at) >= parse_timestamp(newer.submitted_at):
                    del self.queued[job.key]
            elif kind == "tell-wait":
                job.told_wait_for = outcome.submitted_at or job.submitted_at
                if newer is None:
                    self.queued[job.key] = job
            else:
                self._record(job, now, "learner told: delayed", "")
            return
        job.attempts += 1
        if newer is not None:
            # A newer submission is waiting: it is graded instead.
            self._record(job, now, "failed", outcome.reason, outcome)
            return
        if kind == "grade" and job.attempts < ATTEMPTS:
            self._record(job, now, "failed, retrying", outcome.reason, outcome)
            self.queued[job.key] = job
        elif kind == "grade":
            self._record(job, now, "failed", outcome.reason, outcome)
            self.failures.append({"learner": learner, "assignment": job.assignment,
                                  "submitted_at": job.submitted_at, "at": now, "reason": outcome.reason})
            job.kind, job.attempts = "tell-delayed", 0
            self.queued[job.key] = job
        elif kind == "tell-wait":
            job.told_wait_for = job.submitted_at  # not told, but not tried again and again either
            self._record(job, now, "notice failed", outcome.reason, outcome)
            self.queued[job.key] = job
        else:
            self._record(job, now, "notice failed", outcome.reason, outcome)

    def resume(self):
        """After a restart: the jobs that were running (their processes died with the
        service) go back to the queue, unless a newer submission of theirs is queued."""
        interrupted = list(self.running.values())
        self.running.clear()
        for job in interrupted:
            job.running, job.pid = "", 0
            self.queued.setdefault(job.key, job)
        return interrupted

    def _record(self, job, now, outcome, reason, result=None):
        entry = {"learner": job.learner, "assignment": job.assignment, "submitted_at": job.submitted_at,
                 "noticed": job.noticed, "started": job.started, "finished": now, "outcome": outcome,
                 "reason": reason}
        if result is not None:
            entry.update(score=result.score, max_score=result.max_score, seconds=result.seconds,
                         steps=dict(result.steps))
        self.history.append(entry)
        del self.history[:-HISTORY_LENGTH]

    # --- saving -------------------------------------------------------------------------

    def to_dict(self):
        data = asdict(self)
        data["graded"] = {learner: times for learner, times in self.graded.items()}
        return data

    @classmethod
    def from_dict(cls, data, per_hour=None, parallel=None):
        queue = cls(**{**data, "queued": {}, "running": {}})
        queue.queued = {key: Job(**job) for key, job in data.get("queued", {}).items()}
        queue.running = {learner: Job(**job) for learner, job in data.get("running", {}).items()}
        queue.per_hour = per_hour or queue.per_hour
        queue.parallel = parallel or queue.parallel
        return queue

    def forget_old(self, now):
        """Drop finish times older than an hour (they no longer count)."""
        self.graded = {learner: [t for t in times if now - t < HOUR]
                       for learner, times in self.graded.items() if any(now - t < HOUR for t in times)}


def save_state(queue, path):
    """Write the queue to ``path`` atomically (a reader, or a restart, sees the old or the new)."""
    path = Path(path)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(handle, "w") as out:
        json.dump(queue.to_dict(), out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def load_state(path, per_hour=None, parallel=None):
    """The queue saved at ``path``, or a new one."""
    path = Path(path)
    if not path.exists():
        return SubmissionQueue(per_hour=per_hour or 4, parallel=parallel or 2)
    try:
        data = json.loads(path.read_text())
        return SubmissionQueue.from_dict(data, per_hour=per_hour, parallel=parallel)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"course-on-submit: the state file {path} cannot be read ({error}). Move it "
                         "away to start with an empty queue (the gradebook keeps every grading).")


# --- the exchange ------------------------------------------------------------------------

def inbound_submissions(exchange_root, course_id, assignments):
    """``{(learner, assignment): newest timestamp}`` of the submissions in the exchange's
    inbound folder (nbgrader names each ``learner+assignment+timestamp+random``)."""
    newest = {}
    inbound = os.path.join(exchange_root, course_id, "inbound")
    for path in glob.glob(os.path.join(glob.escape(inbound), "*+*+*")):
        parts = os.path.basename(path).rsplit("+", 3)
        if len(parts) < 3 or parts[1] not in assignments:
            continue
        learner, assignment, stamp = parts[0], parts[1], parts[2]
        try:
            when = parse_timestamp(stamp)
        except Exception:  # not a submission nbgrader made; nbgrader's collect reports it
            continue
        previous = newest.get((learner, assignment))
        if previous is None or when > parse_timestamp(previous):
            newest[(learner, assignment)] = stamp
    return newest


def exchange_settings(course_root):
    """(exchange root, course id) from the configuration nbgrader reads in ``course_root``."""
    from nbgrader.apps.nbgraderapp import NbGraderApp

    here = os.getcwd()
    os.chdir(course_root)
    try:
        app = NbGraderApp()
        app.initialize([])
        config = app.config
    finally:
        os.chdir(here)
    root = config.get("Exchange", {}).get("root", "/srv/nbgrader/exchange")
    course_id = config.get("CourseDirectory", {}).get("course_id", "")
    if not course_id:
        raise SystemExit("course-on-submit: no CourseDirectory.course_id in the course's nbgrader config.")
    return root, course_id


# --- the service -------------------------------------------------------------------------

@dataclass
class Settings:
    """The service's settings (its command line)."""

    course_root: str
    assignments: tuple
    state: str
    per_hour: int = 4
    parallel: int = 2
    poll: float = 2.0
    cell_timeout: int | None = None
    timeout: float = 1200.0
    sandbox: bool = True
    job_command: tuple = (sys.executable, "-m", "course_grading.on_submit_job")


class Service:
    """The polling loop, the job processes and the status page of one running service."""

    def __init__(self, settings, clock=time.time):
        self.settings = settings
        self.clock = clock
        self.queue = load_state(settings.state, settings.per_hour, settings.parallel)
        self.exchange_root, self.course_id = exchange_settings(settings.course_root)
        self.processes = {}
        self.wake = asyncio.Event()
        self.stopping = False
        self.jobs_dir = Path(settings.state).parent / (Path(settings.state).name + ".jobs")
        self.jobs_dir.mkdir(mode=0o700, exist_ok=True)

    def save(self):
        save_state(self.queue, self.settings.state)

    def resume(self):
        for job in self.queue.resume():
            _kill_leftover(job)
        self.save()

    def poll_exchange(self):
        now = self.clock()
        found = inbound_submissions(self.exchange_root, self.course_id, self.settings.assignments)
        changed = False
        for (learner, assignment), stamp in sorted(found.items()):
            changed |= self.queue.submitted(learner, assignment, stamp, now)
        return changed

    def dispatch(self):
        """Start the job processes the policy allows now (marked running at once, so that
        the next look at the queue does not start them again)."""
        actions = self.queue.next_actions(self.clock())
        for action in actions:
            self.queue.started(action, self.clock())
            asyncio.ensure_future(self.run_job(action))
        if actions:
            self.save()

    async def run_job(self, action):
        job = action.job
        outcome_path = self.jobs_dir / f"{job.learner}-{job.assignment}.json"
        outcome_path.unlink(missing_ok=True)
        request = JobRequest(kind=action.kind, course_root=self.settings.course_root,
                             assignment=job.assignment, learner=job.learner,
                             outcome_path=str(outcome_path), wait_until=action.wait_until,
                             cell_timeout=self.settings.cell_timeout, timeout=self.settings.timeout,
                             sandbox=self.settings.sandbox)
        log_path = self.jobs_dir / f"{job.learner}-{job.assignment}.log"
        try:
            with open(log_path, "ab") as log:
                process = await asyncio.create_subprocess_exec(
                    *self.settings.job_command, stdin=asyncio.subprocess.PIPE, stdout=log, stderr=log,
                    cwd=self.settings.course_root, start_new_session=True)
        except OSError as error:
            self.queue.finished(job.learner, JobOutcome("failed", f"the job could not start: {error}"),
                                self.clock())
            self.save()
            self.wake.set()
            return
        job.pid = process.pid
        self.save()
        self.processes[job.learner] = process
        try:
            await process.communicate(request.to_json().encode())
        finally:
            self.processes.pop(job.learner, None)
        if self.stopping:
            return  # stopped by the hub: the job stays "running" in the state, resumed at start
        try:
            outcome = JobOutcome.from_json(outcome_path.read_text())
        except (OSError, ValueError, TypeError):
            outcome = JobOutcome("failed", f"the job process ended (exit code {process.returncode}) "
                                 f"without an outcome; see {log_path}")
        self.queue.finished(job.learner, outcome, self.clock())
        self.save()
        self.wake.set()

    async def loop(self):
        self.resume()
        while not self.stopping:
            self.queue.forget_old(self.clock())
            if self.poll_exchange():
                self.save()
            self.dispatch()
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.settings.poll)
            except asyncio.TimeoutError:
                pass

    def stop(self):
        """Stop: end the job processes; their jobs stay in the state, resumed at the next start."""
        self.stopping = True
        for process in list(self.processes.values()):
            _kill_group(process.pid)
        self.save()
        self.wake.set()


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_leftover(job):
    """A job process of an earlier run of the service, if still there, is ended: it dies with
    the service, but a restart must never grade one learner twice at once."""
    if not job.pid:
        return
    try:
        with open(f"/proc/{job.pid}/cmdline", "rb") as cmdline:
            if b"course_grading.on_submit_job" not in cmdline.read():
                return
    except OSError:
        return
    _kill_group(job.pid)


# --- the status ----------------------------------------------------------------------------

def _when(seconds):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else ""


def status_rows(queue, now):
    """(queue, last gradings, failures) as rows of text, newest first."""
    waiting = []
    for job in queue.running.values():
        waiting.append((job.learner, job.assignment, job.submitted_at, f"running ({job.running}) since "
                        f"{_when(job.started)}"))
    for job in queue.queued.values():
        ready = queue.next_graded_at(job.learner, now)
        state = "waiting" if ready <= now or job.kind != "grade" else f"over the hourly limit until {_when(ready)}"
        if job.attempts:
            state += f", attempt {job.attempts + 1}"
        waiting.append((job.learner, job.assignment, job.submitted_at, f"{job.kind}: {state}"))
    history = []
    for entry in reversed(queue.history[-50:]):
        score = "" if entry.get("score") is None else f"{entry['score']:g} / {entry['max_score']:g}"
        history.append((entry["learner"], entry["assignment"], entry["submitted_at"], _when(entry["finished"]),
                        entry["outcome"], score, entry.get("reason", "")))
    failures = [(f["learner"], f["assignment"], f["submitted_at"], _when(f["at"]), f["reason"])
                for f in reversed(queue.failures)]
    return waiting, history, failures


def format_status(queue, now, settings_line=""):
    """The status as plain text (``course-on-submit status``)."""
    waiting, history, failures = status_rows(queue, now)
    lines = [settings_line] if settings_line else []
    lines.append(f"Queue ({len(waiting)}):")
    lines += ["  " + " | ".join(row) for row in waiting] or ["  (empty)"]
    lines.append(f"Last gradings ({len(history)} shown):")
    lines += ["  " + " | ".join(cell for cell in row if cell) for row in history] or ["  (none)"]
    lines.append(f"Failures reported ({len(failures)}):")
    lines += ["  " + " | ".join(row) for row in failures] or ["  (none)"]
    return "\n".join(lines) + "\n"


def status_page(queue, now, settings):
    """The status as an HTML page (the service's page on the hub)."""
    waiting, history, failures = status_rows(queue, now)

    def table(title, headers, rows):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
                       for row in rows) or f"<tr><td colspan='{len(headers)}'>none</td></tr>"
        return f"<h2>{html.escape(title)}</h2><table id='{title.split()[0].lower()}'><tr>{head}</tr>{body}</table>"

    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Grading on submit</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:.2em .5em}"
            "table{border-collapse:collapse}</style></head><body><h1>Grading on submit</h1>"
            f"<p>Assignments graded on submit: {html.escape(', '.join(settings.assignments))}; at most "
            f"{settings.per_hour} gradings per learner per hour, {settings.parallel} at a time.</p>"
            + table("Queue", ["learner", "assignment", "submitted", "state"], waiting)
            + table("Gradings", ["learner", "assignment", "submitted", "finished", "outcome", "score", "reason"],
                    history)
            + table("Failures reported", ["learner", "assignment", "submitted", "when", "reason"], failures)
            + "</body></html>")


def serve_status_page(service):
    """The status page at the service's prefix, for the hub's users allowed to access the
    service (the admins: see hub/jupyterhub_config.py), through the hub's OAuth."""
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import web

    class StatusHandler(HubOAuthenticated, web.RequestHandler):
        @web.authenticated
        def get(self):
            self.set_header("Cache-Control", "no-store")
            self.finish(status_page(service.queue, service.clock(), service.settings))

    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    app = web.Application([(prefix, StatusHandler),
                           (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler)],
                          cookie_secret=os.urandom(32))
    url = os.environ["JUPYTERHUB_SERVICE_URL"]
    from urllib.parse import urlparse

    where = urlparse(url)
    app.listen(where.port, where.hostname)


def serve(settings):
    service = Service(settings)

    async def main():
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, service.stop)
        if os.environ.get("JUPYTERHUB_SERVICE_URL"):
            serve_status_page(service)
        await service.loop()

    asyncio.run(main())
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="course-on-submit",
        description="Grade each new submission in the course's exchange and release that learner's "
                    "feedback (a JupyterHub service); or print the service's status.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the service (the hub starts it)")
    run.add_argument("--course", default=".", help="nbgrader course folder (default: current folder)")
    run.add_argument("--assignment", action="append", required=True,
                     help="an assignment graded on submit (repeatable); others are left alone")
    run.add_argument("--state", required=True, help="the service's state file (JSON)")
    run.add_argument("--per-hour", type=int, default=4, help="gradings per learner per hour (default 4)")
    run.add_argument("--parallel", type=int, default=2, help="gradings at a time (default 2)")
    run.add_argument("--poll", type=float, default=2.0, help="seconds between looks at the exchange")
    run.add_argument("--cell-timeout", type=int, help="seconds per cell (default: the course's)")
    run.add_argument("--timeout", type=float, default=1200.0, help="seconds per grading (default 1200)")
    run.add_argument("--no-sandbox", action="store_true", help="learner code without bubblewrap "
                     "(only where bwrap is unavailable and learners' code is trusted)")
    show = commands.add_parser("status", help="print the queue, the last gradings and the failures")
    show.add_argument("--state", required=True, help="the service's state file (JSON)")
    args = parser.parse_args(argv)
    if args.command == "status":
        if not os.path.exists(args.state):
            print(f"course-on-submit: no state file at {args.state}: the service has not run yet.",
                  file=sys.stderr)
            return 2
        print(format_status(load_state(args.state), time.time()), end="")
        return 0
    if args.per_hour < 1 or args.parallel < 1:
        parser.error("--per-hour and --parallel must be at least 1")
    course = os.path.abspath(args.course)
    if not os.path.isfile(os.path.join(course, "nbgrader_config.py")):
        parser.error(f"{course} is not an nbgrader course folder (no nbgrader_config.py): pass --course")
    settings = Settings(course_root=course, assignments=tuple(args.assignment),
                        state=os.path.abspath(args.state), per_hour=args.per_hour, parallel=args.parallel,
                        poll=args.poll, cell_timeout=args.cell_timeout, timeout=args.timeout,
                        sandbox=not args.no_sandbox)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
