"""Verdicts no learner can forge: each attack graded by ``course-grade`` and, as the control,
by plain ``nbgrader autograde``, where the same attack works.

One course holds an honest correct submission and one submission per attack; a copy of it
is graded by plain nbgrader. Each test asserts what the attack got under ``course-grade``
and that it did get it in the control, so that the test can fail.
"""
import json
import re
import os
import shutil
from pathlib import Path

import pytest

import grading_support as support
from course_grading.messages import VERDICT_FILE, read_verdict_file
from course_utils.diagnosis import Mistake

HIDDEN_CODE = "hidden_tests.check_"


def _test_cells(notebook_path):
    notebook = json.loads(Path(notebook_path).read_text())
    return {cell["metadata"]["nbgrader"]["grade_id"]: cell for cell in notebook["cells"]
            if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("grade")
            and not cell["metadata"]["nbgrader"].get("solution")}


def _outputs_text(notebook_path):
    notebook = json.loads(Path(notebook_path).read_text())
    return json.dumps([cell.get("outputs", []) for cell in notebook["cells"]])


def _put_script_in_a_written_answer(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "ex1a_softmax_answer":
            cell["source"] = "My answer. <script>document.title = 'TAKEN OVER BY MARKDOWN'</script>"
    path.write_text(json.dumps(notebook))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("trusted")
    root = support.released_course(base / "course")
    support.submit_examples(root, ["correct"])
    support.submit_gradient(root, "forge_verdicts", support.attack("forge_verdicts", gradient="flipped_sign.py"))
    # ... and a verdict file of its own, in which every cell passed.
    forged_file = root / "submitted" / "forge_verdicts" / "backprop" / VERDICT_FILE
    forged_file.write_text(json.dumps({"format": 1, "assignment_id": "backprop", "student_id": "forge_verdicts",
                                       "cells": [], "notes": ["all passed"]}))
    support.submit_gradient(root, "steal_hidden_tests", support.attack("steal_hidden_tests", "solution", root))
    support.submit_gradient(root, "helper_in_other_cell", support.attack("helper_in_other_cell"),
                            extra_cells=[support.attack("helper_cell")])
    support.submit_gradient(root, "other_version_names", support.attack("other_version_names"))
    flood = support.submit_gradient(root, "flood_and_script", support.attack("flood_and_script", "solution", root))
    _put_script_in_a_written_answer(flood / "backprop.ipynb")
    control = support.copy_course(root, base / "control")
    # Files no grader should read: a link to the source notebook (in both courses), a
    # dangling link and a FIFO (only here: plain nbgrader would copy the link's target,
    # stop at the dangling link and hang on the FIFO), and a notebook that is not JSON.
    source = root / "source" / "backprop" / "backprop.ipynb"
    for course in (root, control):
        (course / "submitted" / "other_version_names" / "backprop" / "source_link.txt").symlink_to(source)
    hostile = root / "submitted" / "other_version_names" / "backprop"
    (hostile / "dangling.txt").symlink_to(base / "nothing-here")
    os.mkfifo(hostile / "pipe")
    broken = root / "submitted" / "broken_notebook" / "backprop"
    broken.mkdir(parents=True)
    (broken / "backprop.ipynb").write_text('{"cells": [')
    result = support.course_grade(root, "--workers", "2")
    # Exit code 1: one submission failed (the broken notebook), and only that one.
    assert result.returncode == 1 and not result.stderr, result.stdout + result.stderr
    assert {s for s, (status, _, _) in support.journal(root / "gradebook.db").items() if status == "failed"} == {
        "broken_notebook"}
    (hostile / "pipe").unlink()  # copies of this course must not open it
    (hostile / "dangling.txt").unlink()
    support.nbgrader(root, "generate_feedback", "backprop", "--force")
    support.nbgrader(control, "autograde", "backprop", "--force")
    support.nbgrader(control, "generate_feedback", "backprop", "--force")
    return root, control, result


def _scores(root, student):
    return {cell: auto for cell, (auto, _) in support.student_scores(root / "gradebook.db", student).items()}


def _auto(root, student):
    """The scores of the autograded cells (the written answers wait for a person)."""
    full = support.autograded_max_scores(root / "gradebook.db")
    return {cell: points for cell, points in _scores(root, student).items() if cell in full}


def test_honest_submissions_get_the_same_grades_as_plain_nbgrader(graded):
    root, control, _ = graded
    full = support.autograded_max_scores(root / "gradebook.db")
    for student in ("correct", "helper_in_other_cell"):
        # A correct gradient that loops over the cases and calls a helper from another cell
        # is backpropagation, counted as such on any machine.
        assert _auto(root, student) == _auto(control, student) == full, student


def test_forged_verdicts_and_messages_earn_nothing(graded):
    root, control, result = graded
    forged, honest_control = _scores(root, "forge_verdicts"), _scores(control, "forge_verdicts")
    # The control: in the learner's kernel every test cell passed, for a wrong gradient.
    full = support.autograded_max_scores(root / "gradebook.db")
    assert {cell: honest_control[cell] for cell in full} == full
    # Here: only what a flipped sign still gets right (the form, and the hand-computed
    # answers, which come before the attack), nothing of what the kernel claimed.
    earned = {cell for cell, points in forged.items() if points}
    assert earned == {"test_tiny_hid_to_class", "test_tiny_input_to_hid"}, forged
    assert forged["test_gradient_training_set"] == 0 and forged["test_reported_training_loss"] == 0
    # The fake messages made every call fail, and the summary says so.
    messages = {grade_id: cell["outputs"][0]["evalue"]
                for grade_id, cell in _test_cells(root / "autograded" / "forge_verdicts" / "backprop" /
                                                  "backprop.ipynb").items() if cell["outputs"][0].get("evalue")}
    assert "not an answer" in messages["test_gradient_training_set"] or "Defined" in messages[
        "test_gradient_training_set"], messages
    assert "could not be read from your notebook" in messages["test_reported_training_loss"], messages
    assert "forge_verdicts" in result.stdout and "misbehaved" in result.stdout


def test_hidden_tests_never_reach_the_learner(graded):
    root, control, _ = graded
    autograded = root / "autograded" / "steal_hidden_tests" / "backprop" / "backprop.ipynb"
    feedback = (root / "feedback" / "steal_hidden_tests" / "backprop" / "backprop.html").read_text()
    outputs = _outputs_text(autograded)
    # The control: plain nbgrader ran the hidden tests in the learner's kernel, which printed
    # their code into the learner's own feedback, and the notebook file beside it held them.
    control_feedback = (control / "feedback" / "steal_hidden_tests" / "backprop" / "backprop.html").read_text()
    assert HIDDEN_CODE in control_feedback
    assert "hidden tests in it: True" in _outputs_text(
        control / "autograded" / "steal_hidden_tests" / "backprop" / "backprop.ipynb")
    # Here: the kernel saw only the stubs; no output, no file, no module gave them away.
    assert HIDDEN_CODE not in outputs and HIDDEN_CODE not in feedback
    assert "hidden tests in it: True" not in outputs
    assert "LEAKED MODULE" not in outputs and "course_grading cannot be imported" in outputs
    # ... and the learner's correct work is graded in full all the same.
    full = support.autograded_max_scores(root / "gradebook.db")
    assert _auto(root, "steal_hidden_tests") == full


def test_names_of_other_versions_are_explained_from_the_learner_process(graded):
    root, control, _ = graded
    for course in (root, control):
        cells = _test_cells(course / "autograded" / "other_version_names" / "backprop" / "backprop.ipynb")
        message = cells["test_gradient_training_set"]["outputs"][-1]["evalue"]
        assert "KeyError" in message and "data['target']" in message and "line 4 of your code: error = " in message, message


def test_links_fifos_and_broken_notebooks_are_left_out_with_a_note(graded):
    root, control, result = graded
    # The control: plain nbgrader copied the link's target, hidden tests and all.
    copied = control / "autograded" / "other_version_names" / "backprop" / "source_link.txt"
    assert "BEGIN HIDDEN TESTS" in copied.read_text()
    assert not (root / "autograded" / "other_version_names" / "backprop" / "source_link.txt").exists()
    for note in ("left out source_link.txt: it is a symbolic link", "left out dangling.txt: it is a symbolic link",
                 "left out pipe: it is not a regular file"):
        assert f"other_version_names: {note}" in result.stdout, result.stdout
    assert "broken_notebook: the submission cannot be graded: backprop.ipynb is not a notebook" in result.stdout


def test_output_is_capped_and_learner_markup_is_never_live(graded):
    root, control, _ = graded
    mine = root / "autograded" / "flood_and_script" / "backprop" / "backprop.ipynb"
    theirs = control / "autograded" / "flood_and_script" / "backprop" / "backprop.ipynb"
    page = (root / "feedback" / "flood_and_script" / "backprop" / "backprop.html").read_text()
    # The control: plain nbgrader kept 20 MiB of output and the script, which a page made
    # without sanitizing (nbconvert's default) runs.
    from nbconvert import HTMLExporter

    assert theirs.stat().st_size > 20 * 2**20
    unsanitized, _ = HTMLExporter().from_filename(str(theirs))
    assert [script for script in re.findall(r"<script[^>]*>(.*?)</script>", unsanitized, re.DOTALL)
            if "TAKEN OVER" in script]
    # Here: at most the cell limit, with a note, and nothing that runs.
    assert mine.stat().st_size < 2 * 2**20 and "[output truncated:" in mine.read_text()
    outputs = _outputs_text(mine)
    assert "text/html" not in outputs and "application/javascript" not in outputs
    # No script element of the page holds the learner's code (the code cell itself is
    # shown as text), and no element carries an event handler of the learner's.
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.DOTALL)
    assert scripts and not [script for script in scripts if "TAKEN OVER" in script]
    assert _auto(root, "flood_and_script") == support.autograded_max_scores(root / "gradebook.db")


def test_test_cells_show_the_graders_message(graded):
    root, _, _ = graded
    for grade_id, cell in _test_cells(root / "autograded" / "correct" / "backprop" / "backprop.ipynb").items():
        assert [(o["output_type"], "".join(o["text"])) for o in cell["outputs"]] == [
            ("stream", "Passed (checked by the grader).\n")], grade_id
        # The instructor sees the test's own code again.
        assert "report(globals()" not in "".join(cell["source"])


def test_a_setup_that_fails_fails_the_submission_and_keeps_the_good_grade(graded, tmp_path):
    root, _, _ = graded
    copy = support.copy_course(root, tmp_path / "course")
    before = support.student_scores(copy / "gradebook.db", "correct")
    shutil.copytree(root / "autograded", copy / "autograded")
    empty = tmp_path / "no-data"
    empty.mkdir()
    result = support.course_grade(copy, "--workers", "1", "--student", "correct", "--force",
                                  env={**os.environ, "COURSE_DATA_DIR": str(empty)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "correct: grading machinery failure" in result.stdout, result.stdout
    assert support.journal(copy / "gradebook.db")["correct"][0] == "failed"
    assert support.student_scores(copy / "gradebook.db", "correct") == before
    assert (copy / "autograded" / "correct" / "backprop" / "backprop.ipynb").exists()


def _verdicts(root, student):
    """{grade_id: CellVerdict} of a learner's backprop notebook, from course-grade's verdict file."""
    found = read_verdict_file(root / "autograded" / student / "backprop" / VERDICT_FILE)
    assert (found.assignment_id, found.student_id) == ("backprop", student)
    return {cell.grade_id: cell for cell in found.cells if cell.notebook == "backprop"}


def test_verdict_files_agree_with_the_gradebook_and_name_the_mistakes(graded):
    root, control, _ = graded
    for student in ("correct", "forge_verdicts", "other_version_names"):
        cells = _verdicts(root, student)
        scores = _auto(root, student)
        assert set(cells) == set(scores)
        assert {grade_id for grade_id, cell in cells.items() if cell.passed} == {
            grade_id for grade_id, points in scores.items() if points}, student
    correct = _verdicts(root, "correct")
    assert not any(cell.mistakes or cell.learner_process for cell in correct.values())
    assert correct["test_reported_training_loss"].answers == {"reported_training_loss": 2.301906765216956}
    assert correct["test_tiny_hid_to_class"].answers == {"tiny_d_hid_to_class": [0.36553, -0.36553]}
    # The forged messages broke the learner process: named as its failure, not as a wrong gradient.
    forged = _verdicts(root, "forge_verdicts")
    assert forged["test_gradient_training_set"].learner_process
    assert forged["test_gradient_training_set"].mistakes == (Mistake.PROCESS_FAILED,)
    assert forged["test_reported_training_loss"].mistakes == (Mistake.UNREADABLE_ANSWER,)
    # A name of another version: the function raised, as the learner is told.
    other = _verdicts(root, "other_version_names")["test_gradient_training_set"]
    assert other.mistakes == (Mistake.RAISED,) and "KeyError" in other.message
    # The learner's own verdict file was not taken; none goes out with the feedback.
    assert _verdicts(root, "forge_verdicts") and "all passed" not in read_verdict_file(
        root / "autograded" / "forge_verdicts" / "backprop" / VERDICT_FILE).notes
    assert not list((root / "feedback").rglob(VERDICT_FILE)) and list((root / "feedback").rglob("*.html"))
    # A submission that could not be graded has no verdicts (its grades are nbgrader's as before).
    assert not (root / "autograded" / "broken_notebook" / "backprop" / VERDICT_FILE).exists()
    assert not (control / "autograded" / "correct" / "backprop" / VERDICT_FILE).exists()
