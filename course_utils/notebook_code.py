"""Taking a function out of a notebook cell, e.g. the learner's ``d_loss_by_d_model``.

The Part-4 notebook reuses the gradient that the learner wrote in the first notebook,
and the tests take the instructor's solution from the source notebook, so that each
exists in exactly one place.
"""

import sysconfig
import traceback
from pathlib import Path

import numpy as np

# Frames in these folders are not the learner's code: this package, Python's own library
# and installed packages such as NumPy.
LIBRARY_FOLDERS = tuple(Path(folder).resolve() for folder in (
    Path(__file__).parent, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
    sysconfig.get_paths()["platlib"]))


def learner_namespace():
    """The names the assignment notebooks' setup cell gives to learner code."""
    from . import network

    names = ["forward_pass", "loss", "logistic", "log_sum_exp_over_rows", "model_to_theta",
             "theta_to_model", "initial_model", "classification_performance"]
    namespace = {name: getattr(network, name) for name in names}
    namespace.update(np=np, __name__="__notebook__")
    return namespace


def learner_line(error, of=None):
    """Where ``error`` happened in the learner's code: 'line N of <of>: <code>', or ''.

    That is the deepest frame of the traceback in the learner's code: frames of
    ``course_utils``, Python's library and installed packages do not count, nor a lambda
    that a notebook passes on (the mistake is in the function it calls). ``of`` names the
    code (default: that frame's function).
    """
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if frame.name != "<lambda>" and not _in_library(frame.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": {frame.line.strip()}" if frame.line else ""
    return f"line {frame.lineno} of {of or frame.name}{code}"


def _in_library(filename):
    path = Path(filename).resolve()
    return "-packages" in filename or any(path.is_relative_to(folder) for folder in LIBRARY_FOLDERS)


def cell_source(path, grade_id):
    """The source text of the code cell whose nbgrader ``grade_id`` is ``grade_id``."""
    # Imported here: nbformat (with jsonschema) is slow to import, and every grading
    # process imports course_utils while few of them read notebooks.
    import nbformat

    notebook = nbformat.read(Path(path), as_version=4)
    for cell in notebook.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            if cell.cell_type != "code":
                raise ValueError(f"The cell '{grade_id}' in {path} is not a code cell.")
            return cell.source
    raise LookupError(
        f"{path} has no cell with grade_id '{grade_id}'. Was the cell deleted? Copy it "
        "back from a fresh copy of the assignment."
    )


def function_from_notebook(path, grade_id, name, namespace=None):
    """Run the cell ``grade_id`` of the notebook at ``path`` and return the object ``name``.

    Parameters
    ----------
    path : str or Path, the ``.ipynb`` file
    grade_id : str, the nbgrader grade_id of the code cell
    name : str, e.g. ``'d_loss_by_d_model'``
    namespace : dict, optional
        Globals for the cell; by default ``learner_namespace()`` (``np``,
        ``forward_pass``, ...), as in the notebook after its setup cell.
    """
    source = cell_source(path, grade_id)
    namespace = learner_namespace() if namespace is None else namespace
    exec(compile(source, f"{Path(path).name}:{grade_id}", "exec"), namespace)
    if name not in namespace:
        raise LookupError(f"The cell '{grade_id}' in {path} does not define {name}.")
    return namespace[name]
