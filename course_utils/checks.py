"""The checks that the assignment notebooks' test cells run.

Each ``check_*`` function passes silently or raises ``CheckFailed`` (an ``AssertionError``)
with a message for the learner: what failed and, for a wrong gradient, which usual mistake
it looks like (``course_utils.diagnosis``), layer by layer, in plain words; the error also
names the mistakes (``.mistakes``), for the grader's records. The reference values live here,
not in the notebooks; ``tests/test_checks.py`` recomputes them by real training.

Learner code runs inside ``learner_code``: whatever it writes to stderr, and any warning
it raises, is swallowed, because nbgrader scores a test cell zero for any stderr output.
"""

import contextlib
import io
import os
import sys
import warnings
from numbers import Real

import numpy as np

from .data import load_data
from .diagnosis import CheckFailed, Mistake, cases, diagnose_gradient, diagnosis_text, mistakes_of
from .gradient_check import GradientCheckError, check_gradient, check_gradient_structure
from .learner_errors import LearnerCodeError, hint_for_other_versions
from .network import initial_model
from .notebook_code import learner_line
from .training import train

# a2(0, 10, 30, 0.01, 0, False, 10): the training loss the learner reports in Exercise 2.
REFERENCE_TRAINING_LOSS = 2.301906765216956
REFERENCE_RUN = dict(wd_coefficient=0, n_hid=10, n_iters=30, learning_rate=0.01,
                     momentum_multiplier=0, do_early_stopping=False, mini_batch_size=10)
# The loss of initial_model(10) on the training set: what a zero gradient leaves.
INITIAL_TRAINING_LOSS = 2.30264159691321

# Tolerance for a number the learner types from a printed report.
TYPED_NUMBER_TOLERANCE = 1e-6

# Functions that were interrupted (they never returned) while the notebook was graded;
# later checks fail at once instead of waiting for the time limit again.
_never_returned = set()


# ---------------------------------------------------------------------------------------
# Running learner code


@contextlib.contextmanager
def _no_stderr():
    """Discard everything written to stderr, by Python code or at the file-descriptor level."""
    sink = io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(np.errstate(all="ignore"))
        stack.enter_context(contextlib.redirect_stderr(sink))
        # Printing is the learner's business in their own cells, not in test output.
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        saved_fd = None
        try:
            sys.__stderr__.flush()
            saved_fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except (OSError, AttributeError, ValueError):
            saved_fd = None
        try:
            yield
        finally:
            if saved_fd is not None:
                os.dup2(saved_fd, 2)
                os.close(saved_fd)


def _grading():
    return os.environ.get("NBGRADER_EXECUTION") == "autograde"


def _where(error):
    """' (line N of your code: <text>)' for the deepest frame in the learner's code, or ''."""
    line = error.line if isinstance(error, LearnerCodeError) else learner_line(error, of="your code")
    return f" ({line})" if line else ""


def learner_code(function, *args, name="d_loss_by_d_model"):
    """Call ``function(*args)`` quietly and turn its exceptions into learner messages.

    ``function`` may be a proxy that runs the learner's function in another process and
    raises ``LearnerCodeError`` when it failed there; the message is the same as for the
    same exception raised here.

    Raises
    ------
    CheckFailed
        If the function is not implemented yet (NOT_IMPLEMENTED, NOT_DEFINED), raised an
        exception (RAISED), or was stopped because it did not finish in time (NEVER_RETURNED).
    """
    __tracebackhide__ = True
    if not callable(function):
        raise CheckFailed(f"{name} must be a function; it is a {type(function).__name__}. "
                          f"Run the cell that defines {name}.", [Mistake.NOT_DEFINED])
    if function in _never_returned:
        raise CheckFailed(f"{name} did not finish in an earlier test (it was stopped after the "
                          "time limit), so it is not tried again. Look for a loop that never ends.",
                          [Mistake.NEVER_RETURNED])
    try:
        with _no_stderr():
            return function(*args)
    except KeyboardInterrupt:
        if _grading():
            _never_returned.add(function)
        raise
    except AssertionError:
        raise
    except Exception as error:  # any mistake in learner code, here or in another process
        remote = isinstance(error, LearnerCodeError)
        type_name = error.type_name if remote else type(error).__name__
        message = error.message if remote else str(error)
        mistake = Mistake.NOT_IMPLEMENTED if type_name == "NotImplementedError" else Mistake.RAISED
        raise CheckFailed(_learner_error_message(name, type_name, message, _where(error)), [mistake]) from None


def _learner_error_message(name, type_name, message, where):
    """The message for an exception of type ``type_name`` with text ``message`` from ``name``."""
    if type_name == "NotImplementedError":
        return (f"{name} is not implemented yet: replace the line 'raise NotImplementedError(...)' "
                "with your code and run its cell again.")
    if type_name == "AssertionError":  # the learner's own assert, as it would be raised here
        return message
    return (f"{name} raised {type_name}: {message}{where}. Fix the error and run its cell "
            f"again.{hint_for_other_versions(type_name, message)}")


# ---------------------------------------------------------------------------------------
# Probing the learner's gradient, and failing with the diagnosis


def probe_gradient(gradient_fn, model, data, wd_coefficient):
    """The learner's gradient, converted to float arrays; raises CheckFailed when unusable."""
    __tracebackhide__ = True
    gradient = learner_code(gradient_fn, model, data, wd_coefficient)
    try:
        check_gradient_structure(gradient, model)
    except GradientCheckError as error:
        mistake = Mistake.NOT_FINITE if error.kind == "nonfinite" else Mistake.WRONG_KEYS_OR_SHAPE
        raise CheckFailed(_structure_message(error), [mistake]) from None
    return {part: np.asarray(gradient[part], dtype=np.float64) for part in model}


def _structure_message(error):
    if error.kind == "shape" and "transposed" in str(error):
        return (f"{error} Check the order of the factors in your product for "
                f"{error.part}: the result must have one row per "
                f"{'hidden unit' if error.part == 'input_to_hid' else 'output class'}.")
    if error.kind == "nonfinite":
        return (f"{error} NaN or infinity usually comes from computing exp or log of large "
                "numbers yourself: use forward_pass's outputs (class_prob, hid_output) instead.")
    return str(error)


def fail_with_diagnosis(problem, gradient_fn, datas, batch_size):
    """Raise CheckFailed with ``problem`` and the diagnosis (``course_utils.diagnosis``) in
    words and names; ``batch_size`` is the failing check's number of cases m."""
    __tracebackhide__ = True
    try:
        findings = diagnose_gradient(gradient_fn, datas["train"], batch_size, probe=probe_gradient)
    except CheckFailed as error:
        raise CheckFailed(f"{problem}\n{error}", error.mistakes or [Mistake.UNUSUAL]) from None
    raise CheckFailed(f"{problem}{diagnosis_text(findings)}", mistakes_of(findings) or [Mistake.UNUSUAL])


def compare_with_tester(gradient_fn, model, data, wd_coefficient, datas, what):
    """Run the gradient tester; on failure add what was tested and the diagnosis."""
    __tracebackhide__ = True
    probe_gradient(gradient_fn, model, data, wd_coefficient)
    try:
        with _no_stderr():
            check_gradient(model, data, wd_coefficient, gradient_fn)
    except GradientCheckError as error:
        fail_with_diagnosis(f"With {what}: {error}", gradient_fn, datas, data["inputs"].shape[1])


# ---------------------------------------------------------------------------------------
# Exercise 1: the tiny network computed by hand

#: The names of the learner's answers, and their shapes (the tiny network's weights).
TINY_ANSWER_NAMES = {"hid_to_class": "tiny_d_hid_to_class", "input_to_hid": "tiny_d_input_to_hid"}
TINY_SHAPES = {"hid_to_class": (2, 1), "input_to_hid": (1, 2)}


def check_tiny_gradient_form(part, answer):
    """Exercise 1 c: the hand-computed gradient of one layer of the tiny network is numbers
    of the right shape (whether they are right is graded when the notebook is graded).

    Returns nothing: a test cell whose last value is a number would score only that number
    of points in nbgrader (its partial credit).
    """
    __tracebackhide__ = True
    hand_computed_layer(part, answer)


def hand_computed_layer(part, answer):
    """The hand-computed gradient of one layer as a float array of its shape; raises
    AssertionError saying what is wrong with its form."""
    __tracebackhide__ = True
    name, shape = TINY_ANSWER_NAMES[part], TINY_SHAPES[part]
    try:
        values = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailed(f"{name} must be numbers in a nested list or an array, e.g. "
                          f"{np.zeros(shape).tolist()}; it is {answer!r}.", [Mistake.WRONG_VALUE]) from None
    if values.shape != shape:
        hint = " It looks transposed." if values.shape == shape[::-1] else ""
        raise CheckFailed(f"{name} must have shape {shape}, like the weights; it has "
                          f"shape {values.shape}.{hint} Write it as a nested list, one inner "
                          "list per row.", [Mistake.WRONG_KEYS_OR_SHAPE])
    if not np.all(np.isfinite(values)):
        raise CheckFailed(f"{name} contains NaN or infinity.", [Mistake.NOT_FINITE])
    return values


# ---------------------------------------------------------------------------------------
# Exercise 2: the gradient


def _datas(datas):
    return load_data() if datas is None else datas


def check_gradient_keys_and_shapes(gradient_fn, datas=None):
    """The gradient is a dict with the model's keys and shapes (7 hidden units, 5 cases)."""
    __tracebackhide__ = True
    datas = _datas(datas)
    model = initial_model(7)
    gradient = probe_gradient(gradient_fn, model, cases(datas["train"], slice(0, 5)), 0.0)
    if not any(np.any(part) for part in gradient.values()):
        raise CheckFailed("d_loss_by_d_model returns only zeros: it is not implemented yet. "
                          "Compute the gradient with your formulas from Exercise 1.", [Mistake.NOT_IMPLEMENTED])


def check_gradient_on_training_set(gradient_fn, datas=None):
    """The gradient tester on the whole training set, 10 hidden units, no weight decay."""
    __tracebackhide__ = True
    datas = _datas(datas)
    compare_with_tester(gradient_fn, initial_model(10), datas["train"], 0.0, datas,
                          "10 hidden units on the whole training set, no weight decay")


def check_training_loss(gradient_fn, datas=None):
    """Training with the gradient, as a2(0, 10, 30, 0.01, 0, False, 10), gives the reference loss."""
    __tracebackhide__ = True
    datas = _datas(datas)
    probe_gradient(gradient_fn, initial_model(REFERENCE_RUN["n_hid"]), cases(datas["train"], slice(0, 5)), 0.0)
    result = learner_code(
        lambda: train(gradient_fn, **REFERENCE_RUN, datas=datas, check_gradient=False))
    final = result.training_losses[-1]
    if abs(final - REFERENCE_TRAINING_LOSS) <= 1e-9 * REFERENCE_TRAINING_LOSS:
        return
    if abs(final - INITIAL_TRAINING_LOSS) < 1e-12:
        problem = ("After training with your gradient the training loss is still that of the "
                   f"untrained network ({final!r}): the gradient is zero.")
    else:
        problem = (f"After a2(0, 10, 30, 0.01, 0, False, 10) with your gradient the training "
                   f"loss is {final!r}, which is not the reference value.")
    fail_with_diagnosis(problem, gradient_fn, datas, REFERENCE_RUN["mini_batch_size"])


def typed_number(value, name):
    """``value`` (the learner's answer ``name``) as a float; CheckFailed unless it is a number."""
    __tracebackhide__ = True
    if value is None or value is Ellipsis:
        raise CheckFailed(f"Set {name} to a number.", [Mistake.NOT_ANSWERED])
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise CheckFailed(f"{name} must be a number; it is the text {value!r}.", [Mistake.WRONG_VALUE]) from None
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise CheckFailed(f"{name} must be a number; it is a {type(value).__name__}.", [Mistake.WRONG_VALUE])
    return float(value)


def check_reported_training_loss(reported_training_loss):
    """The training loss the learner typed from the a2 report."""
    __tracebackhide__ = True
    value = typed_number(reported_training_loss, "reported_training_loss")
    if abs(value - REFERENCE_TRAINING_LOSS) <= TYPED_NUMBER_TOLERANCE:
        return
    if abs(value - INITIAL_TRAINING_LOSS) <= TYPED_NUMBER_TOLERANCE:
        raise CheckFailed("That is the loss of the untrained network: your gradient does not "
                          "change the weights yet. Fix d_loss_by_d_model, run a2 again and "
                          "report the training loss it prints.", [Mistake.WRONG_VALUE])
    raise CheckFailed(f"{value!r} is not the training loss that a correct gradient gives. Make "
                      "sure the tests above pass, run a2(0, 10, 30, 0.01, 0, False, 10) again "
                      "and copy the loss on the training data with all its digits.", [Mistake.WRONG_VALUE])


def check_number(answer, name, low=-np.inf, high=np.inf, whole=False):
    """The learner set ``name`` to a number (a whole number if ``whole``) from ``low`` to ``high``.

    Returns nothing (a number as a test cell's last value would be nbgrader's partial credit).
    """
    __tracebackhide__ = True
    value = typed_number(answer, name)
    if whole and value != int(value):
        raise CheckFailed(f"{name} must be a whole number; it is {answer!r}.", [Mistake.WRONG_VALUE])
    if not low <= value <= high:
        raise CheckFailed(f"{name} must be between {low:g} and {high:g}; it is {answer!r}.", [Mistake.WRONG_VALUE])


def check_choice(answer, name, choices):
    """The learner set ``name`` to one of ``choices`` (whether it is the right one is graded
    when the notebook is graded). Returns nothing, like every check a test cell ends with."""
    __tracebackhide__ = True
    chosen_value(answer, name, choices)


def chosen_value(answer, name, choices):
    """The one of ``choices`` that ``answer`` (the learner's ``name``) is; CheckFailed otherwise."""
    __tracebackhide__ = True
    value = typed_number(answer, name)
    matches = [choice for choice in choices if np.isclose(value, choice, rtol=1e-9, atol=0)]
    if not matches:
        raise CheckFailed(f"{name} must be one of {list(choices)}; it is {answer!r}.", [Mistake.WRONG_VALUE])
    return matches[0]
