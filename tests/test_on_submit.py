"""The grading-on-submit service's policy (course_grading.on_submit.SubmissionQueue), its
saved state and its reading of the exchange: no hub, no grading, the clock passed in."""

import json

import pytest

from course_grading.on_submit import (HOUR, SubmissionQueue, format_status, inbound_submissions,
                                      load_state, save_state)
from course_grading.on_submit_job import JobOutcome, JobRequest

pytestmark = pytest.mark.fast

T0 = 1_800_000_000.0  # some time, in seconds since the epoch


def stamp(seconds):
    """nbgrader's timestamp of a submission made ``seconds`` after T0."""
    import datetime

    moment = datetime.datetime.fromtimestamp(T0 + seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def graded(submitted_at=""):
    return JobOutcome("done", submitted_at=submitted_at, score=5.0, max_score=10.0)


def failed(reason="the worker failed: BrokenProcessPool"):
    return JobOutcome("failed", reason)


def start_all(queue, now):
    actions = queue.next_actions(now)
    for action in actions:
        queue.started(action, now)
    return [(a.kind, a.job.learner, a.job.assignment, a.job.submitted_at) for a in actions]


def outcomes(queue, learner, outcome=None):
    return [(e["outcome"], e["submitted_at"]) for e in queue.history
            if e["learner"] == learner and (outcome is None or e["outcome"] == outcome)]


def test_a_newer_submission_supersedes_the_queued_older_one():
    queue = SubmissionQueue(parallel=2)
    assert queue.submitted("alice", "backprop", stamp(0), T0)
    assert queue.submitted("alice", "backprop", stamp(30), T0 + 31)
    assert not queue.submitted("alice", "backprop", stamp(0), T0 + 32), "an old submission seen again"
    assert start_all(queue, T0 + 40) == [("grade", "alice", "backprop", stamp(30))]
    assert outcomes(queue, "alice") == [("superseded", stamp(0))]


def test_one_job_at_a_time_per_learner_and_a_submission_during_grading_waits_for_it():
    queue = SubmissionQueue(parallel=3)
    queue.submitted("alice", "backprop", stamp(0), T0)
    queue.submitted("alice", "generalization", stamp(1), T0 + 1)
    queue.submitted("bob", "backprop", stamp(2), T0 + 2)
    assert start_all(queue, T0 + 3) == [("grade", "alice", "backprop", stamp(0)),
                                        ("grade", "bob", "backprop", stamp(2))]
    # alice submits again while her grading runs: queued, not started beside it.
    queue.submitted("alice", "backprop", stamp(10), T0 + 10)
    assert start_all(queue, T0 + 11) == []
    queue.finished("alice", graded(stamp(0)), T0 + 60)
    started = start_all(queue, T0 + 61)
    assert len(started) == 1 and started[0][1] == "alice"
    assert outcomes(queue, "alice", "graded") == [("graded", stamp(0))]


def test_a_queued_submission_that_the_running_job_already_collected_is_not_graded_again():
    queue = SubmissionQueue()
    queue.submitted("alice", "backprop", stamp(0), T0)
    start_all(queue, T0)
    queue.submitted("alice", "backprop", stamp(5), T0 + 5)
    # The job collected after the second submission: it graded the newest.
    queue.finished("alice", graded(stamp(5)), T0 + 60)
    assert start_all(queue, T0 + 61) == []
    assert queue.queued == {}


def test_learners_are_served_in_turn():
    queue = SubmissionQueue(parallel=1)
    queue.submitted("alice", "backprop", stamp(0), T0)
    start_all(queue, T0)
    queue.submitted("alice", "generalization", stamp(1), T0 + 1)
    queue.submitted("bob", "backprop", stamp(2), T0 + 2)
    queue.submitted("carol", "backprop", stamp(3), T0 + 3)
    queue.finished("alice", graded(), T0 + 50)
    order = []
    for minute in range(1, 4):
        (kind, learner, _, _), = start_all(queue, T0 + 60 * minute)
        order.append(learner)
        queue.finished(learner, graded(), T0 + 60 * minute + 30)
    # alice was served already, so bob and carol (in the order they submitted) go first.
    assert order == ["bob", "carol", "alice"]


def test_past_the_hourly_limit_the_learner_is_told_when_and_graded_then():
    queue = SubmissionQueue(per_hour=2)
    for minute in (0, 10):
        queue.submitted("alice", "backprop", stamp(60 * minute), T0 + 60 * minute)
        assert start_all(queue, T0 + 60 * minute)[0][0] == "grade"
        queue.finished("alice", graded(), T0 + 60 * minute + 50)
    queue.submitted("alice", "backprop", stamp(1200), T0 + 1200)
    actions = queue.next_actions(T0 + 1201)
    assert [(a.kind, a.wait_until) for a in actions] == [("tell-wait", T0 + 50 + HOUR)]
    queue.started(actions[0], T0 + 1201)
    queue.finished("alice", JobOutcome("done", submitted_at=stamp(1200)), T0 + 1205)
    # Told once; nothing runs until the first grading is an hour old.
    assert start_all(queue, T0 + 1300) == []
    assert start_all(queue, T0 + 50 + HOUR - 1) == []
    assert start_all(queue, T0 + 50 + HOUR) == [("grade", "alice", "backprop", stamp(1200))]
    # A new submission while waiting is told again (its own feedback), then graded instead.
    queue.finished("alice", graded(stamp(1200)), T0 + 60 + HOUR)
    queue.submitted("alice", "backprop", stamp(HOUR + 100), T0 + HOUR + 100)
    assert [a.kind for a in queue.next_actions(T0 + HOUR + 101)] == ["tell-wait"]
    # Other learners are not held up by alice's limit.
    queue.submitted("bob", "backprop", stamp(HOUR + 102), T0 + HOUR + 102)
    assert sorted((a.kind, a.job.learner) for a in queue.next_actions(T0 + HOUR + 103)) == [
        ("grade", "bob"), ("tell-wait", "alice")]


def test_a_machinery_failure_is_retried_once_then_reported_and_the_learner_told_never_graded():
    queue = SubmissionQueue()
    queue.submitted("alice", "backprop", stamp(0), T0)
    start_all(queue, T0)
    queue.finished("alice", failed(), T0 + 10)
    assert start_all(queue, T0 + 11) == [("grade", "alice", "backprop", stamp(0))]
    queue.finished("alice", failed("the worker failed: MemoryError"), T0 + 20)
    assert queue.failures == [{"learner": "alice", "assignment": "backprop", "submitted_at": stamp(0),
                               "at": T0 + 20, "reason": "the worker failed: MemoryError"}]
    assert start_all(queue, T0 + 21) == [("tell-delayed", "alice", "backprop", stamp(0))]
    queue.finished("alice", JobOutcome("done"), T0 + 25)
    assert start_all(queue, T0 + 26) == []
    assert [o for o, _ in outcomes(queue, "alice")] == ["failed, retrying", "failed", "learner told: delayed"]
    assert queue.graded == {}, "a failure must not count as a grading"
    text = format_status(queue, T0 + 30)
    assert "MemoryError" in text and "Failures reported (1)" in text


def test_a_restart_mid_grading_grades_the_pending_submission_exactly_once(tmp_path):
    state = tmp_path / "on-submit.json"
    queue = SubmissionQueue(parallel=2)
    queue.submitted("alice", "backprop", stamp(0), T0)
    queue.submitted("bob", "backprop", stamp(1), T0 + 1)
    start_all(queue, T0 + 2)
    queue.finished("bob", graded(stamp(1)), T0 + 40)
    save_state(queue, state)  # the last save before the service was killed: alice running
    assert json.loads(state.read_text())["running"]["alice"]["submitted_at"] == stamp(0)
    assert not list(tmp_path.glob("on-submit.json.*")), "a partial state file was left"

    restarted = load_state(state)
    interrupted = restarted.resume()
    assert [job.learner for job in interrupted] == ["alice"]
    # Once: one job for alice, none for bob (already graded), and not twice on a second look.
    assert start_all(restarted, T0 + 60) == [("grade", "alice", "backprop", stamp(0))]
    assert start_all(restarted, T0 + 61) == []
    restarted.finished("alice", graded(stamp(0)), T0 + 90)
    assert start_all(restarted, T0 + 91) == []
    assert outcomes(restarted, "alice", "graded") == [("graded", stamp(0))]
    assert outcomes(restarted, "bob", "graded") == [("graded", stamp(1))]
    # The exchange still holds both submissions: seen already, not queued again.
    assert not restarted.submitted("alice", "backprop", stamp(0), T0 + 100)
    assert not restarted.submitted("bob", "backprop", stamp(1), T0 + 100)


def test_the_saved_state_keeps_the_hourly_count_and_the_turns(tmp_path):
    queue = SubmissionQueue(per_hour=1)
    queue.submitted("alice", "backprop", stamp(0), T0)
    start_all(queue, T0)
    queue.finished("alice", graded(), T0 + 30)
    save_state(queue, tmp_path / "state.json")
    again = load_state(tmp_path / "state.json")
    again.submitted("alice", "backprop", stamp(100), T0 + 100)
    assert [a.kind for a in again.next_actions(T0 + 101)] == ["tell-wait"]


def test_inbound_submissions_newest_per_learner_and_only_the_assignments_switched_on(tmp_path):
    inbound = tmp_path / "backprop" / "inbound"
    for name in (f"alice+backprop+{stamp(0)}+abc", f"alice+backprop+{stamp(60)}+def",
                 f"bob+backprop+{stamp(5)}", f"bob+other+{stamp(7)}+x", "README", "carol+backprop+soon+x"):
        (inbound / name).mkdir(parents=True)
    assert inbound_submissions(tmp_path, "backprop", ("backprop",)) == {
        ("alice", "backprop"): stamp(60), ("bob", "backprop"): stamp(5)}
    assert inbound_submissions(tmp_path, "backprop", ()) == {}


def test_bad_settings_and_messages_are_refused():
    with pytest.raises(ValueError, match="per_hour"):
        SubmissionQueue(per_hour=0)
    request = JobRequest("grade", "/course", "backprop", "alice", "/tmp/x.json")
    assert JobRequest.from_json(request.to_json()) == request
    with pytest.raises(ValueError, match="unknown job kind"):
        JobRequest.from_json(request.to_json().replace('"grade"', '"delete"'))
