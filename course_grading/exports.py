"""Grades out of the gradebook: nbgrader export plugins for Canvas, Moodle and per-cell analysis.

Run in the course folder (``notebooks/``), after grading::

    nbgrader export --exporter course_grading.exports.CanvasExport --CanvasExport.roster=roster.csv
    nbgrader export --exporter course_grading.exports.MoodleExport --MoodleExport.roster=roster.csv
    nbgrader export --exporter course_grading.exports.CellExport --assignment=backprop

nbgrader's own ``--to``, ``--assignment`` and ``--student`` options work as for its CSV
export; every other setting is a trait of the plugin class, settable on the command line
(``--CanvasExport.user_column=login``) or in ``nbgrader_config.py``
(``c.CanvasExport.roster = "roster.csv"``).

Hub user names (nbgrader's student ids) are usually not the platform's ids, so the Canvas
and Moodle exports read a roster: a UTF-8 CSV file with a header line, one line per learner,
with a column of hub user names and the platform's columns. Nothing is dropped silently:
learners of the gradebook missing from the roster, a hub user or a platform id on more than
one roster line, roster lines without an id, and roster learners without a submission are
listed on standard output and in a report beside the file (``canvas_grades.report.txt``).

What a learner gets in the file:

- a submission: its total after the late penalty, as in nbgrader's ``grades.csv`` (score);
- a roster learner without a submission: an empty cell, not 0. Both platforms read an empty
  cell as "no grade" (Canvas's importer treats ``""`` and ``"-"`` as no score; Moodle's
  CSV import turns them into a null grade), so the learner appears as not graded and the
  platform's own rule for missing work applies, instead of a 0 that would look like work
  graded as worth nothing. The instructor decides (an extension, an excuse, a 0).
- a hub user on several roster lines, or a platform id claimed by several lines: no row at
  all, since the grade could go to the wrong person; the report names the lines to fix.
- a learner missing from the roster: no row (there is no id to write); reported.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.plugins.export import ExportPlugin
from traitlets import Dict, Unicode

# The label of the row that gives each column's maximum, in the Canvas and per-cell files.
# Canvas's importer recognizes the row by these words in its first cell.
POINTS_POSSIBLE = "Points Possible"


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says what to change."""


# --- The gradebook, as plain values ---------------------------------------------------------

@dataclass(frozen=True)
class AssignmentScores:
    """One assignment's totals, read from the gradebook.

    ``scores`` holds, for each learner with a submission, the points after the late
    penalty (never below 0), as nbgrader's own CSV export computes them. ``to_grade_by_hand``
    names learners whose submission still has answers to grade in formgrader: their total
    may still change.
    """

    name: str
    max_score: float
    scores: dict[str, float]
    to_grade_by_hand: tuple[str, ...] = ()


def assignment_scores(gradebook: Gradebook, names=()) -> list[AssignmentScores]:
    """The totals of the assignments ``names`` (all of the gradebook's when empty).

    Assignments come in the order given, or in the gradebook's (due date, then name).
    An unknown name is an ``ExportError``.
    """
    known = {assignment.name: assignment for assignment in gradebook.assignments}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ExportError(f"The gradebook has no assignment {', '.join(map(repr, unknown))} "
                          f"(it has: {', '.join(known) or 'none'}). Check --assignment.")
    result = []
    for name in list(names) or list(known):
        submissions = gradebook.assignment_submissions(name)
        result.append(AssignmentScores(
            name=name,
            max_score=known[name].max_score,
            scores={s.student.id: max(0.0, s.score - s.late_submission_penalty) for s in submissions},
            to_grade_by_hand=tuple(sorted(s.student.id for s in submissions if s.needs_manual_grade)),
        ))
    return result


@dataclass(frozen=True)
class CellScores:
    """Each graded cell's points, per learner, for one assignment.

    ``cells`` lists (notebook, grade_id, maximum) in column order. ``scores[learner]`` maps
    (notebook, grade_id) to the points before any late penalty, or None while no one has
    scored the cell (a written answer not graded by hand yet); learners without a submission
    have an empty mapping.
    """

    assignment: str
    cells: tuple[tuple[str, str, float], ...]
    scores: dict[str, dict[tuple[str, str], float | None]]


def cell_scores(gradebook: Gradebook, assignment: str, learners) -> CellScores:
    """The per-cell points of ``assignment`` for ``learners`` (student ids, in row order)."""
    definition = gradebook.find_assignment(assignment)
    cells = []
    for notebook in sorted(definition.notebooks, key=lambda notebook: notebook.name):
        for cell in [*notebook.grade_cells, *notebook.task_cells]:
            cells.append((notebook.name, cell.name, cell.max_score))
    submitted = {s.student.id: s for s in gradebook.assignment_submissions(assignment)}
    scores = {}
    for learner in learners:
        scores[learner] = {}
        if learner not in submitted:
            continue
        for notebook in submitted[learner].notebooks:
            for grade in notebook.grades:
                scored = grade.auto_score is not None or grade.manual_score is not None
                scores[learner][(notebook.name, grade.cell.name)] = grade.score if scored else None
    return CellScores(assignment, tuple(cells), scores)


# --- The roster ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RosterRow:
    """One learner's line of the roster: its line number and its cells by column name."""

    line: int
    values: dict[str, str]


def read_roster(path, columns: dict[str, str], owner: str) -> list[RosterRow]:
    """The lines of the roster CSV at ``path`` (blank lines skipped; cells stripped).

    Cells are separated by commas, or by semicolons when the first line has more of those
    (spreadsheets write semicolons where the comma is the decimal separator).

    ``columns`` maps each setting (a trait name of the plugin ``owner``) to the column name it
    gives; each must be in the header line, so that the error can say which setting to change.
    A file that is missing, not UTF-8 (a byte-order mark, as Excel writes, is fine), empty,
    without a header line, or without one of those columns is an ``ExportError``.
    """
    path = Path(path)
    wanted = ", ".join(columns.values())
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ExportError(f"The roster {path} does not exist. Give the roster's path with "
                          f"--{owner}.roster=PATH (relative to the folder you run the command in).") from None
    except UnicodeDecodeError as error:
        raise ExportError(
            f"The roster {path} is not UTF-8 text (byte {error.object[error.start]:#04x} at "
            f"position {error.start}). Save it as UTF-8: in Excel as 'CSV UTF-8', in LibreOffice "
            f"with the character set 'Unicode (UTF-8)'.") from None
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    lines = [(reader.line_num, [cell.strip() for cell in row]) for row in reader]
    lines = [(number, row) for number, row in lines if any(row)]
    if not lines:
        raise ExportError(f"The roster {path} is empty. It needs a header line naming its columns "
                          f"({wanted}) and then one line per learner.")
    header = lines[0][1]
    missing = {setting: name for setting, name in columns.items() if name not in header}
    if len(missing) == len(columns):
        settings = " and ".join(f"--{owner}.{setting}=NAME" for setting in columns)
        raise ExportError(
            f"The roster {path} has no header line naming the columns {wanted}: its first line "
            f"is {','.join(header)!r}. If that line is a learner, add a header line above it; "
            f"if your columns have other names, name them with {settings}.")
    if missing:
        setting, name = next(iter(missing.items()))
        raise ExportError(
            f"The roster {path} has no column {name!r} (the {owner}.{setting} setting); its "
            f"columns are: {', '.join(header)}. Add the column, or name the one to use with "
            f"--{owner}.{setting}=NAME.")
    # A short line (trailing empty cells left out, as spreadsheets write them) has '' there.
    return [RosterRow(number, {name: row[i] if i < len(row) else "" for i, name in enumerate(header)})
            for number, row in lines[1:]]


@dataclass(frozen=True)
class RosterEntry:
    """A roster line as the export uses it.

    ``user`` is the hub user name and ``key`` what identifies the learner on the platform
    (either may be ''); ``values`` are the cells the file copies, by output column.
    """

    line: int
    user: str
    key: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.user or '(no hub user)'} ({self.key or 'no id'}, line {self.line})"


@dataclass(frozen=True)
class RosterCheck:
    """The roster matched with the gradebook: who goes into the file, and what to look at.

    ``exported`` are the roster entries written, in roster order. The rest lists what the
    instructor must see: gradebook learners not in the roster; hub users and platform ids
    on several lines (those lines are left out); lines without an id (left out); and, per
    assignment, exported learners with no submission (an empty cell) and with answers still
    to grade by hand.
    """

    exported: tuple[RosterEntry, ...]
    not_in_roster: tuple[str, ...]
    duplicate_users: dict[str, tuple[int, ...]]
    duplicate_keys: dict[str, tuple[int, ...]]
    without_key: tuple[int, ...]
    no_submission: dict[str, tuple[str, ...]]
    to_grade_by_hand: dict[str, tuple[str, ...]]

    def report(self, title: str) -> str:
        """The check as text for the instructor, under the heading ``title``."""
        lines = [title]
        left_out = [
            *(f"  in the gradebook, not in the roster: {user}" for user in self.not_in_roster),
            *(f"  hub user {user!r} on several roster lines: {_numbers(numbers)}"
              for user, numbers in self.duplicate_users.items()),
            *(f"  platform id {key!r} on several roster lines: {_numbers(numbers)}"
              for key, numbers in self.duplicate_keys.items()),
            *(f"  roster line {number} has no platform id" for number in self.without_key),
        ]
        if left_out:
            lines += ["Not in the file (fix the roster and export again):", *left_out]
        empty = [f"  no submission of {name}: {label}"
                 for name, labels in self.no_submission.items() for label in labels]
        if empty:
            lines += ["In the file with an empty cell (no grade, not 0):", *empty]
        pending = [f"  answers to grade by hand in {name}: {label}"
                   for name, labels in self.to_grade_by_hand.items() for label in labels]
        if pending:
            lines += ["Totals that may still change (formgrader):", *pending]
        if len(lines) == 1:
            lines.append("Every learner of the roster and the gradebook is in the file, with a grade.")
        return "\n".join(lines) + "\n"


def _numbers(numbers) -> str:
    return ", ".join(map(str, numbers))


def check_roster(entries, learners, assignments, selected=()) -> RosterCheck:
    """Match roster ``entries`` with the gradebook's ``learners`` and ``assignments``.

    ``selected`` (hub user names, as nbgrader's ``--student``) restricts both sides when given.
    A hub user or platform id on several lines makes all of those lines unusable: the grade
    could go to the wrong person.
    """
    if selected:
        entries = [entry for entry in entries if entry.user in selected]
        learners = [learner for learner in learners if learner in selected]
    lines_of_user, lines_of_key = {}, {}
    for entry in entries:
        if entry.user:
            lines_of_user.setdefault(entry.user, []).append(entry.line)
        if entry.key:
            lines_of_key.setdefault(entry.key, []).append(entry.line)
    duplicate_users = {user: tuple(n) for user, n in lines_of_user.items() if len(n) > 1}
    duplicate_keys = {key: tuple(n) for key, n in lines_of_key.items() if len(n) > 1}
    conflicting = {n for numbers in [*duplicate_users.values(), *duplicate_keys.values()] for n in numbers}
    exported = tuple(entry for entry in entries if entry.key and entry.line not in conflicting)
    return RosterCheck(
        exported=exported,
        not_in_roster=tuple(learner for learner in learners if learner not in lines_of_user),
        duplicate_users=duplicate_users,
        duplicate_keys=duplicate_keys,
        without_key=tuple(entry.line for entry in entries if not entry.key),
        no_submission={a.name: tuple(e.label for e in exported if e.user not in a.scores)
                       for a in assignments if any(e.user not in a.scores for e in exported)},
        to_grade_by_hand={a.name: tuple(e.label for e in exported if e.user in a.to_grade_by_hand)
                          for a in assignments if any(e.user in a.to_grade_by_hand for e in exported)},
    )


# --- Writing ------------------------------------------------------------------------------------

def number_text(value: float) -> str:
    """A score as CSV text that reads back as the same float ('2' for 2.0, '0.1' for 0.1)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def write_csv(path, rows) -> None:
    """Write ``rows`` (lists of text) as a UTF-8 CSV file, the format both platforms read."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


def grade_cells(entry: RosterEntry, assignments) -> list[str]:
    """``entry``'s total per assignment, '' where the learner has no submission."""
    return [number_text(a.scores[entry.user]) if entry.user in a.scores else "" for a in assignments]


# --- The plugins ---------------------------------------------------------------------------------

class RosterExport(ExportPlugin):
    """What the Canvas and Moodle exports share: the roster, its check, the report.

    A subclass names its roster columns (``roster_columns``), turns a roster line into an
    entry (``entry``) and writes the rows (``rows``).
    """

    roster = Unicode(
        "", help="The roster: a UTF-8 CSV file with a header line, one line per learner, "
                 "mapping hub user names to the platform's ids.").tag(config=True)
    user_column = Unicode(
        "hub_user", help="The roster column holding hub user names (nbgrader's student ids).").tag(config=True)
    assignment_columns = Dict(
        key_trait=Unicode(), value_trait=Unicode(),
        help="The header of each assignment's column, by nbgrader assignment name "
             "(default: the name itself).").tag(config=True)

    default_to = "grades.csv"
    platform = ""

    def roster_columns(self) -> dict[str, str]:
        """The roster columns read, by the setting that names them."""
        return {"user_column": self.user_column}

    def entry(self, row: RosterRow) -> RosterEntry | None:
        raise NotImplementedError

    def rows(self, check: RosterCheck, assignments) -> list[list[str]]:
        raise NotImplementedError

    def header(self, assignment: AssignmentScores) -> str:
        return self.assignment_columns.get(assignment.name, assignment.name)

    def export(self, gradebook: Gradebook) -> None:
        owner = type(self).__name__
        destination = Path(self.to or self.default_to)
        try:
            if not self.roster:
                raise ExportError(f"No roster given: pass --{owner}.roster=PATH (a CSV file mapping "
                                  f"hub user names to {self.platform}'s ids), or set "
                                  f"c.{owner}.roster in nbgrader_config.py.")
            selected = [str(student) for student in self.student]
            assignments = assignment_scores(gradebook, [str(name) for name in self.assignment])
            rows = read_roster(self.roster, self.roster_columns(), owner)
            entries = [entry for entry in map(self.entry, rows) if entry is not None]
            learners = [student.id for student in gradebook.students]
            check = check_roster(entries, learners, assignments, selected)
        except ExportError as error:
            self.log.error("%s", error)
            raise SystemExit(1) from None
        write_csv(destination, self.rows(check, assignments))
        report_path = destination.with_suffix(".report.txt")
        report = check.report(f"{self.platform} grades in {destination}: {len(check.exported)} learners; "
                              f"assignments {', '.join(a.name for a in assignments)}; roster {self.roster}.")
        report_path.write_text(report, encoding="utf-8")
        print(report + f"(This report is also in {report_path}.)")


class CanvasExport(RosterExport):
    """The CSV file that Canvas's gradebook import reads ("Import" in Canvas's Grades).

    Columns ``Student, ID, SIS User ID, SIS Login ID, Section``, then one column per
    assignment headed by its name (or ``assignment_columns``; a header ``Title (123)`` names
    the Canvas assignment with id 123, a header matching no assignment title creates one);
    the second line, ``Points Possible``, gives each assignment's maximum. This is the layout
    of Canvas's own gradebook export and what its importer checks (canvas-lms
    ``app/models/gradebook_importer.rb``: the header starts with ``Student`` and ``ID``, SIS
    User ID and SIS Login ID follow, ``Section`` ends the learner columns; a row whose first
    cell contains "Points Possible" sets the maxima; learners are matched by ID, then SIS
    User ID, then SIS Login ID; an empty cell or ``-`` is no score). See also Canvas's guide
    "How do I import grades in the Gradebook?"
    (https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807).

    The roster's column names default to Canvas's, so Canvas's own gradebook export with an
    added ``hub_user`` column is a roster (or set ``user_column`` to a column of it, e.g.
    ``SIS Login ID`` where that is the hub user name); its "Points Possible" line is skipped.
    A learner is identified by the first non-empty id, in Canvas's order.
    """

    student_column = Unicode("Student", help="The roster column with the learner's name ('' if none)."
                             ).tag(config=True)
    id_column = Unicode("ID", help="The roster column with Canvas's user ID ('' if none).").tag(config=True)
    sis_user_id_column = Unicode("SIS User ID", help="The roster column with the SIS User ID ('' if none)."
                                 ).tag(config=True)
    sis_login_id_column = Unicode("SIS Login ID", help="The roster column with the SIS Login ID ('' if none)."
                                  ).tag(config=True)
    section_column = Unicode("Section", help="The roster column with the section ('' if none).").tag(config=True)

    default_to = "canvas_grades.csv"
    platform = "Canvas"
    learner_columns = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")

    def _sources(self) -> dict[str, str]:
        """The roster column copied into each of Canvas's learner columns ('' for none)."""
        return dict(zip(self.learner_columns, (self.student_column, self.id_column, self.sis_user_id_column,
                                               self.sis_login_id_column, self.section_column)))

    def roster_columns(self) -> dict[str, str]:
        settings = ("student_column", "id_column", "sis_user_id_column", "sis_login_id_column", "section_column")
        named = {setting: getattr(self, setting) for setting in settings if getattr(self, setting)}
        if not {"id_column", "sis_user_id_column", "sis_login_id_column"} & named.keys():
            raise ExportError("CanvasExport needs at least one id column: set CanvasExport.id_column, "
                              "sis_user_id_column or sis_login_id_column to a column of the roster.")
        return {**super().roster_columns(), **named}

    def entry(self, row: RosterRow) -> RosterEntry | None:
        values = {column: row.values.get(source, "") if source else ""
                  for column, source in self._sources().items()}
        if POINTS_POSSIBLE in values["Student"]:
            return None
        key = next((values[column] for column in ("ID", "SIS User ID", "SIS Login ID") if values[column]), "")
        return RosterEntry(row.line, row.values[self.user_column], key, values)

    def rows(self, check: RosterCheck, assignments) -> list[list[str]]:
        blank = [""] * (len(self.learner_columns) - 1)
        return [[*self.learner_columns, *map(self.header, assignments)],
                [POINTS_POSSIBLE, *blank, *(number_text(a.max_score) for a in assignments)],
                *([*entry.values.values(), *grade_cells(entry, assignments)] for entry in check.exported)]


class MoodleExport(RosterExport):
    """The CSV file that Moodle's grade import ("Import" > "CSV file" in Grades) maps.

    One identifier column (the roster's ``id_column``, copied under the same name), then one
    column per assignment with the points. On import, map the identifier column ("Map from")
    to the user field it holds ("Map to": email address, username, ID number or user id,
    the fields Moodle matches users by; e-mail addresses match case-sensitively) and each
    assignment column to its grade item; set each grade item's maximum grade to the
    assignment's (grades.csv's max_score), since Moodle takes the points as they are. Moodle
    aborts the whole import at a line whose user it cannot find, so lines without an id are
    left out (and reported). See Moodle's documentation "Grade import", CSV import and its
    mapping tips (https://docs.moodle.org/en/Grade_import), and its importer,
    ``grade/import/csv/classes/load_data.php`` (users matched by id, idnumber, email or
    username; an empty cell or ``-`` is no grade).
    """

    id_column = Unicode(
        "Email address", help="The roster column with the identifier Moodle maps users by "
                              "(e.g. 'Email address', 'Username', 'ID number').").tag(config=True)

    default_to = "moodle_grades.csv"
    platform = "Moodle"

    def roster_columns(self) -> dict[str, str]:
        return {**super().roster_columns(), "id_column": self.id_column}

    def entry(self, row: RosterRow) -> RosterEntry:
        return RosterEntry(row.line, row.values[self.user_column], row.values[self.id_column])

    def rows(self, check: RosterCheck, assignments) -> list[list[str]]:
        return [[self.id_column, *map(self.header, assignments)],
                *([entry.key, *grade_cells(entry, assignments)] for entry in check.exported)]


class CellExport(ExportPlugin):
    """Every graded cell's points per learner, for the instructor's own analysis.

    One assignment per file (``--assignment=NAME``; not needed when the gradebook has one).
    Line 1: ``student_id`` and one column per graded cell, ``notebook/grade_id``, notebooks
    by name and cells in the gradebook's order. Line 2: ``Points Possible`` and each cell's
    maximum. Then one line per learner of the gradebook, by student id, with the points
    before any late penalty (the penalty applies to the total). An empty cell: no
    submission, or a written answer not graded by hand yet. In pandas,
    ``pd.read_csv(path, index_col=0)`` gives the maxima as ``.loc["Points Possible"]`` and
    the learners as the other rows; in a spreadsheet, freeze the first two lines.
    """

    default_to = "cell_grades.csv"

    def export(self, gradebook: Gradebook) -> None:
        known = [assignment.name for assignment in gradebook.assignments]
        names = [str(name) for name in self.assignment] or known
        if len(names) != 1 or names[0] not in known:
            self.log.error("The per-cell export writes one assignment of the gradebook (it has: %s); "
                           "choose it with --assignment=NAME.", ", ".join(known) or "none")
            raise SystemExit(1)
        selected = {str(student) for student in self.student}
        learners = sorted(s.id for s in gradebook.students if not selected or s.id in selected)
        table = cell_scores(gradebook, names[0], learners)
        columns = [(notebook, cell) for notebook, cell, _ in table.cells]
        rows = [["student_id", *(f"{notebook}/{cell}" for notebook, cell in columns)],
                [POINTS_POSSIBLE, *(number_text(maximum) for _, _, maximum in table.cells)]]
        for learner in learners:
            points = [table.scores[learner].get(column) for column in columns]
            rows.append([learner, *("" if value is None else number_text(value) for value in points)])
        destination = Path(self.to or self.default_to)
        write_csv(destination, rows)
        print(f"Points of {len(columns)} cells of {names[0]} for {len(learners)} learners in {destination}.")
