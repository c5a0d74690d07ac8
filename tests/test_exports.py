"""The grade exports (course_grading/exports.py): Canvas, Moodle, per cell, and the roster.

The fast tests check the roster's reading and matching on plain values. The others build a
small gradebook with nbgrader's ``Gradebook`` API, run the real ``nbgrader export
--exporter ...`` command on it, read each file back with the csv module and compare every
number with what the gradebook holds.
"""
from __future__ import annotations

import csv
import warnings

import pytest

from course_grading.exports import (POINTS_POSSIBLE, AssignmentScores, CanvasExport, ExportError,
                                    MoodleExport, RosterEntry, check_roster, number_text, read_roster)
from course_grading.gradebook_sync import put_alembic_on_path
from demo.courses import nbgrader

EXPORTS = "course_grading.exports"


# --- The roster: reading -------------------------------------------------------------------------

COLUMNS = {"user_column": "hub_user", "id_column": "Email address"}


def _roster(tmp_path, text, encoding="utf-8"):
    path = tmp_path / "roster.csv"
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.fast
def test_roster_read_with_excel_byte_order_mark_and_short_lines(tmp_path):
    path = _roster(tmp_path, "\ufeffhub_user,Email address,Section\r\nalice,a@uni.edu,1\r\n\r\nbob,b@uni.edu\r\n")
    rows = read_roster(path, COLUMNS, "MoodleExport")
    assert [(row.line, row.values) for row in rows] == [
        (2, {"hub_user": "alice", "Email address": "a@uni.edu", "Section": "1"}),
        (4, {"hub_user": "bob", "Email address": "b@uni.edu", "Section": ""})]


@pytest.mark.fast
def test_roster_with_semicolons_as_a_spreadsheet_writes_them(tmp_path):
    path = _roster(tmp_path, "hub_user;Email address;Note\nalice;a@uni.edu;1,5\n")
    rows = read_roster(path, COLUMNS, "MoodleExport")
    assert rows[0].values == {"hub_user": "alice", "Email address": "a@uni.edu", "Note": "1,5"}


@pytest.mark.fast
def test_roster_not_utf8_says_how_to_save_it(tmp_path):
    path = _roster(tmp_path, "hub_user,Email address\nmüller,m@uni.edu\n", encoding="latin-1")
    with pytest.raises(ExportError, match=r"not UTF-8 .*byte 0xfc.*Save it as UTF-8"):
        read_roster(path, COLUMNS, "MoodleExport")


@pytest.mark.fast
def test_roster_without_header_says_to_add_one(tmp_path):
    path = _roster(tmp_path, "alice,a@uni.edu\nbob,b@uni.edu\n")
    with pytest.raises(ExportError) as error:
        read_roster(path, COLUMNS, "MoodleExport")
    message = str(error.value)
    assert "no header line" in message and "'alice,a@uni.edu'" in message
    assert "add a header line" in message and "--MoodleExport.user_column=NAME" in message


@pytest.mark.fast
def test_roster_unknown_column_names_the_setting_and_the_columns(tmp_path):
    path = _roster(tmp_path, "hub_user,Email\nalice,a@uni.edu\n")
    with pytest.raises(ExportError) as error:
        read_roster(path, COLUMNS, "MoodleExport")
    message = str(error.value)
    assert "no column 'Email address'" in message and "MoodleExport.id_column" in message
    assert "its columns are: hub_user, Email" in message


@pytest.mark.fast
@pytest.mark.parametrize("text, words", [("", "is empty"), (None, "does not exist")])
def test_roster_empty_or_missing(tmp_path, text, words):
    path = _roster(tmp_path, text) if text is not None else tmp_path / "missing.csv"
    with pytest.raises(ExportError, match=words):
        read_roster(path, COLUMNS, "MoodleExport")


@pytest.mark.fast
def test_canvas_roster_needs_an_id_column():
    with pytest.raises(ExportError, match="at least one id column"):
        CanvasExport(id_column="", sis_user_id_column="", sis_login_id_column="").roster_columns()


# --- The roster: matching with the gradebook ----------------------------------------------------

def _assignment(name="backprop", **scores):
    return AssignmentScores(name, 31.0, scores)


def _entries(*lines):
    """Roster entries from (user, key) pairs, on lines 2, 3, ..."""
    return [RosterEntry(number, user, key) for number, (user, key) in enumerate(lines, start=2)]


def _moodle_rows(check, assignments):
    return MoodleExport().rows(check, assignments)


@pytest.mark.fast
def test_learner_missing_from_the_roster_is_reported_not_written():
    assignments = [_assignment(alice=20.0, frank=25.0)]
    check = check_roster(_entries(("alice", "a@uni")), ["alice", "frank"], assignments)
    assert check.not_in_roster == ("frank",)
    assert "in the gradebook, not in the roster: frank" in check.report("Moodle")
    assert _moodle_rows(check, assignments) == [["Email address", "backprop"], ["a@uni", "20"]]


@pytest.mark.fast
def test_hub_user_on_two_roster_lines_is_reported_and_neither_line_written():
    assignments = [_assignment(alice=20.0, erin=12.5)]
    check = check_roster(_entries(("alice", "a@uni"), ("erin", "e@uni"), ("erin", "e2@uni")),
                         ["alice", "erin"], assignments)
    assert check.duplicate_users == {"erin": (3, 4)}
    assert "hub user 'erin' on several roster lines: 3, 4" in check.report("Moodle")
    assert [row[0] for row in _moodle_rows(check, assignments)[1:]] == ["a@uni"]


@pytest.mark.fast
def test_two_hub_users_with_one_platform_id_are_reported_and_neither_written():
    assignments = [_assignment(alice=20.0, henry=3.0, ivan=4.0)]
    check = check_roster(_entries(("alice", "a@uni"), ("henry", "h@uni"), ("ivan", "h@uni")),
                         ["alice", "henry", "ivan"], assignments)
    assert check.duplicate_keys == {"h@uni": (3, 4)}
    assert "platform id 'h@uni' on several roster lines: 3, 4" in check.report("Moodle")
    assert _moodle_rows(check, assignments)[1:] == [["a@uni", "20"]]


@pytest.mark.fast
def test_roster_line_without_id_is_reported_not_written():
    assignments = [_assignment(alice=20.0, gina=1.0)]
    check = check_roster(_entries(("alice", "a@uni"), ("gina", "")), ["alice", "gina"], assignments)
    assert check.without_key == (3,)
    assert "roster line 3 has no platform id" in check.report("Moodle")
    assert _moodle_rows(check, assignments)[1:] == [["a@uni", "20"]]


@pytest.mark.fast
def test_roster_learner_without_submission_gets_an_empty_cell_and_is_reported():
    assignments = [_assignment(alice=0.0), _assignment("quiz", dave=5.0)]
    check = check_roster(_entries(("alice", "a@uni"), ("dave", "d@uni")), ["alice", "dave"], assignments)
    # alice's real 0 stays a 0; the missing submissions are empty, never 0.
    assert _moodle_rows(check, assignments)[1:] == [["a@uni", "0", ""], ["d@uni", "", "5"]]
    report = check.report("Moodle")
    assert "no submission of backprop: dave (d@uni, line 3)" in report
    assert "no submission of quiz: alice (a@uni, line 2)" in report


@pytest.mark.fast
def test_student_selection_restricts_both_sides():
    assignments = [_assignment(alice=20.0, bob=10.0)]
    check = check_roster(_entries(("alice", "a@uni"), ("bob", "b@uni")), ["alice", "bob", "frank"],
                         assignments, selected=["bob"])
    assert [entry.user for entry in check.exported] == ["bob"] and check.not_in_roster == ()


@pytest.mark.fast
def test_clean_roster_says_so():
    check = check_roster(_entries(("alice", "a@uni")), ["alice"], [_assignment(alice=20.0)])
    assert "Every learner of the roster and the gradebook is in the file" in check.report("Moodle")


@pytest.mark.fast
@pytest.mark.parametrize("value", [2.0, 0.1, 0.1 + 0.2, 12.75, 1 / 3, 0.0])
def test_number_text_reads_back_as_the_same_float(value):
    assert float(number_text(value)) == value
    assert not number_text(value).endswith(".0")


# --- The real command on a gradebook --------------------------------------------------------------

# (assignment, notebook, cell, max points, cell type) of the test gradebook.
CELLS = [("backprop", "backprop", "test_a", 2.0, "code"), ("backprop", "backprop", "test_b", 3.0, "code"),
         ("backprop", "backprop", "answer_c", 1.5, "markdown"),
         ("backprop", "generalization", "test_d", 4.0, "code"), ("quiz", "quiz", "q1", 5.0, "code")]
# Scores set per learner, by cell: an int or float is the autograder's score, ("manual", x)
# a hand-graded score, None a cell left ungraded. Learners without an entry did not submit.
SUBMITTED = {
    "alice": {"test_a": 2.0, "test_b": 0.1, "answer_c": ("manual", 1.25), "test_d": 4.0, "q1": 5.0},
    "bob": {"test_a": 0.0, "test_b": 3.0, "answer_c": ("manual", 0.5), "test_d": 0.2},
    "carol": {"test_a": 1.0, "test_b": 2.0, "answer_c": None, "test_d": 0.0, "q1": 2.5},
    "erin": {"test_a": 2.0, "test_b": 3.0, "answer_c": ("manual", 1.5), "test_d": 4.0, "q1": 4.0},
    "frank": {"test_a": 2.0, "test_b": 1.0, "answer_c": ("manual", 1.0), "test_d": 1.0},
}
LEARNERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
LATE_PENALTY = {("alice", "backprop"): 1.0}

# Canvas's gradebook export with a hub_user column: erin twice, frank missing, gina not in
# the gradebook, and Canvas's own "Points Possible" line.
CANVAS_ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section,hub_user,Current Score
    Points Possible,,,,,,
"Liddell, Alice",101,S1,aliddell,Sec A,alice,
"Bauer, Bob",102,S2,bbauer,Sec A,bob,
"Cruz, Carol",103,,ccruz,Sec B,carol,
"Diaz, Dave",104,S4,ddiaz,Sec B,dave,
"Evans, Erin",105,S5,eevans,Sec B,erin,
"Evans, Erin (2)",106,S6,eevans2,Sec B,erin,
"Green, Gina",,S7,ggreen,Sec A,gina,
"""
MOODLE_ROSTER = "login,ID number,Full name\nalice,U-1,Alice\nbob,U-2,Bob\ncarol,U-3,Carol\ndave,U-4,Dave\n"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder with a gradebook as described by CELLS and SUBMITTED, and rosters."""
    root = tmp_path_factory.mktemp("exports-course")
    put_alembic_on_path()
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():
        # nbgrader's add_submission makes SQLAlchemy warn about its autoflush; not ours.
        warnings.simplefilter("ignore")
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
            for name, due in (("backprop", "2026-01-10 12:00:00"), ("quiz", "2026-01-20 12:00:00")):
                gradebook.add_assignment(name, duedate=due)
            for assignment, notebook, cell, maximum, kind in CELLS:
                gradebook.update_or_create_notebook(notebook, assignment)
                gradebook.add_grade_cell(cell, notebook, assignment, max_score=maximum, cell_type=kind)
            for learner in LEARNERS:
                gradebook.add_student(learner)
            for learner, cells in SUBMITTED.items():
                for assignment in {a for a, _, cell, _, _ in CELLS if cell in cells}:
                    gradebook.add_submission(assignment, learner)
                for assignment, notebook, cell, _, _ in CELLS:
                    if cells.get(cell) is None:
                        continue
                    grade = gradebook.find_grade(cell, notebook, assignment, learner)
                    if isinstance(cells[cell], tuple):
                        grade.manual_score = cells[cell][1]
                    else:
                        grade.auto_score = cells[cell]
                    grade.needs_manual_grade = False
                for (who, assignment), penalty in LATE_PENALTY.items():
                    if who == learner:
                        submitted = gradebook.find_submission(assignment, learner)
                        submitted.notebooks[0].late_submission_penalty = penalty
                gradebook.db.commit()
            expected = _expected(gradebook)
    (root / "canvas_roster.csv").write_text(CANVAS_ROSTER, encoding="utf-8")
    (root / "moodle_roster.csv").write_text(MOODLE_ROSTER, encoding="utf-8")
    (root / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.MoodleExport.roster = 'moodle_roster.csv'\n"
        "c.MoodleExport.user_column = 'login'\n"
        "c.MoodleExport.id_column = 'ID number'\n")
    return root, expected


def _expected(gradebook):
    """What the files must hold, read back from the gradebook with nbgrader's API.

    ``totals[(learner, assignment)]``: the total after the late penalty (checked against the
    scores set, so that the gradebook holds what the test meant); ``maxima[assignment]``;
    ``cells[(learner, notebook, cell)]``: the cell's score, None while not scored (absent
    without a submission); ``cell_maxima[(notebook, cell)]``.
    """
    from nbgrader.api import MissingEntry

    maxima = {a.name: a.max_score for a in gradebook.assignments}
    totals = {}
    for name in maxima:
        for submission in gradebook.assignment_submissions(name):
            learner = submission.student.id
            total = max(0.0, submission.score - submission.late_submission_penalty)
            given = SUBMITTED[learner]
            points = sum(value[1] if isinstance(value, tuple) else value or 0.0
                         for assignment, _, cell, _, _ in CELLS if assignment == name and cell in given
                         for value in [given[cell]])
            assert total == pytest.approx(points - LATE_PENALTY.get((learner, name), 0.0))
            totals[(learner, name)] = total
    cells, cell_maxima = {}, {}
    for assignment, notebook, cell, _, _ in CELLS:
        if assignment != "backprop":
            continue
        cell_maxima[(notebook, cell)] = gradebook.find_graded_cell(cell, notebook, assignment).max_score
        for learner in LEARNERS:
            try:
                grade = gradebook.find_grade(cell, notebook, assignment, learner)
            except MissingEntry:
                continue
            scored = grade.auto_score is not None or grade.manual_score is not None
            cells[(learner, notebook, cell)] = grade.score if scored else None
    return {"totals": totals, "maxima": maxima, "cells": cells, "cell_maxima": cell_maxima}


def _read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_canvas_export_has_canvas_columns_and_the_gradebook_totals(course):
    course, expected = course
    totals, maxima = expected["totals"], expected["maxima"]
    run = nbgrader(course, "export", f"--exporter={EXPORTS}.CanvasExport",
                   "--CanvasExport.roster=canvas_roster.csv", "--to=canvas.csv")
    rows = _read(course / "canvas.csv")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "backprop", "quiz"]
    assert rows[1][:5] == [POINTS_POSSIBLE, "", "", "", ""]
    assert [float(value) for value in rows[1][5:]] == [maxima["backprop"], maxima["quiz"]] == [10.5, 5.0]
    by_login = {row[3]: row for row in rows[2:]}
    hub_user = {"aliddell": "alice", "bbauer": "bob", "ccruz": "carol", "ddiaz": "dave", "ggreen": "gina"}
    assert sorted(by_login) == sorted(hub_user)  # erin (two lines) and frank (no line) left out
    assert by_login["ccruz"][:5] == ["Cruz, Carol", "103", "", "ccruz", "Sec B"]
    for login, learner in hub_user.items():
        for column, assignment in ((5, "backprop"), (6, "quiz")):
            cell = by_login[login][column]
            if (learner, assignment) in totals:
                assert float(cell) == totals[(learner, assignment)], (learner, assignment)
            else:
                assert cell == "", (learner, assignment)  # no submission: empty, not 0
    assert float(by_login["aliddell"][5]) == pytest.approx(2.0 + 0.1 + 1.25 + 4.0 - 1.0)  # the late penalty
    report = (course / "canvas.report.txt").read_text()
    assert report in run.stdout
    for words in ("not in the roster: frank", "hub user 'erin' on several roster lines: 7, 8",
                  "no submission of quiz: bob (102, line 4)", "no submission of backprop: dave (104, line 6)",
                  "no submission of backprop: gina (S7, line 9)", "to grade by hand in backprop: carol"):
        assert words in report


def test_moodle_export_from_nbgrader_config_has_the_id_and_the_totals(course):
    course, expected = course
    totals = expected["totals"]
    run = nbgrader(course, "export", f"--exporter={EXPORTS}.MoodleExport", "--assignment=backprop")
    rows = _read(course / "moodle_grades.csv")
    assert rows[0] == ["ID number", "backprop"]
    ids = {"U-1": "alice", "U-2": "bob", "U-3": "carol", "U-4": "dave"}
    assert [row[0] for row in rows[1:]] == list(ids)
    for id_number, grade in rows[1:]:
        learner = ids[id_number]
        assert (float(grade) == totals[(learner, "backprop")]) if learner != "dave" else grade == ""
    assert "in the gradebook, not in the roster: erin" in run.stdout
    assert "in the gradebook, not in the roster: frank" in run.stdout
    assert "no submission of backprop: dave (U-4, line 5)" in run.stdout


def test_cell_export_has_every_cell_of_the_gradebook(course):
    course, expected = course
    nbgrader(course, "export", f"--exporter={EXPORTS}.CellExport", "--assignment=backprop", "--to=cells.csv")
    rows = _read(course / "cells.csv")
    cells = expected["cell_maxima"]
    assert sorted(rows[0][1:]) == sorted(f"{notebook}/{cell}" for notebook, cell in cells)
    assert rows[0][0] == "student_id" and rows[1][0] == POINTS_POSSIBLE
    assert [row[0] for row in rows[2:]] == LEARNERS
    columns = {name: index for index, name in enumerate(rows[0])}
    for (notebook, cell), maximum in cells.items():
        column = columns[f"{notebook}/{cell}"]
        assert float(rows[1][column]) == maximum
        for row in rows[2:]:
            score = expected["cells"].get((row[0], notebook, cell))
            # No submission, or a cell not scored yet: empty, not 0.
            assert (row[column] == "") if score is None else (float(row[column]) == score), (row[0], cell)
    assert rows[4][columns["backprop/answer_c"]] == ""  # carol's written answer, still to grade
    assert rows[5][1:] == [""] * len(cells)  # dave submitted nothing


def test_bad_roster_stops_the_command_with_the_message_not_a_traceback(course):
    course, _ = course
    (course / "latin1.csv").write_bytes("hub_user,ID\nmüller,1\n".encode("latin-1"))
    run = nbgrader(course, "export", f"--exporter={EXPORTS}.CanvasExport", "--CanvasExport.roster=latin1.csv",
                   "--CanvasExport.sis_user_id_column=", "--CanvasExport.sis_login_id_column=",
                   "--CanvasExport.student_column=", "--CanvasExport.section_column=", "--to=bad.csv", check=False)
    assert run.returncode == 1
    assert "is not UTF-8 text" in run.stderr and "Traceback" not in run.stderr
    assert not (course / "bad.csv").exists()
