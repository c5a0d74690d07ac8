"""The checks that the assignment notebooks' test cells run.

Each ``check_*`` function passes silently or raises ``AssertionError`` with a message for
the learner: what failed and, for a wrong gradient, which usual mistake it looks like
(``diagnose_gradient``), layer by layer, in plain words. The reference values live here,
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
from scipy.special import expit, logsumexp

from .data import load_data
from .gradient_check import (
    STENCIL_DISTANCES,
    STENCIL_WEIGHTS,
    STEP,
    GradientCheckError,
    check_gradient,
    check_gradient_structure,
)
from .network import N_CLASSES, forward_pass, initial_model
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
# Element-wise tolerance when comparing a gradient with a numerical one or a transform of it.
GRADIENT_RTOL = 1e-4
GRADIENT_ATOL = 1e-8

PART_NAMES = {"input_to_hid": "input_to_hid (the first layer, W1)",
              "hid_to_class": "hid_to_class (the second layer, W2)"}

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
    line = learner_line(error, of="your code")
    return f" ({line})" if line else ""


class LearnerCodeError(Exception):
    """The learner's function raised ``type_name: message`` in another process.

    The grader calls the learner's code in a separate process and gets its errors back as
    plain data; ``line`` is the learner's line as text ('line N of your code: ...'), or ''.
    ``learner_code`` words it like an error raised here.
    """

    def __init__(self, type_name, message, line=""):
        super().__init__(message)
        self.type_name, self.message, self.line = type_name, message, line


def learner_code(function, *args, name="d_loss_by_d_model"):
    """Call ``function(*args)`` quietly and turn its exceptions into learner messages.

    Raises
    ------
    AssertionError
        If the function is not implemented yet, raised an exception, or was stopped
        because it did not finish in time.
    """
    __tracebackhide__ = True
    if not callable(function):
        raise AssertionError(f"{name} must be a function; it is a {type(function).__name__}. "
                             f"Run the cell that defines {name}.")
    if function in _never_returned:
        raise AssertionError(f"{name} did not finish in an earlier test (it was stopped after the "
                             "time limit), so it is not tried again. Look for a loop that never ends.")
    try:
        with _no_stderr():
            return function(*args)
    except KeyboardInterrupt:
        if _grading():
            _never_returned.add(function)
        raise
    except NotImplementedError:
        raise AssertionError(
            f"{name} is not implemented yet: replace the line 'raise NotImplementedError(...)' "
            "with your code and run its cell again."
        ) from None
    except AssertionError:
        raise
    except LearnerCodeError as error:
        if error.type_name == "NotImplementedError":
            raise AssertionError(
                f"{name} is not implemented yet: replace the line 'raise NotImplementedError(...)' "
                "with your code and run its cell again.") from None
        where = f" ({error.line})" if error.line else ""
        raise AssertionError(f"{name} raised {error.type_name}: {error.message}{where}. Fix the error "
                             "and run its cell again.") from None
    except Exception as error:  # any mistake in learner code
        raise AssertionError(
            f"{name} raised {type(error).__name__}: {error}{_where(error)}. Fix the error and "
            "run its cell again."
        ) from None


# ---------------------------------------------------------------------------------------
# A numerical gradient fast enough to compare every element


def _cross_entropy(class_input, target):
    """Mean cross-entropy of softmax(class_input) over the last axis (cases).

    class_input : (..., 10, m) array; target : (10, m) array. Returns an array of shape (...).
    """
    log_class_prob = class_input - logsumexp(class_input, axis=-2, keepdims=True)
    return -np.sum(log_class_prob * target, axis=(-2, -1)) / target.shape[1]


def numerical_gradient(model, data, wd_coefficient):
    """Every element of the gradient by the tester's 8-point finite difference (step 1e-2).

    The same numbers as ``finite_difference_gradient`` (up to rounding), but each stencil
    point moves all elements of one row at once, which keeps it fast for small data.

    Parameters
    ----------
    model : dict with 'input_to_hid' (n_hid, 256) and 'hid_to_class' (10, n_hid)
    data : dict with 'inputs' (256, m) and 'target' (10, m); keep m small (memory grows as
        n_hid * 256 * 10 * m)
    wd_coefficient : float

    Returns
    -------
    dict shaped like ``model``
    """
    input_to_hid, hid_to_class = model["input_to_hid"], model["hid_to_class"]
    inputs, target = data["inputs"], data["target"]
    hid_input = input_to_hid @ inputs                    # (n_hid, m)
    hid_output = expit(hid_input)                        # (n_hid, m)
    class_input = hid_to_class @ hid_output              # (10, m)
    n_hid = input_to_hid.shape[0]
    d_input_to_hid = np.zeros_like(input_to_hid)
    d_hid_to_class = np.zeros_like(hid_to_class)
    for distance, weight in zip(STENCIL_DISTANCES, STENCIL_WEIGHTS):
        step = distance * STEP
        # hid_to_class[k, j] + step adds step * hid_output[j] to class_input[k]: (10, n_hid, 10, m)
        moved = (class_input[None, None]
                 + step * np.eye(N_CLASSES)[:, None, :, None] * hid_output[None, :, None, :])
        decay = wd_coefficient / 2 * ((hid_to_class + step) ** 2 - hid_to_class ** 2)
        d_hid_to_class += weight * (_cross_entropy(moved, target) + decay)
        # input_to_hid[i, j] + step changes hidden unit i's output: (n_hid, 256, 10, m)
        for unit in range(n_hid):
            new_output = expit(hid_input[unit][None, :] + step * inputs)          # (256, m)
            change = new_output - hid_output[unit][None, :]                       # (256, m)
            moved = class_input[None] + hid_to_class[:, unit][None, :, None] * change[:, None, :]
            decay = wd_coefficient / 2 * ((input_to_hid[unit] + step) ** 2 - input_to_hid[unit] ** 2)
            d_input_to_hid[unit] += weight * (_cross_entropy(moved, target) + decay)
    return {"input_to_hid": d_input_to_hid / STEP, "hid_to_class": d_hid_to_class / STEP}


# ---------------------------------------------------------------------------------------
# Diagnosis of the usual mistakes


def _close(answer, expected):
    answer = np.asarray(answer, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if answer.shape != expected.shape:
        return False
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    return bool(np.allclose(answer, expected, rtol=GRADIENT_RTOL, atol=GRADIENT_ATOL * scale + 1e-15))


def _cases(data, columns):
    return {"inputs": data["inputs"][:, columns], "target": data["target"][:, columns]}


def _slightly_random_model(n_hid):
    """initial_model(n_hid) made less regular, so that no mistake can agree with it by accident."""
    model = initial_model(n_hid)
    rng = np.random.default_rng(1299721)
    return {part: weights + 0.1 * rng.standard_normal(weights.shape)
            for part, weights in model.items()}


def _probe(gradient_fn, model, data, wd_coefficient):
    """The learner's gradient, converted to float arrays; raises AssertionError when unusable."""
    __tracebackhide__ = True
    gradient = learner_code(gradient_fn, model, data, wd_coefficient)
    try:
        check_gradient_structure(gradient, model)
    except GradientCheckError as error:
        raise AssertionError(_structure_message(error)) from None
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


def _layer_mistake(part, answer, correct, model, data, wd_coefficient, hid_output):
    """Name the mistake in one layer of one probe, or None when this probe looks right."""
    m = data["inputs"].shape[1]
    weights = model[part]
    if _close(answer, correct):
        return None
    if not np.any(answer):
        return "it is all zeros: it looks not implemented yet"
    if part == "hid_to_class" and answer.shape[0] == answer.shape[1] and _close(answer, correct.T):
        return ("it is the transpose of the correct gradient (with 10 hidden units the shape is "
                "right by accident): check the order of the factors, the result has one row "
                "per output class and one column per hidden unit")
    if _close(answer, -correct):
        return ("its sign is flipped: it points uphill. The output error is class_prob minus "
                "target, not target minus class_prob")
    if m > 1 and _close(answer, correct * m):
        return (f"it is {m} times too large, the batch size: it is the sum over the cases, "
                "not the average. Divide by the number of cases m")
    if m > 1 and _close(answer, correct / m):
        return (f"it is {m} times too small, the batch size: you divide by the number of "
                "cases m twice")
    if wd_coefficient:
        without = correct - wd_coefficient * weights
        if _close(answer, without):
            return "the weight decay term is missing: add wd_coefficient times the weights"
        if _close(answer, correct + wd_coefficient * weights):
            return ("the weight decay term is there twice: add wd_coefficient times the "
                    "weights once")
        if _close(answer, without + wd_coefficient * weights / m):
            return ("the weight decay term is divided by the number of cases: only the "
                    "cross-entropy part is averaged over the cases")
        if _close(answer, without - wd_coefficient * weights):
            return "the weight decay term has the wrong sign: add it, do not subtract it"
    if part == "input_to_hid" and m == 1:
        slope = hid_output[:, 0] * (1 - hid_output[:, 0])
        if _close(answer, correct / slope[:, None]):
            return ("the derivative of the logistic function is missing: multiply the error "
                    "that reaches the hidden units by hid_output * (1 - hid_output)")
        if _close(answer, correct * slope[:, None]):
            return ("the derivative of the logistic function is applied twice: multiply by "
                    "hid_output * (1 - hid_output) once")
    return "its values are wrong, in a way that is not one of the usual mistakes"


def diagnose_gradient(gradient_fn, datas=None):
    """Name the usual mistakes in ``gradient_fn``, layer by layer.

    Three probes on a model with 10 hidden units: one case without weight decay (sign,
    transposition, the logistic derivative), five cases (the 1/m average) and five cases
    with weight decay.

    Returns
    -------
    dict
        ``{part: message or None}`` for 'hid_to_class' and 'input_to_hid'; None means the
        part looked right in every probe.

    Raises
    ------
    AssertionError
        When the function cannot be probed at all (not implemented, raised, wrong
        keys or shapes, NaN); the message says so.
    """
    __tracebackhide__ = True
    datas = load_data() if datas is None else datas
    model = _slightly_random_model(10)
    training = datas["train"]
    probes = [(_cases(training, slice(0, 1)), 0.0),
              (_cases(training, slice(1, 6)), 0.0),
              (_cases(training, slice(6, 11)), 0.1)]
    found = {"hid_to_class": None, "input_to_hid": None}
    for data, wd_coefficient in probes:
        answer = _probe(gradient_fn, model, data, wd_coefficient)
        correct = numerical_gradient(model, data, wd_coefficient)
        hid_output = forward_pass(model, data)[1]
        for part in found:
            if found[part] is None:
                found[part] = _layer_mistake(part, answer[part], correct[part], model, data,
                                             wd_coefficient, hid_output)
    return found


def _diagnosis_text(gradient_fn, datas):
    __tracebackhide__ = True
    found = diagnose_gradient(gradient_fn, datas)
    lines = [f"- {PART_NAMES[part]}: {message}." for part, message in found.items() if message]
    if not lines:
        return ""
    return "\nWhat looks wrong, layer by layer:\n" + "\n".join(lines)


def _fail_with_diagnosis(problem, gradient_fn, datas):
    __tracebackhide__ = True
    try:
        diagnosis = _diagnosis_text(gradient_fn, datas)
    except AssertionError as error:
        diagnosis = f"\n{error}"
    raise AssertionError(f"{problem}{diagnosis}")


def _check_against_tester(gradient_fn, model, data, wd_coefficient, datas, what):
    """Run the gradient tester; on failure add what was tested and the diagnosis."""
    __tracebackhide__ = True
    _probe(gradient_fn, model, data, wd_coefficient)
    try:
        with _no_stderr():
            check_gradient(model, data, wd_coefficient, gradient_fn)
    except GradientCheckError as error:
        _fail_with_diagnosis(f"With {what}: {error}", gradient_fn, datas)


# ---------------------------------------------------------------------------------------
# Exercise 1: the tiny network computed by hand

#: The names of the learner's answers, and their shapes (the tiny network's weights).
TINY_ANSWER_NAMES = {"hid_to_class": "tiny_d_hid_to_class", "input_to_hid": "tiny_d_input_to_hid"}
TINY_SHAPES = {"hid_to_class": (2, 1), "input_to_hid": (1, 2)}


def check_tiny_gradient_form(part, answer):
    """Exercise 1 c: the hand-computed gradient of one layer of the tiny network is numbers
    of the right shape (whether they are right is graded when the notebook is graded).

    Returns the answer as a float array.
    """
    __tracebackhide__ = True
    name, shape = TINY_ANSWER_NAMES[part], TINY_SHAPES[part]
    try:
        values = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} must be numbers in a nested list or an array, e.g. "
                             f"{np.zeros(shape).tolist()}; it is {answer!r}.") from None
    if values.shape != shape:
        hint = " It looks transposed." if values.shape == shape[::-1] else ""
        raise AssertionError(f"{name} must have shape {shape}, like the weights; it has "
                             f"shape {values.shape}.{hint} Write it as a nested list, one inner "
                             "list per row.")
    if not np.all(np.isfinite(values)):
        raise AssertionError(f"{name} contains NaN or infinity.")
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
    gradient = _probe(gradient_fn, model, _cases(datas["train"], slice(0, 5)), 0.0)
    if not any(np.any(part) for part in gradient.values()):
        raise AssertionError("d_loss_by_d_model returns only zeros: it is not implemented yet. "
                             "Compute the gradient with your formulas from Exercise 1.")


def check_gradient_on_training_set(gradient_fn, datas=None):
    """The gradient tester on the whole training set, 10 hidden units, no weight decay."""
    __tracebackhide__ = True
    datas = _datas(datas)
    _check_against_tester(gradient_fn, initial_model(10), datas["train"], 0.0, datas,
                          "10 hidden units on the whole training set, no weight decay")


def check_training_loss(gradient_fn, datas=None):
    """Training with the gradient, as a2(0, 10, 30, 0.01, 0, False, 10), gives the reference loss."""
    __tracebackhide__ = True
    datas = _datas(datas)
    _probe(gradient_fn, initial_model(REFERENCE_RUN["n_hid"]), _cases(datas["train"], slice(0, 5)), 0.0)
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
    _fail_with_diagnosis(problem, gradient_fn, datas)


def _typed_number(value, name):
    __tracebackhide__ = True
    if value is None or value is Ellipsis:
        raise AssertionError(f"Set {name} to a number.")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise AssertionError(f"{name} must be a number; it is the text {value!r}.") from None
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise AssertionError(f"{name} must be a number; it is a {type(value).__name__}.")
    return float(value)


def check_reported_training_loss(reported_training_loss):
    """The training loss the learner typed from the a2 report."""
    __tracebackhide__ = True
    value = _typed_number(reported_training_loss, "reported_training_loss")
    if abs(value - REFERENCE_TRAINING_LOSS) <= TYPED_NUMBER_TOLERANCE:
        return
    if abs(value - INITIAL_TRAINING_LOSS) <= TYPED_NUMBER_TOLERANCE:
        raise AssertionError("That is the loss of the untrained network: your gradient does not "
                             "change the weights yet. Fix d_loss_by_d_model, run a2 again and "
                             "report the training loss it prints.")
    raise AssertionError(f"{value!r} is not the training loss that a correct gradient gives. Make "
                         "sure the tests above pass, run a2(0, 10, 30, 0.01, 0, False, 10) again "
                         "and copy the loss on the training data with all its digits.")


def check_number(answer, name, low=-np.inf, high=np.inf, whole=False):
    """The learner set ``name`` to a number (a whole number if ``whole``) from ``low`` to ``high``."""
    __tracebackhide__ = True
    value = _typed_number(answer, name)
    if whole and value != int(value):
        raise AssertionError(f"{name} must be a whole number; it is {answer!r}.")
    if not low <= value <= high:
        raise AssertionError(f"{name} must be between {low:g} and {high:g}; it is {answer!r}.")
    return value


def check_choice(answer, name, choices):
    """The learner set ``name`` to one of ``choices`` (whether it is the right one is graded
    when the notebook is graded)."""
    __tracebackhide__ = True
    return _choice(answer, name, choices)


def _choice(answer, name, choices):
    __tracebackhide__ = True
    value = _typed_number(answer, name)
    matches = [choice for choice in choices if np.isclose(value, choice, rtol=1e-9, atol=0)]
    if not matches:
        raise AssertionError(f"{name} must be one of {list(choices)}; it is {answer!r}.")
    return matches[0]
