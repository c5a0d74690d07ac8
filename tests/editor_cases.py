"""Notebooks as learners' editors leave them, made from a release notebook.

Each function takes the release notebook (as nbformat reads it) with the learner's
answers typed in, and returns the file's text as the editor would have saved it.
"""
from __future__ import annotations

import copy
import json

import nbformat
from nbformat.v4.nbbase import random_cell_id


def grade_ids(notebook):
    return [cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in notebook.cells]


def saved(notebook):
    """The text JupyterLab writes."""
    return nbformat.writes(notebook) + "\n"


def pasted_copy(notebook, grade_id, after=None, source=None):
    """Copy the cell ``grade_id`` and paste it below the cell ``after`` (default: below
    itself), as JupyterLab does: a new cell id, every other key (nbgrader's metadata,
    the lock) kept; ``source``: what the learner then typed into the copy."""
    notebook = copy.deepcopy(notebook)
    ids = grade_ids(notebook)
    cell = copy.deepcopy(notebook.cells[ids.index(grade_id)])
    cell["id"] = random_cell_id()
    if source is not None:
        cell.source = source
    notebook.cells.insert(ids.index(after or grade_id) + 1, cell)
    return notebook


def moved(notebook, grade_id, after):
    """Cut the cell ``grade_id`` and paste it below the cell ``after`` (JupyterLab keeps its id)."""
    notebook = copy.deepcopy(notebook)
    cell = notebook.cells.pop(grade_ids(notebook).index(grade_id))
    notebook.cells.insert(grade_ids(notebook).index(after) + 1, cell)
    return notebook


def deleted(notebook, *names):
    notebook = copy.deepcopy(notebook)
    notebook.cells = [cell for cell, name in zip(notebook.cells, grade_ids(notebook)) if name not in names]
    return notebook


def older_jupyter(notebook, minor):
    """The text an older Jupyter writes: format 4.``minor`` (< 5) has no cell ids."""
    data = json.loads(nbformat.writes(notebook))
    data["nbformat_minor"] = minor
    for cell in data["cells"]:
        cell.pop("id", None)
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def format_3(notebook):
    """The text of IPython 2 (notebook format 3: cells in worksheets)."""
    return nbformat.writes(nbformat.convert(copy.deepcopy(notebook), 3))


def vs_code(notebook):
    """The text VS Code writes: its own metadata, keys in another order, an indent of 4,
    sources as lists of lines, no newline at the end of the file."""
    data = json.loads(nbformat.writes(notebook))
    data["metadata"]["vscode"] = {"interpreter": {"hash": "0" * 64}}
    data["metadata"]["language_info"] = {"name": "python", "version": "3.11.2",
                                         "mimetype": "text/x-python", "file_extension": ".py"}
    cells = []
    for cell in data["cells"]:
        source = cell["source"]
        lines = source.splitlines(True) if isinstance(source, str) else source
        reordered = {"metadata": cell["metadata"], "source": lines, "cell_type": cell["cell_type"],
                     "id": cell["id"]}
        if cell["cell_type"] == "code":
            reordered["outputs"] = cell.get("outputs", [])
            reordered["execution_count"] = cell.get("execution_count")
            reordered["metadata"]["vscode"] = {"languageId": "python"}
        cells.append(reordered)
    reordered = {"nbformat_minor": data["nbformat_minor"], "cells": cells, "nbformat": data["nbformat"],
                 "metadata": data["metadata"]}
    return json.dumps(reordered, indent=4)
