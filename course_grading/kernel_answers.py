"""The learner's answers handed from the kernel to the grading process as plain values.

Runs in two places: :func:`report` in the learner's kernel, in the sandbox, and the
strict reader :func:`decode_values` in the grading process. When a notebook is graded, its
test cells do not run in the learner's kernel: each is replaced by a call of
:func:`report` (``verdicts.StubTestCells``), which shows the values of the names that the
test needs (``best_wd_coefficient``, ``tiny_d_hid_to_class``, ...) as JSON in the cell's
output. The grading process reads them with :func:`decode_values`, which accepts numbers,
text, ``None``, booleans and arrays of numbers, and nothing else, and runs the test itself.
Whatever code is in the notebook can only change the values reported, as it could change
the answers themselves.

The sandbox shows this one file read-only to the kernel (``sandbox.GRADER_FILES_DIR``),
never the rest of ``course_grading``; it imports nothing of the project.
"""
import math
import re

import numpy as np

#: The MIME type of a report in a cell's output.
MIME_TYPE = "application/vnd.course-utils.values+json"
#: Largest array reported, in elements; longest text, in characters.
ARRAY_LIMIT = 10_000
TEXT_LIMIT = 200
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _number(value):
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def encode_value(value):
    """A JSON-ready description of one value."""
    if value is None:
        return {"none": True}
    if isinstance(value, (bool, np.bool_)):
        return {"bool": bool(value)}
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return {"int": int(value)} if abs(int(value)) < 2**53 else {"float": _number(value)}
    if isinstance(value, (float, np.floating)):
        return {"float": _number(value)}
    if isinstance(value, str):
        return {"str": value[:TEXT_LIMIT]}
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return {"type": type(value).__name__}
        if array.size <= ARRAY_LIMIT and array.ndim <= 3:
            return {"array": [_number(x) for x in array.ravel()], "shape": list(array.shape)}
    return {"type": type(value).__name__}


def encode_values(namespace, names):
    """{name: description} for ``names`` looked up in ``namespace``; a missing name says so."""
    return {name: encode_value(namespace[name]) if name in namespace else {"missing": True}
            for name in names}


def report(namespace, names):
    """Show the values of ``names`` from ``namespace`` (the notebook's globals) for the grader."""
    from IPython.display import display

    display({MIME_TYPE: encode_values(namespace, names),
             "text/plain": "(values handed to the grader: " + ", ".join(names) + ")"}, raw=True)


class Unreadable:
    """Stands for a value of a type that cannot be handed over (its class has that type's name)."""

    def __repr__(self):
        return f"<{type(self).__name__} object>"


def unreadable_value(type_name):
    """An :class:`Unreadable` whose class is named ``type_name`` (a checked identifier), so that
    a check's message names the learner's type ("it is a Tensor")."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,49}", type_name):
        type_name = "object"
    return type(type_name, (Unreadable,), {})()


class MalformedAnswers(ValueError):
    """A report that is not what :func:`report` writes."""


def _decode_number(item):
    if isinstance(item, str) and item in _NONFINITE:
        return _NONFINITE[item]
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return float(item)
    raise MalformedAnswers("a number is malformed")


def decode_value(description):
    """The value a description stands for; raises MalformedAnswers for anything else."""
    if not isinstance(description, dict) or len(description) not in (1, 2):
        raise MalformedAnswers("a value is malformed")
    if description == {"none": True}:
        return None
    if set(description) == {"bool"} and isinstance(description["bool"], bool):
        return description["bool"]
    if set(description) == {"int"} and isinstance(description["int"], int) and not isinstance(description["int"], bool):
        return description["int"]
    if set(description) == {"float"}:
        return _decode_number(description["float"])
    if set(description) == {"str"} and isinstance(description["str"], str):
        return description["str"][:TEXT_LIMIT]
    if set(description) == {"array", "shape"}:
        values, shape = description["array"], description["shape"]
        if (not isinstance(values, list) or not isinstance(shape, list) or len(shape) > 3
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= ARRAY_LIMIT for n in shape)
                or len(values) != math.prod(shape) or len(values) > ARRAY_LIMIT):
            raise MalformedAnswers("an array is malformed")
        return np.array([_decode_number(x) for x in values], dtype=np.float64).reshape(shape)
    if set(description) == {"type"} and isinstance(description["type"], str):
        return unreadable_value(description["type"])
    raise MalformedAnswers("a value is of no known kind")


#: Stands for a name the notebook had not defined.
MISSING = object()


def decode_values(report_data, names):
    """{name: value or MISSING} for ``names`` from the data of one report.

    Raises
    ------
    MalformedAnswers
        If the report is not a dict holding exactly ``names``, or a value is malformed.
    """
    if not isinstance(report_data, dict) or set(report_data) != set(names):
        raise MalformedAnswers("the report does not hold the values asked for")
    values = {}
    for name in names:
        description = report_data[name]
        values[name] = MISSING if description == {"missing": True} else decode_value(description)
    return values
