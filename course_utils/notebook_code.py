"""Taking a function out of a notebook cell, e.g. the learner's ``d_loss_by_d_model``.

The Part-4 notebook reuses the gradient that the learner wrote in the first notebook,
and the tests take the instructor's solution from the source notebook, so that each
exists in exactly one place.
"""

import ast
import json
import linecache
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


def is_learner_code_cell(cell):
    """Whether a notebook cell is code the learner wrote or may change.

    Not the instructor's locked cells (setup) and not the test cells; every other code
    cell: the answer cells and any cell the learner added.
    """
    meta = cell.get("metadata", {}).get("nbgrader", {})
    instructors = meta.get("locked") or (meta.get("grade") and not meta.get("solution"))
    return cell.get("cell_type") == "code" and not instructors


def _ipython_lines_removed(source):
    # '%matplotlib inline' or '!pip ...' are IPython, not Python: left out as comments,
    # so that line numbers stay those of the cell.
    return "\n".join("# " + line if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def _runs_nothing(node):
    """True for an expression that only names or builds values: no call, no comprehension.
    Code inside a lambda does not run when it is defined, so it does not count."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Lambda):
            continue
        if isinstance(item, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr,
                             ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return False
        stack.extend(ast.iter_child_nodes(item))
    return True


def definitions(source, filename="<cell>", leave_out=()):
    """The definitions in a cell's code, compiled: imports, functions, classes and names
    given plain values (``EPS = 1e-8``), in their order and with their line numbers.

    Statements that compute or train (calls, loops, ...) are left out, and so are
    definitions of the names in ``leave_out``. A cell that is not valid Python gives
    nothing (its own cell reports the error). Returns a code object.
    """
    try:
        tree = ast.parse(_ipython_lines_removed(source), filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return compile("", filename, "exec")
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name not in leave_out:
                kept.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
            if len(names) == len(targets) and not set(names) & set(leave_out) and _runs_nothing(node.value):
                kept.append(node)
    return compile(ast.Module(body=kept, type_ignores=[]), filename, "exec")


def _function_definitions(source, name, filename):
    """The ``def name(...)`` statements of a cell's code, compiled, or None if it has none."""
    try:
        tree = ast.parse(_ipython_lines_removed(source), filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    kept = [node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name]
    if not kept:
        return None
    return compile(ast.Module(body=kept, type_ignores=[]), filename, "exec")


def define_function(cells, function_cell, name, namespace, filename="cell"):
    """Define the learner's function ``name`` in ``namespace`` as a notebook would.

    Parameters
    ----------
    cells : list of str
        The learner's code cells, in order (see ``is_learner_code_cell``).
    function_cell : int
        Index in ``cells`` of the cell that defines ``name``: it runs whole, last; the
        other cells give their definitions (imports, helper functions, constants), so
        that a helper written in another cell is there, as it is in the notebook.
    name : str, e.g. ``'d_loss_by_d_model'``
    namespace : dict, the globals

    Returns
    -------
    str
        '' when the function is defined, else what went wrong, for the learner. As in
        the notebook, a function defined before a later line of its cell failed is
        still defined (and the failure is not reported). A later cell that defines
        ``name`` again replaces it (the last definition counts).
    """
    for index, source in enumerate(cells):
        if index != function_cell:
            try:
                exec(definitions(source, f"{filename} {index + 1}", leave_out=(name,)), namespace)
            except Exception:  # such a cell fails in the notebook too; its definitions are optional here
                pass
    failure = ""
    try:
        source = _ipython_lines_removed(cells[function_cell]) if 0 <= function_cell < len(cells) else ""
        # Known to linecache, so that an error message can quote the learner's line.
        linecache.cache[f"{name} cell"] = (len(source), None, source.splitlines(True), f"{name} cell")
        exec(compile(source, f"{name} cell", "exec"), namespace)
    except Exception as error:
        failure = f"the cell that defines {name} failed: {type(error).__name__}: {error}"
    # A later cell that defines the function again (an edited copy of the cell, pasted
    # below it) replaces it, as it does in the kernel when the notebook runs top to bottom.
    for index in range(function_cell + 1, len(cells)) if function_cell >= 0 else range(0):
        redefined = _function_definitions(cells[index], name, f"{filename} {index + 1}")
        if redefined is not None:
            try:
                exec(redefined, namespace)
            except Exception:  # as in the notebook, a definition that fails leaves the earlier one
                pass
    if callable(namespace.get(name)):
        return ""
    return failure or f"no cell defines the function {name}: run the cell with your {name}, or copy it back"


def notebook_cells(path):
    """The cells of the notebook at ``path``: dicts with ``cell_type``, ``source`` (one string)
    and ``metadata``, as in nbformat's version 4."""
    # A version-4 notebook is plain JSON, read here as such: importing nbformat is slow
    # (jsonschema's format checkers build their grammars at import), a good part of
    # the Part-4 notebook's setup cell. Anything else, an older version or cells not shaped
    # as version 4 says, is nbformat's to convert or to reject with its own message.
    with open(path, encoding="utf-8") as file:
        text = file.read()
    try:
        notebook = json.loads(text)
        if notebook.get("nbformat") == 4:
            return [_cell_of_version_4(cell) for cell in notebook["cells"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    import nbformat

    return nbformat.reads(text, as_version=4).cells


def _cell_of_version_4(cell):
    # A cell's source is one string or a list of lines (TypeError otherwise).
    source = cell["source"]
    return {"cell_type": str(cell["cell_type"]), "metadata": dict(cell.get("metadata", {})),
            "source": source if isinstance(source, str) else "".join(source)}


def learner_cells(cells, grade_id):
    """(the learner's code cells' sources, index of the cell ``grade_id`` among them or -1)."""
    sources, index = [], -1
    for cell in cells:
        if is_learner_code_cell(cell):
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
                index = len(sources)
            sources.append(cell.get("source", ""))
    return sources, index


def cell_source(path, grade_id):
    """The source text of the code cell whose nbgrader ``grade_id`` is ``grade_id``."""
    for cell in notebook_cells(path):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            if cell.get("cell_type") != "code":
                raise ValueError(f"The cell '{grade_id}' in {path} is not a code cell.")
            return cell["source"]
    raise LookupError(
        f"{path} has no cell with grade_id '{grade_id}'. Was the cell deleted? Copy it "
        "back from a fresh copy of the assignment."
    )


def function_from_notebook(path, grade_id, name, namespace=None):
    """The learner's function ``name`` from the saved notebook at ``path``.

    The cell ``grade_id`` runs whole, after the definitions (imports, helper functions,
    constants) of the notebook's other code cells, so a helper the learner wrote in
    another cell works here too.

    Parameters
    ----------
    path : str or Path, the ``.ipynb`` file
    grade_id : str, the nbgrader grade_id of the code cell
    name : str, e.g. ``'d_loss_by_d_model'``
    namespace : dict, optional
        Globals for the code; by default ``learner_namespace()`` (``np``,
        ``forward_pass``, ...), as in the notebook after its setup cell.

    Raises
    ------
    LookupError
        If the notebook has no cell ``grade_id``, or the code does not define ``name``;
        the message says why and what to do.
    """
    sources, index = learner_cells(notebook_cells(path), grade_id)
    if index < 0:
        raise LookupError(
            f"{path} has no cell with grade_id '{grade_id}'. Was the cell deleted? Copy it "
            "back from a fresh copy of the assignment.")
    namespace = learner_namespace() if namespace is None else namespace
    failure = define_function(sources, index, name, namespace, filename=Path(path).name + " cell")
    if failure:
        raise LookupError(f"In {Path(path).name}: {failure}.")
    return namespace[name]


def gradient_from_notebook(path="backprop.ipynb", grade_id="d_loss_by_d_model", name="d_loss_by_d_model"):
    """The learner's gradient from the saved first notebook, for the Part-4 notebook.

    Like ``function_from_notebook``, but a notebook that cannot give the function (not
    saved yet, the cell deleted, an error in it) does not stop the setup cell: it prints
    why and returns a stand-in that raises that message whenever it is called, so every
    later cell says what to fix instead of "name is not defined".
    """
    try:
        return function_from_notebook(path, grade_id, name)
    except (LookupError, OSError, ValueError) as error:
        reason = (f"Your {name} could not be taken from {path}: {error} Fix it there, save "
                  "that notebook and run the setup cell here again.")
    print(reason)

    def stand_in(*args, **kwargs):
        raise AssertionError(reason)

    stand_in.__name__ = name
    return stand_in
