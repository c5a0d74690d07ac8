"""A job of the grading-on-submit service (``python -m course_grading.on_submit_job``) with
nbgrader's real exchange, without grading: a learner told that the feedback is delayed gets
a page in the place nbgrader's Assignments tab looks for that submission's feedback, and is
never given a score; a job whose machinery fails says so, and records nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_grading.on_submit_job import JobOutcome, JobRequest
from demo import courses

PROJECT = Path(__file__).resolve().parent.parent
HUB = PROJECT / "hub"


def environment(role, exchange, course, **extra):
    """The environment of a hub server for ``role`` (see hub/jupyterhub_config.py)."""
    return dict(os.environ, JUPYTER_CONFIG_PATH=os.pathsep.join([str(HUB / "jupyter" / role),
                                                                 str(HUB / "jupyter" / "site")]),
                COURSE_EXCHANGE=str(exchange), COURSE_ROOT=str(course), **extra)


def nbgrader(env, cwd, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def run_job(request, env, cwd):
    result = subprocess.run([sys.executable, "-m", "course_grading.on_submit_job"], input=request.to_json(),
                            env=env, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return JobOutcome.from_json(Path(request.outcome_path).read_text())


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """A released course, and alice's submission of it in the exchange."""
    work = tmp_path_factory.mktemp("on-submit-job")
    course = courses.released_course(work / "course")
    exchange = work / "exchange"
    exchange.mkdir()
    teacher = environment("instructor", exchange, course)
    nbgrader(teacher, course, "release_assignment", "backprop", "--force")
    home = work / "alice"
    home.mkdir()
    learner = environment("learner", exchange, course, JUPYTERHUB_USER="alice")
    nbgrader(learner, home, "fetch_assignment", "backprop")
    nbgrader(learner, home, "submit", "backprop")
    return work, course, exchange, teacher, learner, home


def test_a_learner_told_of_a_delay_sees_it_as_the_feedback_of_that_submission_and_gets_no_score(submitted):
    from nbgrader.api import Gradebook, MissingEntry

    work, course, exchange, teacher, learner, home = submitted
    request = JobRequest("tell-delayed", str(course), "backprop", "alice", str(work / "outcome.json"))
    outcome = run_job(request, teacher, course)
    assert outcome.status == "done", outcome.reason
    (inbound,) = (exchange / "backprop" / "inbound").glob("alice+backprop+*")
    assert outcome.submitted_at == inbound.name.rsplit("+", 3)[2]
    # nbgrader's list, as alice: feedback to fetch for her submission; fetched, it is the notice.
    assert "(feedback ready to be fetched)" in nbgrader(learner, home, "list", "--cached")
    nbgrader(learner, home, "fetch_feedback", "backprop")
    (page,) = (home / "backprop" / "feedback").rglob("backprop.html")
    assert "Feedback delayed" in page.read_text() and "not in your notebook" in page.read_text()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        with pytest.raises(MissingEntry):
            gradebook.find_submission("backprop", "alice")


def test_a_job_whose_machinery_fails_says_so(submitted):
    work, course, exchange, teacher, learner, home = submitted
    request = JobRequest("grade", str(course), "backprop", "nobody-submitted", str(work / "failed.json"))
    outcome = run_job(request, teacher, course)
    assert outcome.status == "failed"
    assert "no submission of backprop by nobody-submitted" in outcome.reason
    # The steps it finished, timed; the failed one is not among them.
    assert list(outcome.steps) == ["start"] and 0 < outcome.steps["start"] <= outcome.seconds
