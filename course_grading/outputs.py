"""What the learner's kernel printed, made safe to keep and to show.

Two limits on outputs, applied where ``course-grade`` runs the notebook:

- bytes: :class:`CappedExecute` (nbgrader's ``Execute``) drops a cell's output past
  ``cell_limit`` bytes, and any output past ``notebook_limit`` bytes for the notebook, as
  the messages arrive, so neither the autograded notebook nor the grader's memory grows
  with what the learner prints; a note in the cell says how much was left out;
- content: :class:`NeutralizeOutputs` keeps only output types that render as inert text
  or images (``text/plain``, PNG, JPEG): learner HTML, JavaScript, SVG, Markdown, LaTeX
  and widgets would otherwise be live in the feedback page and in formgrader, in the
  instructor's browser session. The learner's Markdown cells keep their text, with any
  HTML tag shown as text (:func:`sanitize_markdown_cells`, also run for every feedback
  page by ``course_grading.feedback.SanitizeMarkdown``): nbgrader's own page templates do not sanitize.
"""
from __future__ import annotations

import json
import re

import nbformat
from nbconvert.filters import clean_html
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer

#: Default limits in bytes.
CELL_LIMIT = 100_000
NOTEBOOK_LIMIT = 2_000_000
#: Output types kept; everything else is replaced by its text/plain, if any.
SAFE_TYPES = ("text/plain", "image/png", "image/jpeg")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")


def message_size(content):
    """The bytes an output message would add to the notebook (its texts and data)."""
    size = len(content.get("text", "")) + len(content.get("evalue", ""))
    size += sum(len(line) for line in content.get("traceback", []))
    for value in content.get("data", {}).values():
        size += len(value) if isinstance(value, str) else len(json.dumps(value))
    return size


def _note(left_out):
    return nbformat.v4.new_output("stream", name="stdout",
                                  text=f"\n[output truncated: {left_out} more bytes were left out]\n")


class CappedExecute(Execute):
    """nbgrader's ``Execute``, keeping at most ``cell_limit`` bytes of output per cell and
    ``notebook_limit`` per notebook."""

    cell_limit = Integer(CELL_LIMIT, help="Bytes of output kept per cell.").tag(config=True)
    notebook_limit = Integer(NOTEBOOK_LIMIT, help="Bytes of output kept per notebook.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._kept, self._left_out, self._total = {}, {}, 0
        nb, resources = super().preprocess(nb, resources, km=km)
        for index, left_out in self._left_out.items():
            nb.cells[index].outputs.append(_note(left_out))
        return nb, resources

    def output(self, outs, msg, display_id, cell_index):
        size = message_size(msg.get("content", {}))
        kept = self._kept.get(cell_index, 0)
        if kept + size > self.cell_limit or self._total + size > self.notebook_limit:
            self._left_out[cell_index] = self._left_out.get(cell_index, 0) + size
            return None
        self._kept[cell_index] = kept + size
        self._total += size
        return super().output(outs, msg, display_id, cell_index)


def neutralize_output(output):
    """The output with only inert content: safe types, base64 images, no metadata."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return output
    data = output.get("data", {})
    kept = {}
    for kind in SAFE_TYPES:
        value = data.get(kind)
        if isinstance(value, str) and (kind == "text/plain" or _BASE64.match(value)):
            kept[kind] = value
    if not kept:
        left = sorted(kind for kind in data if kind not in SAFE_TYPES)
        kept["text/plain"] = f"[output of type {', '.join(left)[:200]} not shown]"
    output["data"] = kept
    output["metadata"] = {}
    return output


def cap_outputs(outputs, limit):
    """The outputs, keeping whole outputs while they fit in ``limit`` bytes, then a note."""
    kept, used, left_out = [], 0, 0
    for output in outputs:
        size = message_size(output)
        if used + size > limit:
            left_out += size
            continue
        used += size
        kept.append(output)
    if left_out:
        kept.append(_note(left_out))
    return kept


def sanitize_markdown_cells(nb):
    """Learners' Markdown cells with their HTML made inert (tags shown as text, bleach's
    safe subset kept); the instructor's locked cells stay as written."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not utils.is_locked(cell):
            cell.source = clean_html(cell.source)
    return nb


class NeutralizeOutputs(NbGraderPreprocessor):
    """Keep only inert outputs in every cell, within the byte limits, and no widget state."""

    cell_limit = Integer(CELL_LIMIT, help="Bytes of output kept per cell.").tag(config=True)

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = cap_outputs([neutralize_output(o) for o in cell.get("outputs", [])],
                                           self.cell_limit)
        nb.metadata.pop("widgets", None)
        return sanitize_markdown_cells(nb), resources
