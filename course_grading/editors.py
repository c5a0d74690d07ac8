"""Notebooks as learners' editors leave them, put back as nbgrader expects them.

Editors do things to a notebook that are not attacks, and that plain nbgrader fails on
or grades wrongly:

- a cell copied and pasted in JupyterLab keeps its nbgrader metadata, so two cells have
  one grade id: nbgrader refuses the notebook ("Duplicate grade id"), and the learner
  gets nothing for it. Here the first cell keeps the grade id and the copies become
  ordinary cells, which run where they are, as they did in the learner's kernel;
- cells moved out of the assignment's order, or deleted: put back where the release has
  them (a deleted cell as the release has it: a test cell is then restored from the
  gradebook by nbgrader as usual, an answer cell is the release's empty answer). nbgrader's
  own ``add_missing_cells`` puts back deleted graded cells only, and stops the grading with
  a KeyError when the cell before a deleted one is not graded (a written answer after its
  question);
- notebooks saved by an older Jupyter (format 3, or 4.0 to 4.4 without cell ids):
  converted to format 4.5 and written in Jupyter's own layout. Another editor's layout
  (VS Code's metadata, key order, indentation, no final newline) needs nothing: nbformat
  and nbgrader read it as they read Jupyter's.

:func:`repair_notebook` does it for one notebook and says what it found and did, in
sentences for the learner and the instructor; the grader puts them in the summary and,
as a Markdown cell at the top (:func:`note_cell`), in the feedback. Nothing here runs
learner code: it reads JSON.
"""
from __future__ import annotations

import bisect
import copy
import dataclasses
import json
import os
import re
import warnings

import nbformat
from nbformat.v4.nbbase import random_cell_id

#: The tag of the Markdown cell that carries the notes into the feedback.
NOTE_TAG = "course-grade-note"
#: Names JupyterLab gives a duplicated notebook ("File > Duplicate", "Save as" defaults).
_STRAY_COPY = re.compile(r"^(?P<stem>.+?)(-Copy\d+| \(\d+\)| - Copy( \(\d+\))?)\.ipynb$")


@dataclasses.dataclass
class Repaired:
    """A notebook as nbgrader expects it: ``notebook`` (nbformat 4.5), ``notes`` (one
    sentence per thing found and done; empty when there was nothing to do)."""

    notebook: nbformat.NotebookNode
    notes: list


def grade_id(cell):
    """The nbgrader grade id of a cell that nbgrader tracks (graded, solution or locked), or None."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if not isinstance(meta, dict) or not (meta.get("grade") or meta.get("solution") or meta.get("locked")):
        return None
    value = meta.get("grade_id")
    return value if isinstance(value, str) else None


def kind(cell):
    """'test cell', 'answer cell' or 'locked cell': what a cell nbgrader tracks is, for learners."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("grade") and not meta.get("solution"):
        return "test cell"
    if meta.get("solution"):
        return "answer cell"
    return "locked cell"


def read_notebook(text):
    """``text`` (a notebook file's content) as nbformat 4.5, and the notes on its format.

    Raises ValueError when it is not a notebook nbformat can read.
    """
    try:
        raw = json.loads(text)
        major, minor = raw.get("nbformat"), raw.get("nbformat_minor")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat warns about missing cell ids: handled below
            notebook = nbformat.reads(text, as_version=4)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError,
            nbformat.reader.NotJSONError) as error:
        raise ValueError(f"{type(error).__name__}: {str(error)[:200]}") from None
    notes = []
    if major != 4 or not isinstance(minor, int) or minor < 5:
        version = f"{major}.{minor}" if minor is not None else f"{major}"
        notes.append(f"saved in notebook format {version} (an older Jupyter): read as format 4.5, "
                     "the cells unchanged")
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    seen = set()
    for cell in notebook.cells:
        if not isinstance(cell.get("id"), str) or not cell.get("id") or cell.get("id") in seen:
            cell["id"] = random_cell_id()
        seen.add(cell["id"])
    return notebook, notes


def deduplicate(cells):
    """The first cell of each grade id keeps it; later ones become ordinary cells (in place).
    Returns the notes, one per grade id that had copies."""
    notes, first = [], {}
    copies = {}
    for cell in cells:
        name = grade_id(cell)
        if name is None:
            continue
        if name not in first:
            first[name] = cell
            continue
        copies.setdefault(name, []).append(cell)
        cell.metadata.pop("nbgrader", None)
        # JupyterLab's lock of an instructor's cell came with the copy; the copy is the learner's.
        cell.metadata.pop("editable", None)
        cell.metadata.pop("deletable", None)
    for name, extra in copies.items():
        count = "a copy" if len(extra) == 1 else f"{len(extra)} copies"
        what = kind(first[name])
        runs = ("the copy runs as an ordinary cell, where it is" if len(extra) == 1 else
                "the copies run as ordinary cells, where they are")
        notes.append(f"found {count} of the {what} '{name}' (a cell copied and pasted keeps the "
                     f"cell's hidden nbgrader data): the first cell is graded as '{name}', {runs}")
    return notes


def _longest_increasing(values):
    """Indices of one longest strictly increasing subsequence of ``values`` (a set)."""
    tail_values, tail_index, previous = [], [], [None] * len(values)
    for index, value in enumerate(values):
        position = bisect.bisect_left(tail_values, value)
        if position == len(tail_values):
            tail_values.append(value)
            tail_index.append(index)
        else:
            tail_values[position], tail_index[position] = value, index
        previous[index] = tail_index[position - 1] if position else None
    chain, index = set(), tail_index[-1] if tail_index else None
    while index is not None:
        chain.add(index)
        index = previous[index]
    return chain


def _release_positions(cells, release_cells):
    """Each cell's position in the release, or None for a cell the learner added (or edited,
    if the release's cell has no grade id: such a cell is only known by its text)."""
    graded = {name: index for index, cell in enumerate(release_cells) if (name := grade_id(cell)) is not None}
    plain = {}
    for index, cell in enumerate(release_cells):
        if grade_id(cell) is None:
            plain.setdefault((cell.get("cell_type"), cell.get("source")), []).append(index)
    positions = []
    for cell in cells:
        name = grade_id(cell)
        if name is not None:
            positions.append(graded.get(name))
        else:
            same = plain.get((cell.get("cell_type"), cell.get("source")))
            positions.append(same.pop(0) if same else None)
    return positions, graded


def _restore_order(cells, release_cells):
    """The release's cells in its order, deleted ones put back; returns (cells, notes).

    Only the cells nbgrader tracks (with a grade id) are moved: the fewest of them that
    put the rest in order, each to just after the cell the release has before it. Cells
    the learner added stay where they are.
    """
    positions, graded = _release_positions(cells, release_cells)
    tracked = [index for index, cell in enumerate(cells) if grade_id(cell) in graded]
    keep = _longest_increasing([positions[index] for index in tracked])
    moved = [tracked[index] for index in range(len(tracked)) if index not in keep]
    present = {positions[index] for index in tracked}
    missing = [position for position in graded.values() if position not in present]
    if not moved and not missing:
        return cells, []
    placed = [(cell, position) for index, (cell, position) in enumerate(zip(cells, positions))
              if index not in set(moved)]
    to_place = sorted([(positions[index], cells[index]) for index in moved]
                      + [(position, _restored(release_cells[position])) for position in missing],
                      key=lambda item: item[0])
    for position, cell in to_place:
        known = [index for index, (_, at) in enumerate(placed) if at is not None and at < position]
        after = max(known, key=lambda index: placed[index][1]) + 1 if known else 0
        placed.insert(after, (cell, position))
    notes = []
    if moved:
        names = [grade_id(cells[index]) for index in moved]
        notes.append(f"{_cells(names)} {'were' if len(names) > 1 else 'was'} moved out of the "
                     "assignment's order: graded in the assignment's order")
    if missing:
        names = [grade_id(release_cells[position]) for position in missing]
        notes.append(f"{_cells(names)} {'were' if len(names) > 1 else 'was'} deleted: put back as the "
                     f"assignment has {'them' if len(names) > 1 else 'it'} (a test cell as it was, an "
                     "answer cell empty)")
    return [cell for cell, _ in placed], notes


def _cells(names):
    return f"cell{'s' if len(names) > 1 else ''} {', '.join(repr(name) for name in names)}"


def _restored(release_cell):
    restored = copy.deepcopy(release_cell)
    restored["id"] = random_cell_id()
    return restored


def repair_notebook(text, release_cells=None):
    """The notebook in ``text`` as nbgrader expects it; returns :class:`Repaired`.

    Parameters
    ----------
    text : str or bytes, the content of a learner's ``.ipynb`` file
    release_cells : list of cells, optional
        The release notebook's cells (what learners were given). Without them, cells
        are deduplicated and the format converted, but not put back in order.

    Raises ValueError when ``text`` is not a notebook.
    """
    notebook, notes = read_notebook(text)
    notes += deduplicate(notebook.cells)
    if release_cells is not None:
        notebook.cells, more = _restore_order(notebook.cells, release_cells)
        notes += more
    return Repaired(notebook, notes)


def note_cell(notes):
    """A Markdown cell that tells the learner what the grader found and did."""
    lines = ["**Note from the grader.** Your editor changed this notebook in ways nbgrader does "
             "not expect. What was found, and what the grader did:", ""]
    lines += [f"- {note[0].upper()}{note[1:]}." for note in notes]
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.metadata["tags"] = [NOTE_TAG]
    return cell


def stray_copy_of(name, notebooks):
    """The notebook of ``notebooks`` that the file ``name`` is a copy of (``backprop-Copy1.ipynb``
    of ``backprop.ipynb``), or None."""
    match = _STRAY_COPY.match(name)
    if match and f"{match['stem']}.ipynb" in notebooks:
        return f"{match['stem']}.ipynb"
    return None


def release_notebooks(release_folder):
    """{file name: cells} of the release notebooks in ``release_folder`` (none if it is missing)."""
    found = {}
    if release_folder and os.path.isdir(release_folder):
        for name in sorted(os.listdir(release_folder)):
            if name.endswith(".ipynb"):
                with open(os.path.join(release_folder, name), encoding="utf-8") as stream:
                    found[name] = nbformat.read(stream, as_version=4).cells
    return found
