"""Two submissions as learners' editors leave them, graded end to end by ``course-grade``:
each scores what the same answers score in a notebook the editor left alone, and the
summary and the feedback page say what was found and done.

- ``pasted_gradient``: the gradient cell keeps a wrong first try (flipped sign) and an
  edited copy pasted below it holds the correct code, as the kernel ran it; a stray
  ``backprop-Copy1.ipynb`` and JupyterLab's checkpoints beside the notebook.
- ``old_moved_deleted``: saved by an older Jupyter (format 4.4, no cell ids), a test cell
  moved to the end, a pasted copy of another test cell, the setup cell deleted.
"""
import html

import nbformat
import pytest

import editor_cases as cases
import grading_support as support
from demo import examples

ASSIGNMENT = support.ASSIGNMENT


def _answered(root, gradient=None):
    answers = examples.model_answers(root / "source" / ASSIGNMENT / "backprop.ipynb")
    if gradient is not None:
        answers[examples.GRADIENT_CELL] = (examples.ANSWER_FILES / gradient).read_text()
    return examples.fill_in(root / "release" / ASSIGNMENT / "backprop.ipynb", answers), answers


def _submit(root, student, files):
    folder = root / "submitted" / student / ASSIGNMENT
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = support.released_course(tmp_path_factory.mktemp("editors") / "course")
    flipped, answers = _answered(root, "flipped_sign.py")
    pasted = cases.pasted_copy(flipped, examples.GRADIENT_CELL, source=answers_correct(root))
    correct, _ = _answered(root)
    _submit(root, "pasted_gradient", {"backprop.ipynb": cases.saved(pasted),
                                      "backprop-Copy1.ipynb": cases.saved(flipped),
                                      ".ipynb_checkpoints/backprop-checkpoint.ipynb": cases.saved(flipped)})
    damaged = cases.moved(correct, "test_gradient_training_set", after="test_reported_training_loss")
    damaged = cases.pasted_copy(damaged, "test_keys_and_shapes", after="test_tiny_input_to_hid")
    damaged = cases.deleted(damaged, "setup")
    _submit(root, "old_moved_deleted", {"backprop.ipynb": cases.older_jupyter(damaged, 4)})
    result = support.course_grade(root, "--workers", "2")
    assert result.returncode == 0 and not result.stderr, result.stdout + result.stderr
    support.nbgrader(root, "generate_feedback", ASSIGNMENT, "--force")
    return root, result


def answers_correct(root):
    return examples.model_answers(root / "source" / ASSIGNMENT / "backprop.ipynb")[examples.GRADIENT_CELL]


@pytest.mark.parametrize("student", ["pasted_gradient", "old_moved_deleted"])
def test_graded_as_if_the_editor_had_left_the_notebook_alone(graded, student):
    root, _ = graded
    maximum = support.autograded_max_scores(root / "gradebook.db")
    scores = {cell: auto for cell, (auto, _) in support.student_scores(root / "gradebook.db", student).items()
              if cell in maximum}
    assert scores == maximum


def test_the_summary_says_what_was_found_and_done(graded):
    _, result = graded
    summary = result.stdout
    assert ("pasted_gradient: backprop.ipynb: found a copy of the answer cell 'd_loss_by_d_model'" in summary)
    assert "pasted_gradient: left out backprop-Copy1.ipynb: a copy of backprop.ipynb" in summary
    # The pasted copy of test_keys_and_shapes comes first, so it keeps the grade id and is
    # put back in its place; the original runs as an ordinary cell.
    for note in ("saved in notebook format 4.4", "found a copy of the test cell 'test_keys_and_shapes'",
                 "cells 'test_keys_and_shapes', 'test_gradient_training_set' were moved",
                 "cell 'setup' was deleted"):
        assert f"old_moved_deleted: backprop.ipynb: {note}" in summary, summary


def test_the_feedback_page_says_it_too(graded):
    root, _ = graded
    page = html.unescape((root / "feedback" / "old_moved_deleted" / ASSIGNMENT / "backprop.html").read_text())
    assert "Note from the grader." in page
    assert "Cell 'setup' was deleted: put back as the assignment has it" in page
    autograded = nbformat.read(root / "autograded" / "pasted_gradient" / ASSIGNMENT / "backprop.ipynb",
                               as_version=4)
    assert "d_loss_by_d_model" in autograded.cells[0].source
    assert not (root / "autograded" / "pasted_gradient" / ASSIGNMENT / "backprop-Copy1.ipynb").exists()
