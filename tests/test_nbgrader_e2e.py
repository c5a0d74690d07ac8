"""The real nbgrader commands on a temporary copy of the course, with the example submissions.

The submissions are graded in two course copies at once (the machine has two cores): the
faulty answers with ``course-grade``, as the demo grades them (and its verdict files are
read: each example names the mistake it was built to show), the correct answer and the
untouched release with one plain ``nbgrader autograde`` call; the one that never returns is
graded on its own with a short time limit per cell (``Example.cell_timeout``), so that the
others keep the course's own limit. Scores are read through nbgrader's gradebook API.
"""

import concurrent.futures
import html
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from course_grading import class_report
from course_grading.grade import grade_assignment
from course_grading.messages import VERDICT_FILE, read_verdict_file
from course_utils.diagnosis import Mistake
from demo import pipeline
from demo.examples import ASSIGNMENT, EXAMPLES, model_answers

PROJECT = Path(__file__).resolve().parent.parent
SOURCE = PROJECT / "notebooks" / "source" / ASSIGNMENT

GRADIENT_TESTS = ["test_keys_and_shapes", "test_gradient_training_set", "test_other_hidden_sizes",
                  "test_small_batches", "test_weight_decay", "test_whole_gradient",
                  "test_not_transposed", "test_backpropagation", "test_a2_training_loss"]
OTHER_TESTS = ["test_tiny_hid_to_class", "test_tiny_input_to_hid", "test_reported_training_loss",
               "test_best_rate_without_momentum", "test_best_rate_with_momentum"]
GENERALIZATION_TESTS = ["test_early_stopping_iteration", "test_validation_loss_without_early_stopping",
                        "test_best_wd_coefficient", "test_n_hid_gaining_most_from_early_stopping",
                        "test_best_n_hid_with_early_stopping"]
ALL = GRADIENT_TESTS + OTHER_TESTS
WEIGHT_DECAY_ONLY_WRONG = [test for test in GRADIENT_TESTS
                           if test not in ("test_weight_decay", "test_whole_gradient")]

# The autograded cells of backprop.ipynb each submission deserves to pass (the rest score 0).
PASSING = {
    "correct": ALL,
    "learner_style": ALL,
    "noisy_stderr": ALL,
    "deleted_test_cells": ALL,
    "untouched": [],
    "returns_zeros": [],
    "transposed": [],
    "missing_1_over_m": ["test_keys_and_shapes"],
    "flipped_sign": ["test_keys_and_shapes"],
    "missing_weight_decay": WEIGHT_DECAY_ONLY_WRONG,
    "doubled_weight_decay": WEIGHT_DECAY_ONLY_WRONG,
    "missing_logistic_derivative": ["test_keys_and_shapes", "test_not_transposed"],
    "nan_gradient": [],
    "wrong_keys": [],
    "wrong_shape": [],
    "raises": [],
    "never_returns": [],
    "syntax_error": [],
    "edited_locked_cells": ["test_keys_and_shapes"],
}

# What each learner's backprop feedback page must say about the gradient.
DIAGNOSIS = {
    "untouched": ["d_loss_by_d_model is not implemented yet"],
    "returns_zeros": ["returns only zeros: it is not implemented yet"],
    "transposed": ["hid_to_class (the second layer, W2): it is the transpose of the correct gradient",
                   "Its shape (10 x 10) is right only because n_hid = 10"],
    # The factor is the one of the failing check above it: the whole training set.
    "missing_1_over_m": ["hid_to_class (the second layer, W2): the cross-entropy part is m times too large "
                         "(1000 in the test above)",
                         "input_to_hid (the first layer, W1): the cross-entropy part is m times too large"],
    "flipped_sign": ["hid_to_class (the second layer, W2): its sign is flipped",
                     "input_to_hid (the first layer, W1): its sign is flipped"],
    "missing_weight_decay": ["hid_to_class (the second layer, W2): the weight decay term is missing",
                             "input_to_hid (the first layer, W1): the weight decay term is missing"],
    "doubled_weight_decay": ["the weight decay term is added twice"],
    "missing_logistic_derivative": [
        "input_to_hid (the first layer, W1): the derivative of the logistic function is missing"],
    "nan_gradient": ["produced a NaN or infinity in input_to_hid"],
    "wrong_keys": ["exactly the keys 'input_to_hid' and 'hid_to_class'"],
    "wrong_shape": ["input_to_hid has shape (256, 7) but must have the shape of model['input_to_hid'], (7, 256)"],
    "raises": ["d_loss_by_d_model raised ValueError"],
    "never_returns": ["did not finish in an earlier test"],
    "syntax_error": ["SyntaxError"],
    "edited_locked_cells": ["its sign is flipped"],
}

# The mistakes the verdicts of the gradient's test cells name, for each example graded by
# course-grade (the cells that pass name none).
MISTAKES = {
    "learner_style": set(),
    "noisy_stderr": set(),
    "deleted_test_cells": set(),
    "returns_zeros": {Mistake.NOT_IMPLEMENTED},
    "transposed": {Mistake.WRONG_KEYS_OR_SHAPE, Mistake.TRANSPOSED},
    "missing_1_over_m": {Mistake.MISSING_ONE_OVER_M},
    "flipped_sign": {Mistake.SIGN_FLIPPED},
    "missing_weight_decay": {Mistake.MISSING_WEIGHT_DECAY},
    "doubled_weight_decay": {Mistake.DOUBLED_WEIGHT_DECAY},
    "missing_logistic_derivative": {Mistake.MISSING_LOGISTIC_DERIVATIVE},
    "nan_gradient": {Mistake.NOT_FINITE},
    "wrong_keys": {Mistake.WRONG_KEYS_OR_SHAPE},
    "wrong_shape": {Mistake.WRONG_KEYS_OR_SHAPE},
    "raises": {Mistake.RAISED},
    "syntax_error": {Mistake.NOT_DEFINED},
    "edited_locked_cells": {Mistake.SIGN_FLIPPED},
}

# Two course copies graded at once; the correct example (which alone runs the long
# generalization notebook) and the endless loop in one, with plain nbgrader; the other
# answers in the other, with course-grade.
GROUPS = [
    ["correct", "untouched"],
    sorted(MISTAKES),
]
SLOW = ["never_returns"]


def test_every_example_is_graded_and_expected():
    assert set(PASSING) == set(EXAMPLES) == set(sum(GROUPS, SLOW))
    assert set(MISTAKES) == set(GROUPS[1])


def _copy_course(root):
    root.mkdir()
    shutil.copy(PROJECT / "notebooks" / "nbgrader_config.py", root)
    shutil.copytree(SOURCE, root / "source" / ASSIGNMENT)
    return root


def _autograde(root, examples):
    """``nbgrader autograde`` of the examples; those with their own ``cell_timeout`` one by one."""
    limited = {student: example.cell_timeout for student, example in examples.items() if example.cell_timeout}
    if len(limited) < len(examples):
        exclude = [f"--CourseDirectory.student_id_exclude={','.join(limited)}"] if limited else []
        pipeline.nbgrader(root, "autograde", ASSIGNMENT, "--force", *exclude)
    for student, timeout in limited.items():
        pipeline.nbgrader(root, "autograde", ASSIGNMENT, "--force", f"--student={student}",
                          f"--Execute.timeout={timeout}")


def _grade_group(root, students, with_course_grade):
    examples = {student: EXAMPLES[student] for student in students}
    pipeline.release(root)
    pipeline.write_submissions(root, examples)
    if with_course_grade:
        # One submission at a time: the other course is graded beside it.
        summary = grade_assignment(str(root), ASSIGNMENT, workers=1, settings=pipeline.sandbox_settings(),
                                   progress=False)
        assert not summary["failed"], summary["failed"]
    else:
        _autograde(root, examples)
    pipeline.feedback(root)
    return root


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    base = tmp_path_factory.mktemp("nbgrader-course")
    groups = [GROUPS[0] + SLOW, GROUPS[1]]
    roots = [_copy_course(base / f"course{number}") for number in range(len(groups))]
    with concurrent.futures.ThreadPoolExecutor(len(groups)) as pool:
        graded = list(pool.map(_grade_group, roots, groups, [False, True]))
    return {student: root for root, group in zip(graded, groups) for student in group}


def _grades(root, student, notebook="backprop"):
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(notebook, ASSIGNMENT, student)
        return {grade.name: (grade.auto_score, grade.max_score, grade.needs_manual_grade,
                             grade.cell.cell_type) for grade in submission.grades}


def _feedback_text(root, student, notebook="backprop"):
    page = root / "feedback" / student / ASSIGNMENT / f"{notebook}.html"
    assert page.is_file(), f"no feedback page for {student}"
    return html.unescape(page.read_text())


@pytest.mark.parametrize("student", sorted(PASSING))
def test_scores_of_every_graded_cell(courses, student):
    grades = _grades(courses[student], student)
    autograded = {name: grade for name, grade in grades.items() if grade[3] == "code"}
    assert set(autograded) == set(ALL)
    expected = {name: (grade[1] if name in PASSING[student] else 0) for name, grade in autograded.items()}
    assert {name: grade[0] for name, grade in autograded.items()} == expected
    written = {name: grade for name, grade in grades.items() if grade[3] == "markdown"}
    assert set(written) == {"ex1a_softmax_answer", "ex1b_matrix_answer", "ex3b_explanation"}
    for name, (auto_score, max_score, needs_manual_grade, _) in written.items():
        if EXAMPLES[student].other_answers:
            assert needs_manual_grade, f"{name} of {student} was answered and waits for a person"
        else:
            # An answer cell left as released is scored zero without a person looking at it.
            assert (auto_score, needs_manual_grade) == (0, False)


@pytest.mark.parametrize("student", sorted(MISTAKES))
def test_verdicts_name_the_mistake_each_example_shows(courses, student):
    verdicts = read_verdict_file(courses[student] / "autograded" / student / ASSIGNMENT / VERDICT_FILE)
    assert (verdicts.assignment_id, verdicts.student_id) == (ASSIGNMENT, student)
    cells = {cell.grade_id: cell for cell in verdicts.cells if cell.notebook == "backprop"}
    assert set(cells) == set(ALL)
    # The verdicts are the gradebook's: the passing cells are those that scored.
    assert {grade_id for grade_id, cell in cells.items() if cell.passed} == set(PASSING[student])
    named = {mistake for grade_id in GRADIENT_TESTS for mistake in cells[grade_id].mistakes}
    assert named == MISTAKES[student], named
    assert all(cell.mistakes for cell in cells.values() if not cell.passed)
    assert not any(cell.mistakes for cell in cells.values() if cell.passed)
    # The message is the one the learner sees; the answers are the plain values read.
    for grade_id, cell in cells.items():
        assert cell.passed or cell.message, grade_id
    if EXAMPLES[student].other_answers:
        assert cells["test_reported_training_loss"].answers == {"reported_training_loss": 2.301906765216956}


def test_class_report_counts_what_the_examples_show(courses):
    """The class report of the examples graded with course-grade, as ``make demo`` grades them:
    each mistake counted for exactly the examples built to show it ("not answered" for those
    that left the other answers as the release had them), each name linking to that learner's
    feedback page, and the passes of each test cell as ``PASSING`` says."""
    root = courses[GROUPS[1][0]]
    report = class_report.compute_report(root, ASSIGNMENT)
    assert (report.counts["graded"], report.counts["no_verdicts_recorded"]) == (len(MISTAKES), 0)
    expected = {}
    for student, shown in MISTAKES.items():
        for mistake in shown | ({Mistake.NOT_ANSWERED} if not EXAMPLES[student].other_answers else set()):
            expected.setdefault(mistake.value, []).append(student)
    assert {m.name: [who["student_id"] for who in m.who] for m in report.mistakes} == \
        {name: sorted(students) for name, students in expected.items()}
    for mistake in report.mistakes:
        for who in mistake.who:
            assert who["feedback"] == f"feedback/{who['student_id']}/{ASSIGNMENT}/backprop.html"
            assert (root / who["feedback"]).is_file()
    passed = {cell.grade_id: cell.passed for cell in report.cells if cell.notebook == "backprop"}
    assert passed == {test: sum(test in PASSING[student] for student in MISTAKES) for test in ALL}


def test_correct_answers_get_full_marks_in_the_generalization_notebook(courses):
    grades = _grades(courses["correct"], "correct", "generalization")
    autograded = {name: grade for name, grade in grades.items() if grade[3] == "code"}
    assert set(autograded) == set(GENERALIZATION_TESTS)
    assert all(grade[0] == grade[1] > 0 for grade in autograded.values()), autograded
    assert all(grade[2] for name, grade in grades.items() if grade[3] == "markdown")


def test_untouched_release_of_the_generalization_notebook_gets_zero(courses):
    grades = _grades(courses["untouched"], "untouched", "generalization")
    assert grades and all(grade[0] == 0 for grade in grades.values())


@pytest.mark.parametrize("student", sorted(DIAGNOSIS))
def test_feedback_names_the_mistake(courses, student):
    text = _feedback_text(courses[student], student)
    for phrase in DIAGNOSIS[student]:
        assert phrase in text, f"the feedback of {student} does not say {phrase!r}"


def test_no_test_cell_writes_to_stderr(courses):
    for student in ("noisy_stderr", "correct", "nan_gradient"):
        notebook = nbformat.read(courses[student] / "autograded" / student / ASSIGNMENT / "backprop.ipynb",
                                 as_version=4)
        for cell in notebook.cells:
            nbgrader = cell.metadata.get("nbgrader", {})
            if nbgrader.get("grade") and not nbgrader.get("solution"):
                streams = [output.name for output in cell.get("outputs", []) if output.output_type == "stream"]
                assert "stderr" not in streams, (student, nbgrader["grade_id"])


def _regions(source, begin, end):
    pattern = re.compile(rf"^[ \t]*{begin}[ \t]*\n(.*?)^[ \t]*{end}", re.MULTILINE | re.DOTALL)
    return [line.strip() for region in pattern.findall(source) for line in region.splitlines()
            if len(line.strip()) > 6]


def _secret_lines(notebook_path):
    """Lines of solutions and hidden tests in a source notebook (those the learners must not see)."""
    solutions, hidden = [], []
    for cell in nbformat.read(notebook_path, as_version=4).cells:
        nbgrader = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown" and nbgrader.get("solution"):
            solutions += [line.strip() for line in cell.source.splitlines() if len(line.strip()) > 6]
        solutions += _regions(cell.source, "### BEGIN SOLUTION", "### END SOLUTION")
        hidden += _regions(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
    return solutions, hidden


@pytest.mark.parametrize("notebook", ["backprop", "generalization"])
def test_release_has_no_solution_and_no_hidden_tests(courses, notebook):
    solutions, hidden = _secret_lines(SOURCE / f"{notebook}.ipynb")
    assert solutions and (hidden or notebook == "generalization")
    release = (courses["correct"] / "release" / ASSIGNMENT / f"{notebook}.ipynb").read_text()
    released = "\n".join(cell.source for cell in nbformat.reads(release, as_version=4).cells)
    for line in solutions + hidden:
        assert line not in released, f"the release of {notebook} shows {line!r}"


def test_feedback_has_no_hidden_test_code(courses):
    _, hidden = _secret_lines(SOURCE / "backprop.ipynb")
    for student, root in courses.items():
        text = _feedback_text(root, student)
        for line in hidden:
            assert line not in text, f"the feedback of {student} shows hidden test code {line!r}"


def test_correct_submission_is_not_a_copy_of_a_file(courses):
    # The correct example's gradient comes from the source notebook itself.
    submitted = nbformat.read(courses["correct"] / "submitted" / "correct" / ASSIGNMENT / "backprop.ipynb",
                              as_version=4)
    cell = next(cell for cell in submitted.cells
                if cell.metadata.get("nbgrader", {}).get("grade_id") == "d_loss_by_d_model")
    assert cell.source == model_answers(SOURCE / "backprop.ipynb")["d_loss_by_d_model"]


def test_grades_table_and_csv(courses):
    """The table's totals are grades.csv's (nbgrader export), out of the same maximum."""
    import csv

    root = courses["flipped_sign"]
    pipeline.export(root, root / "grades.csv")
    with open(root / "grades.csv", newline="") as file:
        exported = {row["student_id"]: row for row in csv.DictReader(file)}
    assert "flipped_sign" in exported and "missing_weight_decay" in exported
    table = pipeline.scores(root)
    assert set(table) == set(exported)
    for student, row in table.items():
        assert (row.score, row.max_score) == (float(exported[student]["score"]),
                                              float(exported[student]["max_score"])), student
    # Keys and shapes (1 point) is all a flipped sign earns; nothing was written by hand.
    assert table["flipped_sign"].notebooks["backprop"].auto_score == 1
    assert table["flipped_sign"].to_grade_by_hand == 0
    # Three written answers wait for a person in the learner-style answer.
    assert table["learner_style"].to_grade_by_hand > 0
    text = pipeline.format_table(table)
    assert "flipped_sign" in text and "1/15" in text
    assert f"1/{table['flipped_sign'].max_score:g}" in text
