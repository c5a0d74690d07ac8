"""What learners get back, end to end: one course graded by ``course-grade``, its feedback
pages made as the demo makes them (``demo.pipeline.feedback``).

Two submissions as learners' editors leave them each score what the same answers score
in a notebook the editor left alone, and the summary and the feedback page say what was
found and done:

- ``pasted_gradient``: the gradient cell keeps a wrong first try (flipped sign) and an
  edited copy pasted below it holds the correct code, as the kernel ran it; a stray
  ``backprop-Copy1.ipynb`` and JupyterLab's checkpoints beside the notebook.
- ``old_moved_deleted``: saved by an older Jupyter (format 4.4, no cell ids), a test cell
  moved to the end, a pasted copy of another test cell, the setup cell and a written
  answer deleted.

The demo's ``flipped_sign`` learner's page explains the wrong gradient once, in the first
test cell that fails, and later cells point there; the page shows its maths in Chromium
with every network request blocked (MathJax from ``hub/node_modules``, linked beside the
pages), where the page as nbconvert makes it (MathJax from a CDN) shows raw LaTeX.
"""
import html
import json
import os
import re
from contextlib import contextmanager

from playwright.sync_api import sync_playwright

import nbformat
import pytest

import editor_cases as cases
import grading_support as support
from course_grading import feedback
from demo import examples, pipeline

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
    # Plain nbgrader (add_missing_cells) stops on the deleted written answer: KeyError 'ex1_intro'.
    damaged = cases.deleted(damaged, "setup", "ex1a_softmax_answer")
    _submit(root, "old_moved_deleted", {"backprop.ipynb": cases.older_jupyter(damaged, 4)})
    support.submit_examples(root, ["flipped_sign"])
    result = support.course_grade(root, "--workers", "2")
    assert result.returncode == 0 and not result.stderr, result.stdout + result.stderr
    pipeline.feedback(root)
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
                 "cells 'setup', 'ex1a_softmax_answer' were deleted"):
        assert f"old_moved_deleted: backprop.ipynb: {note}" in summary, summary


def test_the_feedback_page_says_it_too(graded):
    root, _ = graded
    page = html.unescape((root / "feedback" / "old_moved_deleted" / ASSIGNMENT / "backprop.html").read_text())
    assert "Note from the grader." in page
    assert "Cells 'setup', 'ex1a_softmax_answer' were deleted: put back as the assignment has them" in page
    autograded = nbformat.read(root / "autograded" / "pasted_gradient" / ASSIGNMENT / "backprop.ipynb",
                               as_version=4)
    assert "d_loss_by_d_model" in autograded.cells[0].source
    assert not (root / "autograded" / "pasted_gradient" / ASSIGNMENT / "backprop-Copy1.ipynb").exists()


# --- the diagnosis of a wrong gradient, once ---------------------------------------------------

FLIPPED = "hid_to_class (the second layer, W2): its sign is flipped"


def _error_texts(notebook_path):
    notebook = json.loads(notebook_path.read_text())
    return {cell["metadata"]["nbgrader"]["grade_id"]: "\n".join(
                output.get("evalue", "") for output in cell.get("outputs", []) if output["output_type"] == "error")
            for cell in notebook["cells"] if cell["metadata"].get("nbgrader", {}).get("grade")}


def test_the_diagnosis_is_explained_once_and_later_cells_point_to_it(graded):
    root, _ = graded
    autograded = _error_texts(root / "autograded" / "flipped_sign" / ASSIGNMENT / "backprop.ipynb")
    diagnosed = [grade_id for grade_id, text in autograded.items() if FLIPPED in text]
    assert len(diagnosed) == 8 and diagnosed[0] == "test_gradient_training_set"  # the control: repeated
    page = html.unescape((root / "feedback" / "flipped_sign" / ASSIGNMENT / "backprop.html").read_text())
    assert page.count(FLIPPED) == 1
    pointer = f"{feedback.DIAGNOSIS_HEADING} the same as in test_gradient_training_set above."
    assert page.count(pointer) == 7
    assert page.index(FLIPPED) < page.index(pointer)


@pytest.mark.fast
def test_a_pointer_keeps_the_number_of_cases_of_its_own_test():
    import nbformat

    def test_cell(grade_id, message):
        cell = nbformat.v4.new_code_cell("checks.check_something()")
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": grade_id,
                                     "points": 1, "schema_version": 3}
        cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue=message,
                                               traceback=[message])]
        return cell

    def diagnosis(m):
        return (f"{feedback.DIAGNOSIS_HEADING}\n- hid_to_class (the second layer, W2): the cross-entropy "
                f"part is m times too large ({m} in the test above).")

    learner = nbformat.v4.new_code_cell("print('...')")
    learner.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue=diagnosis(1000),
                                              traceback=[diagnosis(1000)])]
    notebook = nbformat.v4.new_notebook(cells=[
        learner, test_cell("first", "Failed with 1000 cases." + diagnosis(1000)),
        test_cell("second", "Failed with 50 cases." + diagnosis(50)),
        test_cell("other", "Failed." + diagnosis(50).replace("large", "small"))])
    feedback.DiagnosisOnce().preprocess(notebook, {})
    texts = [cell.outputs[0].evalue for cell in notebook.cells]
    assert texts[0] == diagnosis(1000)  # a learner's own cell is never changed
    assert texts[1] == "Failed with 1000 cases." + diagnosis(1000)
    assert texts[2] == (f"Failed with 50 cases.{feedback.DIAGNOSIS_HEADING} the same as in first above "
                        "(here m = 50).")
    assert notebook.cells[2].outputs[0].traceback == [texts[2]]
    assert texts[3].endswith("m times too small (50 in the test above).")


# --- maths with no internet ------------------------------------------------------------------

CDN_MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"
TYPESET = "document.querySelectorAll('.MathJax_CHTML, .mjx-chtml, .MathJax_SVG').length"


@contextmanager
def offline_page():
    """A Chromium page that may load files from disk and nothing from any network; yields
    (page, the addresses it was refused)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=support_chromium(), headless=True,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context()
            refused = []

            def only_files(route):
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            context.route("**/*", only_files)
            yield context.new_page(), refused
        finally:
            browser.close()


def support_chromium():
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        pytest.fail(f"Chromium not found at {chromium}: install Debian's chromium or set CHROMIUM.")
    return chromium


def _raw_maths(page):
    return re.findall(r"\$[^$\n]{1,80}\$", page.evaluate("document.body.innerText"))


def test_the_feedback_page_shows_its_maths_with_no_internet(graded):
    root, _ = graded
    path = root / "feedback" / "flipped_sign" / ASSIGNMENT / "backprop.html"
    assert "../../mathjax/MathJax.js" in path.read_text()
    # The control: the same page with nbconvert's MathJax address, from the CDN.
    control = path.with_name("with_cdn.html")
    control.write_text(path.read_text().replace("../../mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
                                                CDN_MATHJAX))
    with offline_page() as (page, refused):
        page.goto(path.as_uri())
        page.wait_for_function(f"{TYPESET} > 0 && MathJax.Hub.queue.pending === 0", timeout=60_000)
        assert page.evaluate(TYPESET) > 50
        assert _raw_maths(page) == [] and refused == []
        page.goto(control.as_uri(), wait_until="load")
        page.wait_for_timeout(2000)
        assert page.evaluate(TYPESET) == 0 and refused == [CDN_MATHJAX]
        assert "$m$" in _raw_maths(page)
