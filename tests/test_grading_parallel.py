"""``course-grade``: parallel grading gives the gradebook a sequential ``nbgrader autograde`` gives,
survives being killed, and runs on a Dask cluster.

One released course with a few example submissions (correct and faulty answers) is graded
once sequentially by nbgrader itself; each test grades a copy of it in another way and
compares the gradebooks cell by cell.
"""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import grading_support as support
from course_grading.messages import VERDICT_FILE

pytestmark = pytest.mark.skipif(not support.COURSE.joinpath("source", "backprop", "backprop.ipynb").exists(),
                                reason="the course's source notebook is missing")

# A correct and a faulty answer: enough to tell a real comparison from an empty one, and
# to kill a one-at-a-time run between the two.
STUDENTS = ("correct", "transposed")


@pytest.fixture(scope="module")
def submitted_course(tmp_path_factory):
    root = support.released_course(tmp_path_factory.mktemp("course"))
    support.submit_examples(root, STUDENTS)
    return root


@pytest.fixture(scope="module")
def sequential(submitted_course, tmp_path_factory):
    """The gradebook of nbgrader's own, sequential autograde of every submission."""
    root = support.copy_course(submitted_course, tmp_path_factory.mktemp("sequential") / "course")
    support.nbgrader(root, "autograde", support.ASSIGNMENT)
    return root


@pytest.fixture(scope="module")
def parallel(submitted_course, tmp_path_factory):
    root = support.copy_course(submitted_course, tmp_path_factory.mktemp("parallel") / "course")
    result = support.course_grade(root, "--workers", "2")
    return root, result


def test_parallel_grades_equal_sequential_autograde(sequential, parallel):
    root, result = parallel
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    expected = support.scores(sequential / "gradebook.db")
    got = support.scores(root / "gradebook.db")
    assert got == expected
    # The examples differ: the comparison is not between two empty gradebooks.
    assert {support.student_scores(root / "gradebook.db", s)["test_gradient_training_set"][0] for s in STUDENTS} == {0.0, 2.0}
    assert support.submissions(root / "gradebook.db") == support.submissions(sequential / "gradebook.db")
    for student in STUDENTS:
        assert (root / "autograded" / student / "backprop" / "backprop.ipynb").is_file()
    assert f"graded {len(STUDENTS)}, failed 0" in result.stdout


def test_autograded_files_have_nbgraders_names_and_permissions(sequential, parallel):
    def files(root):
        return {str(path.relative_to(root)): oct(path.stat().st_mode & 0o777)
                for path in sorted((root / "autograded").rglob("*")) if path.is_file()}

    expected = files(sequential)
    assert len(expected) >= 2 * len(STUDENTS)  # a notebook and a timestamp each
    got = files(parallel[0])
    # Beside nbgrader's files, course-grade's verdicts of each learner (for the class report).
    verdict_files = {f"autograded/{student}/backprop/{VERDICT_FILE}" for student in STUDENTS}
    assert verdict_files <= set(got)
    assert {name: mode for name, mode in got.items() if name not in verdict_files} == expected


def test_formgrader_api_shows_the_grades(sequential, parallel):
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    def listing(root):
        coursedir = CourseDirectory(root=str(root))
        api = NbGraderAPI(coursedir=coursedir)
        return {s["student"]: (s["autograded"], s["score"], s["max_score"])
                for s in api.get_submissions("backprop")}

    got, expected = listing(parallel[0]), listing(sequential)
    assert got == expected
    assert all(autograded for autograded, _, _ in got.values())


def test_with_cores_to_spare_a_submissions_notebooks_are_graded_side_by_side(tmp_path):
    """One submission, two workers: each notebook in a grading process of its own, and the
    gradebook, the autograded files and the verdicts are what one grading of the whole gives."""
    import dataclasses
    import shutil

    from course_grading.messages import read_verdict_file
    from demo import examples

    root = support.released_course(tmp_path / "course")
    # A second notebook (the short one again, under another name): transposed's gradient is
    # wrong in the first, the model answers are in the second, so the two score differently.
    source = root / "source" / support.ASSIGNMENT
    shutil.copy(source / "backprop.ipynb", source / "second.ipynb")
    support.nbgrader(root, "generate_assignment", support.ASSIGNMENT, "--force")
    examples.write_submissions(root, {"transposed": dataclasses.replace(
        examples.EXAMPLES["transposed"], other_answers=True, notebooks=("backprop", "second"))})
    sequential = support.copy_course(root, tmp_path / "sequential")
    support.nbgrader(sequential, "autograde", support.ASSIGNMENT)
    result = support.course_grade(root, "--workers", "2")
    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr
    assert "notebooks side by side" in result.stdout and "graded 1, failed 0" in result.stdout
    got = support.scores(root / "gradebook.db")
    assert got == support.scores(sequential / "gradebook.db")
    first, second = ({cell: score for (_, notebook, cell), (score, _) in got.items() if notebook == name}
                     for name in ("backprop", "second"))
    assert first["test_gradient_training_set"] == 0.0 and second["test_gradient_training_set"] == 2.0
    folder = root / "autograded" / "transposed" / support.ASSIGNMENT
    assert {path.name for path in folder.iterdir()} == {"backprop.ipynb", "second.ipynb", "timestamp.txt", VERDICT_FILE}
    verdicts = read_verdict_file(folder / VERDICT_FILE)
    assert {cell.notebook for cell in verdicts.cells} == {"backprop", "second"}
    assert {cell.notebook for cell in verdicts.cells if cell.grade_id == "test_gradient_training_set"
            and not cell.passed} == {"backprop"}


def test_rerun_grades_nothing_again(parallel):
    root, _ = parallel
    before = support.scores(root / "gradebook.db")
    result = support.course_grade(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Grading 0 submissions of backprop" in result.stdout
    assert f"{len(STUDENTS)} already graded" in result.stdout
    assert support.scores(root / "gradebook.db") == before


def test_killed_run_resumes_without_regrading_or_losing(submitted_course, parallel, tmp_path):
    """SIGKILL the command after the first grade is recorded; the rerun grades only the rest."""
    root = support.copy_course(submitted_course, tmp_path / "course")
    command = [sys.executable, "-m", "course_grading.grade", "backprop", "--course", str(root), "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while not support.journal(root / "gradebook.db"):
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "no submission was graded in time"
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    first = support.journal(root / "gradebook.db")
    assert 0 < len(first) < len(STUDENTS), "the kill came too late to test anything"

    result = support.course_grade(root, "--workers", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(first)} already graded" in result.stdout
    assert f"Grading {len(STUDENTS) - len(first)} submissions" in result.stdout
    journal = support.journal(root / "gradebook.db")
    assert set(journal) == set(STUDENTS)
    assert all(status == "graded" for status, _, _ in journal.values())
    # Exactly one submission and one grade per cell each (support.scores refuses duplicates),
    # with the scores of the uninterrupted run.
    assert support.scores(root / "gradebook.db") == support.scores(parallel[0] / "gradebook.db")
    assert sorted(support.submissions(root / "gradebook.db")) == sorted(STUDENTS)


def test_dask_cluster_on_loopback(submitted_course, sequential, tmp_path):
    from distributed import LocalCluster

    from course_grading.grade import grade_assignment

    root = support.copy_course(submitted_course, tmp_path / "course")
    chosen = ["transposed"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        summary = grade_assignment(str(root), "backprop", students=chosen, scheduler=cluster.scheduler_address,
                                   progress=False)
    assert sorted(summary["graded"]) == chosen and not summary["failed"]
    expected = {key: value for key, value in support.scores(sequential / "gradebook.db").items() if key[0] in chosen}
    assert support.scores(root / "gradebook.db") == expected


def test_a_grading_process_that_stops_says_why(submitted_course, tmp_path):
    """The process itself fails (here: a task whose source files are not files), not the
    learner's code: the reason names the exit code and the error from its log."""
    import dataclasses

    from course_grading import grade, sandbox, supervisor

    course = grade.Course(str(submitted_course), support.ASSIGNMENT, settings=sandbox.SandboxSettings())
    task = dataclasses.replace(course.make_task("correct"), source_files=None)
    result = supervisor.grade_submission(task)
    assert result.status == "failed" and result.scores is None
    assert result.reason.startswith("the grading process stopped (exit code 1): AttributeError: "
                                    "'NoneType' object has no attribute 'items'"), result.reason
