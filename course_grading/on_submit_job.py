"""One job of the grading-on-submit service, in a process of its own: for one learner and
one assignment, collect the newest submission, grade it with ``course-grade`` and release
that learner's feedback; or tell the learner, through the feedback of that submission,
when it will be graded or that its grading is delayed.

The service (``course_grading.on_submit``) starts ``python -m course_grading.on_submit_job``,
writes a ``JobRequest`` (JSON) to its standard input and reads the ``JobOutcome`` from the
file the request names. The process runs as the service's account (the instructor's or a
grader's), in the course folder, and dies with the service (so that a service killed
mid-grading and started again never has two gradings of one learner at once).

Collect, feedback and release are nbgrader's own (``NbGraderAPI``), restricted to the one
learner (``student_id``); grading is ``course_grading.grade.grade_assignment`` with
``students=[learner]``, sandboxed, so the verdicts are those of a batch run.
"""
from __future__ import annotations

import html
import io
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .sandbox import die_with_parent
from .supervisor import start_warm_server

#: What a job does: grade, or tell the learner something through their feedback.
KINDS = ("grade", "tell-wait", "tell-delayed")


@dataclass
class JobRequest:
    """The service's order to a job process (the one message from service to job)."""

    kind: str                   # one of KINDS
    course_root: str            # the nbgrader course folder
    assignment: str
    learner: str
    outcome_path: str           # where the job writes its JobOutcome (JSON)
    wait_until: float = 0.0     # tell-wait: when the grading will run (seconds since the epoch)
    cell_timeout: int | None = None   # seconds per cell; None: the course's Execute.timeout
    timeout: float = 1200.0     # seconds per notebook of the submission (graded side by side)
    sandbox: bool = True        # learner code in bubblewrap (course-grade's default)

    def to_json(self):
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text):
        fields = json.loads(text)
        if fields.get("kind") not in KINDS:
            raise ValueError(f"unknown job kind {fields.get('kind')!r}: expected one of {KINDS}")
        return cls(**fields)


@dataclass
class JobOutcome:
    """What a job did (the one message from job to service).

    ``status`` is ``done`` (graded and feedback released, or the learner told) or
    ``failed`` (the machinery failed: ``reason`` says how; the learner's code failing
    its tests is a grading, ``done``). ``submitted_at`` is nbgrader's timestamp of the
    submission that was collected (the newest at the time), ``score`` and ``max_score``
    the gradebook's after grading; ``steps`` the seconds each step took (``start``: reading
    nbgrader's configuration, then ``collect``, ``grade``, ``feedback``).
    """

    status: str
    reason: str = ""
    submitted_at: str = ""
    score: float | None = None
    max_score: float | None = None
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)

    def to_json(self):
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))


class JobFailed(Exception):
    """A step of the machinery failed; the message says which and why."""


def nbgrader_api(course_root):
    """nbgrader's API with the configuration nbgrader's commands would read in ``course_root``
    (the site-wide and user config folders, then the course's nbgrader_config.py)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.apps.nbgraderapp import NbGraderApp

    os.chdir(course_root)
    app = NbGraderApp()
    app.initialize([])
    api = NbGraderAPI(config=app.config)
    api.coursedir.root = os.path.abspath(course_root)
    return api


def _checked(result, step):
    """Raise JobFailed unless nbgrader's API call succeeded."""
    if not result.get("success"):
        detail = (result.get("error") or result.get("log") or "no details").strip().splitlines()
        raise JobFailed(f"nbgrader {step} failed: {' | '.join(detail[-3:])}")
    return result


def collect(api, assignment, learner):
    """Collect ``learner``'s newest submission of ``assignment``; returns its timestamp."""
    previous = api.coursedir.student_id
    api.coursedir.student_id = learner
    try:
        _checked(api.collect(assignment, update=True), "collect")
    finally:
        api.coursedir.student_id = previous
    folder = Path(api.coursedir.format_path(api.coursedir.submitted_directory, learner, assignment))
    stamp = folder / "timestamp.txt"
    if not stamp.is_file():
        raise JobFailed(f"no submission of {assignment} by {learner} in the exchange to collect")
    return stamp.read_text().strip()


def grade(request):
    """Grade the learner's collected submission with course-grade; returns (score, max_score)."""
    from nbgrader.api import Gradebook

    from . import sandbox
    from .grade import GradingError, grade_assignment

    settings = sandbox.SandboxSettings(enabled=request.sandbox)
    # Its notebooks side by side, on every core: with an empty queue the learner's feedback
    # comes that much sooner; with other gradings running, the cores are shared.
    try:
        summary = grade_assignment(request.course_root, request.assignment, students=[request.learner],
                                   settings=settings, cell_timeout=request.cell_timeout,
                                   timeout=request.timeout, retry_failed=True, progress=False,
                                   out=io.StringIO())
    except GradingError as error:
        raise JobFailed(f"course-grade: {error}") from None
    if request.learner in summary["failed"]:
        raise JobFailed(f"course-grade: {summary['failed'][request.learner]}")
    api_db = _db_url(request.course_root)
    with Gradebook(api_db) as gradebook:
        submission = gradebook.find_submission(request.assignment, request.learner)
        return submission.score, submission.max_score


def _db_url(course_root):
    from .grade import load_course

    coursedir, _ = load_course(course_root)
    return coursedir.db_url


def release_feedback(api, assignment, learner):
    """Generate and release ``learner``'s feedback of ``assignment`` (nbgrader's steps)."""
    _checked(api.generate_feedback(assignment, learner, force=True), "generate_feedback")
    _checked(api.release_feedback(assignment, learner), "release_feedback")


NOTICE_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>{title}</h1>
<p>{message}</p>
<p>Submitted: {submitted_at}</p>
</body></html>
"""


def notice_message(request, now=None):
    """(title, message) of the notice a tell-wait or tell-delayed job releases."""
    if request.kind == "tell-wait":
        when = time.strftime("%H:%M %Z", time.localtime(request.wait_until))
        minutes = max(1, round((request.wait_until - (now or time.time())) / 60))
        return ("Feedback later", f"You have used this hour's automatic gradings. This submission "
                f"will be graded at {when} (in about {minutes} minutes); fetch its feedback here then. "
                "Submitting again before then replaces it: the newest submission is graded.")
    return ("Feedback delayed", "The automatic grading of this submission could not finish, for a "
            "reason on the grader's side, not in your notebook. The instructor has been told; your "
            "feedback will come later. Nothing is wrong with your score because of this.")


def release_notice(api, request):
    """Release, as the feedback of each notebook of the learner's newest submission, a page
    with a notice: nbgrader's Assignments tab offers it to fetch like any feedback. A later
    grading's feedback replaces it (same submission, same place)."""
    submitted_at = collect(api, request.assignment, request.learner)
    submitted = Path(api.coursedir.format_path(api.coursedir.submitted_directory, request.learner,
                                               request.assignment))
    feedback = Path(api.coursedir.format_path(api.coursedir.feedback_directory, request.learner,
                                              request.assignment))
    title, message = notice_message(request)
    if feedback.exists():
        shutil.rmtree(feedback)
    feedback.mkdir(parents=True)
    for name in ("timestamp.txt", "submission_secret.txt"):
        if not (submitted / name).is_file():
            raise JobFailed(f"the collected submission has no {name}: cannot release a notice")
        shutil.copy(submitted / name, feedback / name)
    for notebook in sorted(submitted.glob("*.ipynb")):
        (feedback / f"{notebook.stem}.html").write_text(NOTICE_PAGE.format(
            title=html.escape(title), message=html.escape(message),
            submitted_at=html.escape(submitted_at)))
    _checked(api.release_feedback(request.assignment, request.learner), "release_feedback")
    return submitted_at


def run(request):
    """Do ``request``; returns its JobOutcome (machinery failures as ``failed``)."""
    started = time.monotonic()
    outcome = JobOutcome(status="done")
    step_started = started

    def step(name):
        nonlocal step_started
        now = time.monotonic()
        outcome.steps[name] = round(now - step_started, 3)
        step_started = now

    try:
        if request.kind == "grade":
            # The grading processes' warm server imports nbgrader on the other core meanwhile.
            start_warm_server()
        api = nbgrader_api(request.course_root)
        step("start")
        if request.kind == "grade":
            outcome.submitted_at = collect(api, request.assignment, request.learner)
            step("collect")
            outcome.score, outcome.max_score = grade(request)
            step("grade")
            release_feedback(api, request.assignment, request.learner)
            step("feedback")
        else:
            outcome.submitted_at = release_notice(api, request)
    except JobFailed as error:
        outcome.status, outcome.reason = "failed", str(error)
    except Exception as error:  # any other failure is the machinery's too, never the learner's
        outcome.status, outcome.reason = "failed", f"{type(error).__name__}: {error}"
    outcome.seconds = time.monotonic() - started
    return outcome


def main():
    die_with_parent()
    request = JobRequest.from_json(sys.stdin.read())
    outcome = run(request)
    partial = request.outcome_path + ".partial"
    Path(partial).write_text(outcome.to_json())
    os.replace(partial, request.outcome_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
