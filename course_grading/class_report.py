"""The class at a glance after grading: ``course-report ASSIGNMENT --course notebooks``.

Runs in the instructor's process, after ``course-grade``; it reads and never writes the
course. Its sources:

- the gradebook (nbgrader's ``Gradebook``): the learners, their submissions with their
  timestamps, late penalties and the points of every graded cell, and which written
  answers still wait for a person;
- course-grade's journal in the gradebook: whose grading finished, and whose failed and why;
- the verdict file beside each autograded notebook (``course_grade_verdicts.json``): the
  mistakes the grader recognized in each test cell and the values the learner's answers
  held there.

:func:`compute_report` turns them into a :class:`ClassReport` (plain numbers and names,
written to JSON as they are); :func:`render_html` draws that as one self-contained page
(plots embedded as SVG images, no network, a print stylesheet). Links to the learners'
feedback pages are relative to the folder the page is written to.
"""
from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import datetime
import glob
import html
import io
import json
import math
import os
import statistics
import sys
import urllib.parse
from pathlib import Path

from course_utils.diagnosis import Mistake

from .messages import VERDICT_FILE, MessageError, read_verdict_file

# A verdict file is a few kilobytes; a larger one is not what the grader writes.
MAX_VERDICT_BYTES = 2 * 2**20
# An answer longer than this is shown cut (answers are numbers or short text).
MAX_ANSWER_CHARS = 80
# Distinct answers shown per question; the rest are counted together.
MAX_ANSWER_VALUES = 15
# Scores equal to the maximum within this are full marks (nbgrader stores floats).
SCORE_TOLERANCE = 1e-9

GRADED, FAILED, NOT_GRADED, NOT_SUBMITTED = "graded", "failed", "submitted, not graded yet", "not submitted"
RECORDED, MISSING, MALFORMED = "recorded", "missing", "malformed"


class ReportError(RuntimeError):
    """The course or the assignment cannot be reported on; the message says what to do."""


# --- the verdict files, as the report counts them ------------------------------------------

@dataclasses.dataclass
class CountedCell:
    """The grader's verdict on one test cell of one learner, as the report counts it.

    ``mistakes`` are values of :class:`~course_utils.diagnosis.Mistake`; ``answers`` maps the
    learner's names to the values they held, as short text (the key they are counted under).
    """

    notebook: str
    grade_id: str
    passed: bool
    mistakes: list
    answers: dict
    learner_process: bool = False


@dataclasses.dataclass
class LearnerVerdicts:
    """One learner's verdict file as read: ``status`` is RECORDED, MISSING or MALFORMED
    (``problem`` then says why); ``ignored`` lists what was left out of a readable file."""

    status: str
    cells: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    problem: str | None = None
    ignored: list = dataclasses.field(default_factory=list)


def _short(text):
    return text if len(text) <= MAX_ANSWER_CHARS else text[:MAX_ANSWER_CHARS - 1] + "…"


def _plain_answer(value):
    """An answer (as the grader's reader lets it through: a number, text, true/false or a
    short list of them) as short text, the key it is counted under; None for anything else."""
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _short(value)
    if isinstance(value, list):
        items = [_plain_answer(item) if not isinstance(item, list) else None for item in value]
        if None not in items:
            return _short("[" + ", ".join(items) + "]")
    return None


def read_verdicts(folder, assignment_id, student_id):
    """The verdict file in one learner's autograded ``folder``, read with the grader's own
    checking reader (:func:`course_grading.messages.read_verdict_file`).

    A missing, unreadable or malformed file, or one written for someone else, is a
    :class:`LearnerVerdicts` saying so, never an exception: the report lists such learners
    as having no verdicts recorded.
    """
    path = Path(folder) / VERDICT_FILE
    try:
        if path.stat().st_size > MAX_VERDICT_BYTES:
            return LearnerVerdicts(MALFORMED, problem=f"{VERDICT_FILE} is larger than {MAX_VERDICT_BYTES} bytes")
        found = read_verdict_file(path)
    except FileNotFoundError:
        return LearnerVerdicts(MISSING, problem=f"no {VERDICT_FILE} in the autograded folder")
    except (OSError, UnicodeDecodeError, MessageError) as error:
        problem = str(error).replace(f"{path}: ", "")
        return LearnerVerdicts(MALFORMED, problem=f"{VERDICT_FILE} cannot be used: {problem}")
    if (found.assignment_id, found.student_id) != (assignment_id, student_id):
        return LearnerVerdicts(MALFORMED, problem=f"{VERDICT_FILE}: written for {found.student_id!r} / "
                               f"{found.assignment_id!r}, found in the folder of {student_id!r} / {assignment_id!r}")
    verdicts = LearnerVerdicts(RECORDED, notes=list(found.notes))
    for cell in found.cells:
        plain = {}
        for name, value in cell.answers.items():
            shown = _plain_answer(value)
            if shown is None:
                verdicts.ignored.append(f"{cell.grade_id}: answer {name[:40]!r} is not a number or short text")
            else:
                plain[name] = shown
        verdicts.cells.append(CountedCell(cell.notebook, cell.grade_id, cell.passed,
                                          sorted({mistake.value for mistake in cell.mistakes}), plain,
                                          cell.learner_process))
    return verdicts


# --- the numbers ---------------------------------------------------------------------------

@dataclasses.dataclass
class Learner:
    """One learner of the gradebook (or with a submission folder) and how their grading went.

    Scores are None unless ``status`` is GRADED. ``score`` is nbgrader's (hand-graded points
    where given, else autograded) before the late penalty, as ``raw_score`` of nbgrader's CSV.
    """

    student_id: str
    status: str
    reason: str | None = None
    timestamp: str | None = None
    seconds_late: float = 0.0
    late_penalty: float = 0.0
    auto_score: float | None = None
    score: float | None = None
    written_graded: int = 0
    written_to_grade: int = 0
    notebooks_missing: list = dataclasses.field(default_factory=list)
    verdicts: str | None = None
    verdict_problem: str | None = None
    verdict_notes: list = dataclasses.field(default_factory=list)
    mistakes: list = dataclasses.field(default_factory=list)
    feedback: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Distribution:
    """Values of the graded learners: ``counts`` is ``[[value, learners], ...]`` by value."""

    count: int
    maximum_possible: float
    counts: list
    mean: float | None
    median: float | None
    lowest: float | None
    highest: float | None


@dataclasses.dataclass
class CellStats:
    """One autograded test cell over the graded learners (a missing notebook fails its cells)."""

    notebook: str
    grade_id: str
    max_score: float
    graded: int
    passed: int
    partly: int
    failed: int
    notebook_missing: int
    pass_rate: float | None
    mistakes: dict


@dataclasses.dataclass
class WrittenStats:
    """One written answer (graded by hand): how many are graded, how many wait."""

    notebook: str
    grade_id: str
    max_score: float
    graded: int
    to_grade: int
    mean_score: float | None


@dataclasses.dataclass
class MistakeStats:
    """One diagnosed mistake: the learners who made it, alone (their only mistake) or with others.

    ``who`` is ``[{"student_id", "notebook", "feedback"}]``: the notebook where it was first
    found and the relative link to that learner's feedback page there (None if no page yet).
    """

    name: str
    label: str
    learners: int
    alone: int
    combined: int
    combined_with: dict
    cells: dict
    who: list


@dataclasses.dataclass
class AnswerValue:
    value: str
    learners: int
    passed: int
    failed: int


@dataclasses.dataclass
class AnswerStats:
    """What the graded learners' name ``name`` held in the test cells ``cells``; ``values``
    most common first; ``learners`` counts each learner once (their first answer)."""

    name: str
    cells: list
    learners: int
    values: list


@dataclasses.dataclass
class ClassReport:
    """Everything the page shows, as plain data (``dataclasses.asdict`` of it is the JSON file)."""

    assignment_id: str
    course: str
    made_at: str
    duedate: str | None
    max_score: float
    auto_max_score: float
    written_max_score: float
    counts: dict
    learners: list
    auto_totals: Distribution
    totals: Distribution
    written: list
    cells: list
    mistakes: list
    mistake_combinations: list
    answers: list


def _course_settings(course_root):
    """nbgrader's ``CourseDirectory`` of the course folder (its gradebook URL and folder layout)."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    course_root = os.path.abspath(course_root)
    if not os.path.isfile(os.path.join(course_root, "nbgrader_config.py")):
        raise ReportError(f"{course_root} is not an nbgrader course folder: it has no nbgrader_config.py. "
                          "Pass the course folder with --course.")
    config = PyFileConfigLoader("nbgrader_config.py", path=course_root).load_config()
    coursedir = CourseDirectory(config=config)
    coursedir.root = course_root
    return coursedir


def _journal(gb, assignment_id):
    """course-grade's journal of the assignment; empty when nothing was graded with it."""
    from sqlalchemy import inspect

    from .gradebook_sync import JOURNAL_TABLE, journal

    if not inspect(gb.db.get_bind()).has_table(JOURNAL_TABLE):
        return {}
    return journal(gb, assignment_id)


def _read_gradebook(coursedir, assignment_id):
    """The gradebook's facts about one assignment, in a few queries (not one per learner)."""
    import warnings

    from nbgrader.api import (Grade, GradeCell, Gradebook, MissingEntry, Notebook,
                              SubmittedAssignment, SubmittedNotebook)
    from sqlalchemy.exc import SAWarning

    from .gradebook_sync import put_alembic_on_path

    url = coursedir.db_url
    if url.startswith("sqlite:///") and not os.path.isfile(url[len("sqlite:///"):]):
        raise ReportError(f"No gradebook at {url[len('sqlite:///'):]}: grade the assignment first "
                          f"(course-grade {assignment_id} --course {coursedir.root}).")
    put_alembic_on_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        with Gradebook(url) as gb:
            try:
                assignment = gb.find_assignment(assignment_id)
            except MissingEntry:
                known = sorted(a.name for a in gb.assignments) or ["none"]
                raise ReportError(f"The gradebook has no assignment {assignment_id!r} (it has: "
                                  f"{', '.join(known)}). Check the name, or generate the assignment "
                                  "first.") from None
            cells = [(cell.notebook.name, cell.name, cell.cell_type, float(cell.max_score))
                     for cell in gb.db.query(GradeCell).join(GradeCell.notebook)
                     .filter(Notebook.assignment_id == assignment.id)
                     .order_by(Notebook.name, GradeCell.name)]
            submissions = {}
            for submission in gb.db.query(SubmittedAssignment).filter(
                    SubmittedAssignment.assignment_id == assignment.id):
                submissions[submission.student_id] = {
                    "timestamp": submission.timestamp.isoformat() if submission.timestamp else None,
                    "seconds_late": float(submission.total_seconds_late), "penalty": 0.0, "grades": {}}
            # nbgrader keeps the late penalty per notebook; the submission's is their sum.
            rows = (gb.db.query(SubmittedAssignment.student_id, SubmittedNotebook.late_submission_penalty)
                    .join(SubmittedNotebook.assignment)
                    .filter(SubmittedAssignment.assignment_id == assignment.id))
            for student_id, penalty in rows:
                submissions[student_id]["penalty"] += penalty or 0.0
            rows = (gb.db.query(SubmittedAssignment.student_id, Notebook.name, GradeCell.name, Grade.auto_score,
                                Grade.manual_score, Grade.extra_credit, Grade.needs_manual_grade)
                    .join(Grade.notebook).join(SubmittedNotebook.assignment).join(SubmittedNotebook.notebook)
                    .join(GradeCell, Grade.cell_id == GradeCell.id)
                    .filter(SubmittedAssignment.assignment_id == assignment.id))
            for student_id, notebook, cell, auto, manual, extra, needs_manual in rows:
                submissions[student_id]["grades"][(notebook, cell)] = (auto, manual, extra or 0.0, needs_manual)
            facts = {
                "duedate": assignment.duedate.isoformat() if assignment.duedate else None,
                "students": sorted(student.id for student in gb.students),
                "cells": cells, "submissions": submissions,
                "journal": _journal(gb, assignment_id),
            }
    return facts


def _distribution(values, maximum_possible):
    counted = collections.Counter(round(value, 6) for value in values)
    return Distribution(
        count=len(values), maximum_possible=maximum_possible,
        counts=[[value, counted[value]] for value in sorted(counted)],
        mean=statistics.fmean(values) if values else None,
        median=statistics.median(values) if values else None,
        lowest=min(values) if values else None, highest=max(values) if values else None)


def _link(path, output_dir):
    """A relative URL from ``output_dir`` to ``path`` (each part quoted), or None if no file."""
    if not os.path.isfile(path):
        return None
    relative = os.path.relpath(path, output_dir)
    return "/".join(urllib.parse.quote(part) for part in Path(relative).parts)


def compute_report(course_root, assignment_id, output_dir=None, now=None):
    """The class report of ``assignment_id`` in the nbgrader course ``course_root``.

    ``output_dir`` is where the page will be written (default: the course folder): links
    to feedback pages are relative to it. Raises :class:`ReportError` if the course, its
    gradebook or the assignment is not there.
    """
    coursedir = _course_settings(course_root)
    output_dir = os.path.abspath(output_dir or coursedir.root)
    facts = _read_gradebook(coursedir, assignment_id)
    cells = facts["cells"]
    code_cells = [(nb, name, points) for nb, name, kind, points in cells if kind == "code"]
    written_cells = [(nb, name, points) for nb, name, kind, points in cells if kind != "code"]
    notebooks = sorted({nb for nb, *_ in cells})
    submitted_dirs = {Path(path).parent.name for path in glob.glob(coursedir.format_path(
        coursedir.submitted_directory, "*", assignment_id))}

    learners = []
    for student_id in sorted(set(facts["students"]) | set(facts["submissions"]) | submitted_dirs):
        submission = facts["submissions"].get(student_id)
        entry = facts["journal"].get(student_id)
        learner = Learner(student_id, NOT_SUBMITTED)
        if submission:
            learner.timestamp = submission["timestamp"]
            learner.seconds_late = submission["seconds_late"]
            learner.late_penalty = submission["penalty"]
        autograded = submission is not None and any(
            submission["grades"].get((nb, name), (None,))[0] is not None for nb, name, _ in code_cells)
        if entry is not None and entry["status"] == "failed":
            learner.status, learner.reason = FAILED, entry["reason"] or "no reason recorded"
        elif (entry is not None and entry["status"] == "graded" and submission) or (entry is None and autograded):
            learner.status = GRADED
        elif submission or student_id in submitted_dirs or entry is not None:
            learner.status = NOT_GRADED
        learners.append(learner)

    graded = [learner for learner in learners if learner.status == GRADED]
    verdicts = {}
    for learner in graded:
        grades = facts["submissions"][learner.student_id]["grades"]
        autograded_dir = coursedir.format_path(coursedir.autograded_directory, learner.student_id, assignment_id)
        learner.auto_score = sum(grades.get((nb, name), (None,))[0] or 0.0 for nb, name, _ in code_cells)
        learner.score = sum(_score(grades.get((nb, name))) for nb, name, _ in _all_cells(cells))
        for nb, name, _ in written_cells:
            needs_manual = grades.get((nb, name), (None, None, 0.0, True))[3]
            learner.written_to_grade += bool(needs_manual)
            learner.written_graded += not needs_manual
        learner.notebooks_missing = [nb for nb in notebooks
                                     if not os.path.isfile(os.path.join(autograded_dir, f"{nb}.ipynb"))]
        feedback_dir = coursedir.format_path(coursedir.feedback_directory, learner.student_id, assignment_id)
        learner.feedback = {nb: _link(os.path.join(feedback_dir, f"{nb}.html"), output_dir) for nb in notebooks}
        found = read_verdicts(autograded_dir, assignment_id, learner.student_id)
        learner.verdicts, learner.verdict_problem = found.status, found.problem
        if found.ignored:
            learner.verdict_problem = "left out: " + "; ".join(found.ignored)
        learner.verdict_notes = found.notes
        learner.mistakes = sorted({m for cell in found.cells for m in cell.mistakes})
        verdicts[learner.student_id] = found

    late = [learner for learner in learners if learner.seconds_late > 0 or learner.late_penalty > 0]
    counts = {
        "learners": len(learners),
        "submitted": sum(learner.status != NOT_SUBMITTED for learner in learners),
        "graded": len(graded),
        "failed": sum(learner.status == FAILED for learner in learners),
        "not_graded_yet": sum(learner.status == NOT_GRADED for learner in learners),
        "not_submitted": sum(learner.status == NOT_SUBMITTED for learner in learners),
        "late": len(late),
        "verdicts_recorded": sum(learner.verdicts == RECORDED for learner in graded),
        "no_verdicts_recorded": sum(learner.verdicts != RECORDED for learner in graded),
        "written_graded": sum(learner.written_graded for learner in graded),
        "written_to_grade": sum(learner.written_to_grade for learner in graded),
        "hand_grading_finished": sum(learner.written_to_grade == 0 for learner in graded),
    }
    mistakes, combinations = _mistake_stats(graded, verdicts)
    return ClassReport(
        assignment_id=assignment_id, course=coursedir.root,
        made_at=(now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="seconds"),
        duedate=facts["duedate"],
        max_score=sum(points for *_, points in _all_cells(cells)),
        auto_max_score=sum(points for *_, points in code_cells),
        written_max_score=sum(points for *_, points in written_cells),
        counts=counts, learners=learners,
        auto_totals=_distribution([learner.auto_score for learner in graded],
                                  sum(points for *_, points in code_cells)),
        totals=_distribution([learner.score for learner in graded], sum(points for *_, points in _all_cells(cells))),
        written=_written_stats(graded, facts, written_cells),
        cells=_cell_stats(graded, facts, code_cells, verdicts),
        mistakes=mistakes, mistake_combinations=combinations,
        answers=_answer_stats(graded, verdicts))


def _all_cells(cells):
    """``[(notebook, grade_id, points)]`` of all graded cells (code and written)."""
    return [(nb, name, points) for nb, name, _, points in cells]


def _score(grade):
    """nbgrader's score of one grade (hand-graded points win, extra credit added; none: 0)."""
    if grade is None:
        return 0.0
    auto, manual, extra, _ = grade
    if manual is not None:
        return manual + extra
    if auto is not None:
        return auto + extra
    return 0.0


def _written_stats(graded, facts, written_cells):
    stats = []
    for nb, name, points in written_cells:
        done, scores = 0, []
        for learner in graded:
            grade = facts["submissions"][learner.student_id]["grades"].get((nb, name))
            if grade is not None and not grade[3]:
                done += 1
                scores.append(_score(grade))
        stats.append(WrittenStats(nb, name, points, done, len(graded) - done,
                                  statistics.fmean(scores) if scores else None))
    return stats


def _cell_stats(graded, facts, code_cells, verdicts):
    stats = []
    for nb, name, points in code_cells:
        passed = partly = missing = 0
        mistakes = collections.Counter()
        for learner in graded:
            auto = facts["submissions"][learner.student_id]["grades"].get((nb, name), (None,))[0] or 0.0
            if points > 0 and auto >= points - SCORE_TOLERANCE:
                passed += 1
            elif auto > 0:
                partly += 1
            missing += nb in learner.notebooks_missing
            for cell in verdicts[learner.student_id].cells:
                if cell.notebook == nb and cell.grade_id == name:
                    mistakes.update(cell.mistakes)
        stats.append(CellStats(nb, name, points, len(graded), passed, partly, len(graded) - passed - partly,
                               missing, passed / len(graded) if graded else None,
                               dict(mistakes.most_common())))
    # Hardest first; cells no one was graded on last.
    stats.sort(key=lambda cell: (cell.pass_rate is None, cell.pass_rate or 0.0, cell.notebook, cell.grade_id))
    return stats


def _mistake_stats(graded, verdicts):
    per_learner = {}
    first_notebook = {}
    cells_of = collections.defaultdict(collections.Counter)
    for learner in graded:
        found = set()
        for cell in verdicts[learner.student_id].cells:
            for mistake in cell.mistakes:
                if mistake not in found:
                    first_notebook[learner.student_id, mistake] = cell.notebook
                    found.add(mistake)
            for mistake in set(cell.mistakes):
                cells_of[mistake][cell.grade_id] += 1
        if found:
            per_learner[learner.student_id] = frozenset(found)
    feedback = {learner.student_id: learner.feedback for learner in graded}
    stats = []
    for mistake in Mistake:
        who = sorted(student for student, found in per_learner.items() if mistake.value in found)
        if not who:
            continue
        alone = sum(per_learner[student] == {mistake.value} for student in who)
        others = collections.Counter(other for student in who for other in per_learner[student]
                                     if other != mistake.value)
        stats.append(MistakeStats(
            name=mistake.value, label=mistake.label, learners=len(who), alone=alone, combined=len(who) - alone,
            combined_with=dict(others.most_common()), cells=dict(cells_of[mistake.value].most_common()),
            who=[{"student_id": student, "notebook": first_notebook[student, mistake.value],
                  "feedback": feedback[student].get(first_notebook[student, mistake.value])}
                 for student in who]))
    stats.sort(key=lambda item: (-item.learners, item.name))
    combinations = collections.Counter(per_learner.values())
    return stats, [{"mistakes": sorted(combination), "learners": count}
                   for combination, count in sorted(combinations.items(),
                                                    key=lambda item: (-item[1], sorted(item[0])))]


def _answer_stats(graded, verdicts):
    values = collections.defaultdict(dict)  # name -> {student: (value, passed)}
    cells = collections.defaultdict(list)
    for learner in graded:
        for cell in verdicts[learner.student_id].cells:
            for name, value in cell.answers.items():
                if cell.grade_id not in cells[name]:
                    cells[name].append(cell.grade_id)
                values[name].setdefault(learner.student_id, (value, cell.passed))
    stats = []
    for name in sorted(values):
        tally = collections.defaultdict(lambda: [0, 0])
        for value, passed in values[name].values():
            tally[value][0 if passed else 1] += 1
        rows = [AnswerValue(value, sum(counts), counts[0], counts[1]) for value, counts in tally.items()]
        rows.sort(key=lambda row: (-row.learners, row.value))
        stats.append(AnswerStats(name, cells[name], len(values[name]), rows))
    return stats


def report_json(report):
    """The report as JSON text (the numbers the page shows)."""
    return json.dumps(dataclasses.asdict(report), indent=1, ensure_ascii=False, allow_nan=False)


# --- the page ------------------------------------------------------------------------------

_CSS = """
:root { --ok: #2b7a3d; --bad: #b3261e; --mid: #8a6d00; --line: #d5d9de; --muted: #5b6570; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, "DejaVu Sans", Arial, sans-serif; color: #1d2228; margin: 0;
       background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 1.6em; margin: 0.3em 0 0.1em; }
h2 { font-size: 1.25em; margin: 1.6em 0 0.4em; border-bottom: 2px solid var(--line); padding-bottom: 0.15em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
p.meta, .muted { color: var(--muted); }
nav { margin: 0.6em 0 0.2em; display: flex; flex-wrap: wrap; gap: 0.3em 1em; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 0.8em 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 120px; }
.card b { display: block; font-size: 1.5em; }
table { border-collapse: collapse; width: 100%; margin: 0.4em 0 1em; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
th:first-child, td:first-child { min-width: 10em; }
td.long, td:first-child { overflow-wrap: anywhere; }
td.id { white-space: nowrap; overflow-wrap: normal; }
td.gid { overflow-wrap: break-word; }
td.wide { min-width: 20em; }
th { background: #f3f5f7; }
td.num, th.num { text-align: right; white-space: nowrap; }
.bad { color: var(--bad); } .ok { color: var(--ok); } .mid { color: var(--mid); }
figure { margin: 0.5em 0 1em; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 0.9em; }
ul.names { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 0 0.8em; }
.names li { overflow-wrap: anywhere; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0 24px; }
.grid2 > * { min-width: 0; }
@media print {
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; }
  figure, tr, .card { break-inside: avoid; }
  thead { display: table-header-group; }
  .grid2 { display: block; }
  td.id { white-space: normal; overflow-wrap: anywhere; }
  td.wide { min-width: 0; }
  figure img { max-width: 16cm; }
}
"""


def _figure_image(figure, alt):
    """A matplotlib figure as an ``<img>`` holding its SVG (a data URL: nothing to fetch)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{html.escape(alt)}">'


def _new_figure(width, height):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def _score_plot(report):
    figure, axes = _new_figure(7.5, 3.0)
    for distribution, label, color in ((report.auto_totals, "autograded points", "#4c72b0"),
                                       (report.totals, "with the hand-graded points so far", "#dd8452")):
        if distribution.counts:
            xs = [value for value, _ in distribution.counts]
            ys = [count for _, count in distribution.counts]
            shift = -0.2 if color == "#4c72b0" else 0.2
            axes.bar([x + shift for x in xs], ys, width=0.4, label=label, color=color)
    axes.set_xlabel(f"points (autograded out of {report.auto_max_score:g}, all out of {report.max_score:g})")
    axes.set_ylabel("learners")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.legend(frameon=False)
    return _figure_image(figure, "Distribution of the learners' totals")


def _cell_plot(report):
    cells = [cell for cell in report.cells if cell.pass_rate is not None]
    figure, axes = _new_figure(7.5, 0.5 + 0.24 * max(len(cells), 1))
    names = [f"{cell.grade_id} ({cell.notebook})" for cell in cells]
    rates = [100 * cell.pass_rate for cell in cells]
    axes.barh(range(len(cells)), rates, color=["#b3261e" if rate < 50 else "#4c72b0" for rate in rates])
    axes.set_yticks(range(len(cells)), names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("learners who passed (%)")
    return _figure_image(figure, "Pass rate of each test cell, hardest first")


def _mistake_plot(report):
    mistakes = report.mistakes
    figure, axes = _new_figure(7.5, 0.6 + 0.3 * max(len(mistakes), 1))
    ys = range(len(mistakes))
    alone = [m.alone for m in mistakes]
    axes.barh(ys, alone, color="#b3261e", label="alone")
    axes.barh(ys, [m.combined for m in mistakes], left=alone, color="#e8a09a", label="with other mistakes")
    axes.set_yticks(ys, [m.label for m in mistakes], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("learners")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncols=2)
    return _figure_image(figure, "Learners per diagnosed mistake")


def _answer_rows(answer):
    """The most common values of one answer, the rest counted as one row."""
    rows = list(answer.values[:MAX_ANSWER_VALUES])
    rest = answer.values[MAX_ANSWER_VALUES:]
    if rest:
        rows.append(AnswerValue(f"{len(rest)} other values", sum(r.learners for r in rest),
                                sum(r.passed for r in rest), sum(r.failed for r in rest)))
    return rows


def _answer_plot(answer):
    rows = _answer_rows(answer)
    figure, axes = _new_figure(5.2, 0.6 + 0.28 * len(rows))
    ys = range(len(rows))
    axes.barh(ys, [row.passed for row in rows], color="#2b7a3d", label="cell passed")
    axes.barh(ys, [row.failed for row in rows], left=[row.passed for row in rows], color="#b3261e",
              label="cell failed")
    axes.set_yticks(ys, [row.value for row in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("learners")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncols=2, fontsize=8)
    return _figure_image(figure, f"Answers given for {answer.name}")


def _e(text):
    return html.escape(str(text))


def _id(text):
    """A grade id that may wrap only after its underscores."""
    return _e(text).replace("_", "_<wbr>")


def _number(value, digits=3):
    return "–" if value is None else f"{value:.{digits}g}"


def _names(items):
    """``[(student_id, link or None, extra text)]`` as a wrapping list."""
    parts = []
    for student, link, extra in items:
        name = f'<a href="{_e(link)}">{_e(student)}</a>' if link else _e(student)
        parts.append(f"<li>{name}{' ' + _e(extra) if extra else ''}</li>")
    return f'<ul class="names">{"".join(parts)}</ul>' if parts else '<span class="muted">none</span>'


def _first_feedback(learner):
    return next((link for link in learner.feedback.values() if link), None)


def _learner_lists(report):
    by_status = collections.defaultdict(list)
    for learner in report.learners:
        by_status[learner.status].append(learner)
    out = ["<h2 id='learners'>Who submitted</h2>", "<table><thead><tr><th>learners</th><th class=num>count</th>"
           "<th>who</th></tr></thead><tbody>"]
    for status in (GRADED, FAILED, NOT_GRADED, NOT_SUBMITTED):
        group = by_status[status]
        if status == FAILED:
            who = _by_reason([(l.student_id, l.reason) for l in group])
        elif status == GRADED:
            who = f"{len(group)} learners, listed below" if group else '<span class="muted">none</span>'
        else:
            who = _names([(l.student_id, None, "") for l in group])
        out.append(f"<tr><td>{_e(status)}</td><td class=num>{len(group)}</td><td class=long>{who}</td></tr>")
    late = [l for l in report.learners if l.seconds_late > 0 or l.late_penalty > 0]
    late_who = _names([(l.student_id, None, f"({_late_text(l)})") for l in late])
    out.append(f"<tr><td>late</td><td class=num>{len(late)}</td><td class=long>{late_who}</td></tr>")
    silent = [l for l in report.learners if l.status == GRADED and l.verdicts != RECORDED]
    silent_who = _by_reason([(l.student_id, l.verdict_problem) for l in silent])
    out.append(f"<tr><td>graded, no verdicts recorded (no mistakes counted)</td><td class=num>{len(silent)}</td>"
               f"<td class=long>{silent_who}</td></tr></tbody></table>")
    return "\n".join(out)


def _by_reason(pairs):
    """``[(student_id, reason)]`` grouped by reason, the most frequent first."""
    groups = collections.defaultdict(list)
    for student, reason in pairs:
        groups[reason].append(student)
    if not groups:
        return '<span class="muted">none</span>'
    return "".join(f"<div><b>{_e(reason)}</b> ({len(students)}): {_names([(s, None, '') for s in students])}</div>"
                   for reason, students in sorted(groups.items(), key=lambda item: (-len(item[1]), str(item[0]))))


def _late_text(learner):
    parts = []
    if learner.seconds_late > 0:
        parts.append(f"{_duration(learner.seconds_late)} late")
    if learner.late_penalty > 0:
        parts.append(f"penalty {learner.late_penalty:g}")
    return ", ".join(parts)


def _duration(seconds):
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _scores_section(report):
    c = report.counts
    out = ["<h2 id='scores'>Scores</h2>"]
    if report.auto_totals.count:
        out.append(f"<figure>{_score_plot(report)}<figcaption>Totals of the {report.auto_totals.count} graded "
                   "learners: autograded points alone, and with the points of the written answers graded so "
                   "far (before late penalties).</figcaption></figure>")
    out.append("<table><thead><tr><th>total</th><th class=num>out of</th><th class=num>learners</th>"
               "<th class=num>mean</th><th class=num>median</th><th class=num>lowest</th>"
               "<th class=num>highest</th></tr></thead><tbody>")
    for label, d in (("autograded", report.auto_totals), ("with hand-graded points", report.totals)):
        out.append(f"<tr><td>{label}</td><td class=num>{d.maximum_possible:g}</td><td class=num>{d.count}</td>"
                   f"<td class=num>{_number(d.mean)}</td><td class=num>{_number(d.median)}</td>"
                   f"<td class=num>{_number(d.lowest)}</td><td class=num>{_number(d.highest)}</td></tr>")
    out.append("</tbody></table>")
    total = c["written_graded"] + c["written_to_grade"]
    out.append(f"<h3>Hand grading</h3><p>Written answers graded: <b>{c['written_graded']}</b> of {total}; "
               f"<b>{c['written_to_grade']}</b> to grade. Learners with every written answer graded: "
               f"{c['hand_grading_finished']} of {c['graded']}.</p>")
    if report.written:
        out.append("<table><thead><tr><th>written answer</th><th>notebook</th><th class=num>points</th>"
                   "<th class=num>graded</th><th class=num>to grade</th><th class=num>mean of graded</th>"
                   "</tr></thead><tbody>")
        for w in report.written:
            out.append(f"<tr><td class=gid>{_id(w.grade_id)}</td><td class=id>{_e(w.notebook)}</td><td class=num>{w.max_score:g}</td>"
                       f"<td class=num>{w.graded}</td><td class=num>{w.to_grade}</td>"
                       f"<td class=num>{_number(w.mean_score)}</td></tr>")
        out.append("</tbody></table>")
    return "\n".join(out)


def _cells_section(report):
    out = ["<h2 id='cells'>Test cells, hardest first</h2>"]
    if not report.counts["graded"]:
        return out[0] + "<p class='muted'>No learner is graded yet.</p>"
    out.append(f"<figure>{_cell_plot(report)}<figcaption>Share of the {report.counts['graded']} graded learners "
               "with full points in each test cell (a notebook not submitted fails its cells).</figcaption></figure>")
    labels = {m.value: m.label for m in Mistake}
    out.append("<table><thead><tr><th>test cell</th><th>notebook</th><th class=num>points</th>"
               "<th class=num>passed</th><th class=num>partly</th><th class=num>failed</th>"
               "<th class=num>notebook not sent</th><th>mistakes found there (learners)</th></tr></thead><tbody>")
    for cell in report.cells:
        rate = f"{cell.passed} ({100 * cell.pass_rate:.0f}%)"
        found = ", ".join(f"{_e(labels.get(name, name))} ({count})" for name, count in cell.mistakes.items())
        out.append(f"<tr><td class=gid>{_id(cell.grade_id)}</td><td class=id>{_e(cell.notebook)}</td><td class=num>{cell.max_score:g}"
                   f"</td><td class=num>{rate}</td><td class=num>{cell.partly}</td><td class=num>{cell.failed}</td>"
                   f"<td class=num>{cell.notebook_missing}</td><td class=wide>{found}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _mistakes_section(report):
    out = ["<h2 id='mistakes'>Mistakes the grader recognized</h2>"]
    c = report.counts
    out.append(f"<p>From the verdicts of {c['verdicts_recorded']} graded learners"
               + (f"; {c['no_verdicts_recorded']} graded learners have no verdicts recorded and are not "
                  "counted here (see above)" if c["no_verdicts_recorded"] else "") + ". Names link to the "
               "learner's feedback page of the notebook where the mistake was found.</p>")
    if not report.mistakes:
        out.append("<p class='muted'>No mistake recorded.</p>")
        return "\n".join(out)
    out.append(f"<figure>{_mistake_plot(report)}<figcaption>Learners who made each mistake: as their only "
               "mistake, or with others.</figcaption></figure>")
    labels = {m.value: m.label for m in Mistake}
    out.append("<table><thead><tr><th>mistake</th><th class=num>learners</th><th class=num>alone</th>"
               "<th class=num>with others</th><th>most often with</th><th>who</th></tr></thead><tbody>")
    for m in report.mistakes:
        often = ", ".join(f"{_e(labels.get(name, name))} ({count})"
                          for name, count in list(m.combined_with.items())[:3])
        who = _names([(w["student_id"], w["feedback"], "") for w in m.who])
        out.append(f"<tr><td>{_e(m.label)}</td><td class=num>{m.learners}</td><td class=num>{m.alone}</td>"
                   f"<td class=num>{m.combined}</td><td>{often}</td><td class=long>{who}</td></tr>")
    out.append("</tbody></table>")
    if report.mistake_combinations:
        out.append("<h3>Combinations</h3><table><thead><tr><th>mistakes of one learner</th>"
                   "<th class=num>learners</th></tr></thead><tbody>")
        for combination in report.mistake_combinations[:20]:
            names = " + ".join(_e(labels.get(name, name)) for name in combination["mistakes"])
            out.append(f"<tr><td>{names}</td><td class=num>{combination['learners']}</td></tr>")
        out.append("</tbody></table>")
    return "\n".join(out)


def _answers_section(report):
    out = ["<h2 id='answers'>Answers given as values</h2>"]
    if not report.answers:
        out.append("<p class='muted'>No answers recorded (they come with the verdicts).</p>")
        return "\n".join(out)
    out.append("<p>What the learners' names held when the test cell ran, each learner counted once; green: "
               "the cell passed, red: it failed. A tall red bar is a common wrong answer.</p><div class=grid2>")
    for answer in report.answers:
        rows = "".join(f"<tr><td>{_e(row.value)}</td><td class=num>{row.learners}</td><td class=num>{row.passed}"
                       f"</td><td class=num>{row.failed}</td></tr>" for row in _answer_rows(answer))
        out.append(f"<section><h3>{_e(answer.name)}</h3><p class=muted>{answer.learners} learners; test cells "
                   f"{_e(', '.join(answer.cells))}</p><figure>{_answer_plot(answer)}</figure>"
                   "<table><thead><tr><th>value</th><th class=num>learners</th><th class=num>passed</th>"
                   f"<th class=num>failed</th></tr></thead><tbody>{rows}</tbody></table></section>")
    out.append("</div>")
    return "\n".join(out)


def _learners_table(report):
    graded = [l for l in report.learners if l.status == GRADED]
    out = ["<h2 id='each'>Each graded learner</h2>", "<table><thead><tr><th>learner</th>"
           f"<th class=num>autograded /{report.auto_max_score:g}</th><th class=num>total /{report.max_score:g}</th>"
           "<th class=num>written to grade</th><th>late</th><th>mistakes</th><th>grader's notes</th>"
           "</tr></thead><tbody>"]
    labels = {m.value: m.label for m in Mistake}
    for l in graded:
        link = _first_feedback(l)
        name = f'<a href="{_e(link)}">{_e(l.student_id)}</a>' if link else _e(l.student_id)
        mistakes = ", ".join(_e(labels.get(m, m)) for m in l.mistakes) if l.verdicts == RECORDED \
            else '<span class="muted">no verdicts recorded</span>'
        notes = "".join(f"<div>{_e(note[:300])}</div>" for note in l.verdict_notes[:5])
        out.append(f"<tr><td>{name}</td><td class=num>{l.auto_score:g}</td><td class=num>{l.score:g}</td>"
                   f"<td class=num>{l.written_to_grade}</td><td>{_e(_late_text(l))}</td><td>{mistakes}</td>"
                   f"<td class=long>{notes}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render_html(report):
    """The report as one self-contained HTML page (its plots inside it as SVG images)."""
    c = report.counts
    cards = [("learners", c["learners"]), ("submitted", c["submitted"]), ("graded", c["graded"]),
             ("grading failed", c["failed"]), ("not submitted", c["not_submitted"]), ("late", c["late"]),
             ("written answers to grade", c["written_to_grade"])]
    due = f"due {_e(report.duedate)}" if report.duedate else "no due date set"
    body = [
        f"<h1>Class report: {_e(report.assignment_id)}</h1>",
        f"<p class=meta>Course {_e(report.course)} · {due} · made {_e(report.made_at)}</p>",
        "<nav><a href='#learners'>Who submitted</a><a href='#scores'>Scores</a><a href='#cells'>Test cells</a>"
        "<a href='#mistakes'>Mistakes</a><a href='#answers'>Answers</a><a href='#each'>Each learner</a></nav>",
        "<div class=cards>" + "".join(f"<div class=card><b>{value}</b>{_e(label)}</div>" for label, value in cards)
        + "</div>",
        _learner_lists(report), _scores_section(report), _cells_section(report), _mistakes_section(report),
        _answers_section(report), _learners_table(report)]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>Class report: {_e(report.assignment_id)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def write_report(report, output_dir):
    """Write ``class_report_<assignment>.html`` and ``.json`` into ``output_dir``; returns both paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = output_dir / f"class_report_{report.assignment_id}"
    html_path, json_path = stem.with_suffix(".html"), stem.with_suffix(".json")
    json_path.write_text(report_json(report) + "\n", encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return html_path, json_path


def make_report(course_root, assignment_id, output_dir=None):
    """Compute, render and write the report; returns ``(report, html_path, json_path)``."""
    output_dir = output_dir or course_root
    report = compute_report(course_root, assignment_id, output_dir)
    html_path, json_path = write_report(report, output_dir)
    return report, html_path, json_path


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="course-report",
        description="Write the class report of an assignment (one HTML page with its plots inside, and "
                    "the same numbers as JSON) from the gradebook, course-grade's journal and verdict files.")
    parser.add_argument("assignment", help="assignment id, e.g. backprop")
    parser.add_argument("--course", default=".", help="nbgrader course folder (default: current folder)")
    parser.add_argument("--output", help="folder for class_report_<assignment>.html/.json "
                        "(default: the course folder; links to feedback pages are relative to it)")
    args = parser.parse_args(argv)
    try:
        report, html_path, json_path = make_report(args.course, args.assignment, args.output)
    except ReportError as error:
        print(f"course-report: {error}", file=sys.stderr)
        return 2
    c = report.counts
    print(f"{args.assignment}: {c['learners']} learners, {c['graded']} graded, {c['failed']} failed, "
          f"{c['not_submitted']} did not submit, {c['no_verdicts_recorded']} graded without verdicts recorded.")
    print(f"Class report: {html_path}")
    print(f"Its numbers:  {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
