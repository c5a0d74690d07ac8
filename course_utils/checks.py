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

from .data import load_data
from .gradient_check import (
    GradientCheckError,
    central_difference,
    check_gradient,
    check_gradient_structure,
)
from .learner_errors import LearnerCodeError, hint_for_other_versions
from .network import N_CLASSES, cross_entropy, forward_pass, initial_model, log_softmax, logistic
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
    line = error.line if isinstance(error, LearnerCodeError) else learner_line(error, of="your code")
    return f" ({line})" if line else ""


def learner_code(function, *args, name="d_loss_by_d_model"):
    """Call ``function(*args)`` quietly and turn its exceptions into learner messages.

    ``function`` may be a proxy that runs the learner's function in another process and
    raises ``LearnerCodeError`` when it failed there; the message is the same as for the
    same exception raised here.

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
    except AssertionError:
        raise
    except Exception as error:  # any mistake in learner code, here or in another process
        remote = isinstance(error, LearnerCodeError)
        type_name = error.type_name if remote else type(error).__name__
        message = error.message if remote else str(error)
        raise AssertionError(_learner_error_message(name, type_name, message, _where(error))) from None


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
# A numerical gradient fast enough to compare every element


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
    hid_output = logistic(hid_input)                     # (n_hid, m)
    class_input = hid_to_class @ hid_output              # (10, m)

    def hid_to_class_losses(offset):
        # hid_to_class[k, j] + offset adds offset * hid_output[j] to class_input[k]: (10, n_hid, 10, m)
        moved = (class_input[None, None]
                 + offset * np.eye(N_CLASSES)[:, None, :, None] * hid_output[None, :, None, :])
        decay = wd_coefficient / 2 * ((hid_to_class + offset) ** 2 - hid_to_class ** 2)
        return cross_entropy(log_softmax(moved), target) + decay          # (10, n_hid)

    def input_to_hid_losses(unit, offset):
        # input_to_hid[unit, j] + offset changes the unit's output: (256, 10, m)
        change = logistic(hid_input[unit][None, :] + offset * inputs) - hid_output[unit][None, :]
        moved = class_input[None] + hid_to_class[:, unit][None, :, None] * change[:, None, :]
        decay = wd_coefficient / 2 * ((input_to_hid[unit] + offset) ** 2 - input_to_hid[unit] ** 2)
        return cross_entropy(log_softmax(moved), target) + decay          # (256,)

    d_input_to_hid = np.array([central_difference(lambda offset: input_to_hid_losses(unit, offset))
                               for unit in range(input_to_hid.shape[0])])
    return {"input_to_hid": d_input_to_hid, "hid_to_class": central_difference(hid_to_class_losses)}


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


# The diagnosis models each layer of the learner's answer as
#     answer = alpha * (cross-entropy part) + c * (the layer's weights)
# and fits alpha and c on probes with two batch sizes (a factor m is not a constant) and
# three weight decays, one of them 0 (c should be wd_coefficient, nothing more).
DIAGNOSIS_BATCHES = (slice(1, 6), slice(6, 14))       # 5 and 8 cases of the training set
DIAGNOSIS_WD_COEFFICIENTS = (0.0, 0.1, 0.03)
FIT_RTOL = 1e-6          # residual of a fit, relative to the answer: it explains the answer
COEFFICIENT_RTOL = 1e-4  # two fitted coefficients that agree to this are the same number
COEFFICIENT_ATOL = 1e-7
UNUSUAL = "its values are wrong, in a way that is not one of the usual mistakes"
VARIANT_TEXT = {
    "transposed": "it is the transpose of the correct gradient (with 10 hidden units the shape is "
                  "right by accident): check the order of the factors, the result has one row "
                  "per output class and one column per hidden unit",
    "no logistic derivative": "the derivative of the logistic function is missing: multiply the "
                              "error that reaches the hidden units by hid_output * (1 - hid_output)",
    "logistic derivative twice": "the derivative of the logistic function is applied twice: "
                                 "multiply by hid_output * (1 - hid_output) once",
}


def _cross_entropy_parts(model, data):
    """The correct cross-entropy part of each layer's gradient, and its usual wrong versions.

    The loss is the mean over the cases, so the batch's gradient is the mean of one-case
    gradients. For one case each row of input_to_hid's gradient carries that hidden unit's
    logistic slope h (1 - h) as a factor: dividing it out (or applying it again) gives the
    gradient without (or with twice) the logistic derivative.

    Returns
    -------
    dict {part: {variant: array shaped like model[part]}}, variant '' being the correct one
    """
    m = data["inputs"].shape[1]
    parts = {"hid_to_class": {"": 0}, "input_to_hid": {"": 0, "no logistic derivative": 0,
                                                        "logistic derivative twice": 0}}
    for case in range(m):
        one_case = _cases(data, slice(case, case + 1))
        gradient = numerical_gradient(model, one_case, 0.0)
        hid_output = forward_pass(model, one_case)[1]                     # (n_hid, 1)
        slope = hid_output * (1 - hid_output)
        parts["hid_to_class"][""] += gradient["hid_to_class"] / m
        parts["input_to_hid"][""] += gradient["input_to_hid"] / m
        parts["input_to_hid"]["no logistic derivative"] += gradient["input_to_hid"] / slope / m
        parts["input_to_hid"]["logistic derivative twice"] += gradient["input_to_hid"] * slope / m
    correct = parts["hid_to_class"][""]
    if correct.shape[0] == correct.shape[1]:
        parts["hid_to_class"]["transposed"] = correct.T
    return parts


def _fit(answer, cross_entropy_part, weights):
    """(alpha, c) with answer = alpha * cross_entropy_part + c * weights, or None if no such pair."""
    basis = np.stack([cross_entropy_part.ravel(), weights.ravel()], axis=1)
    coefficients = np.linalg.lstsq(basis, answer.ravel(), rcond=None)[0]
    residual = np.linalg.norm(answer.ravel() - basis @ coefficients)
    return tuple(coefficients) if residual <= FIT_RTOL * np.linalg.norm(answer) else None


def _times_power_of_m(values):
    """(k, p) with values[m] = k * m**p for every batch size m, p in 0, 1, -1; or None.

    k is rounded when it is a whole number (1, 2, -1), so that messages can name it.
    """
    for p in (0, 1, -1):
        ks = [value / m ** p for m, value in values.items()]
        if np.allclose(ks, ks[0], rtol=COEFFICIENT_RTOL, atol=COEFFICIENT_ATOL):
            k = float(ks[0])
            whole = abs(k - round(k)) <= COEFFICIENT_ATOL + COEFFICIENT_RTOL * abs(k)
            return (round(k) if whole else k), p
    return None


def _m_times(how, batch_size):
    """'m times too large (1000 in the test above)': the factor, and its value in the failing check."""
    return f"m times too {how} ({batch_size} in the test above)" if batch_size else f"m times too {how}"


def _describe(variant, alpha, beta, gamma, batch_size):
    """One sentence for one layer from the fitted forms, or None when they are the right ones.

    variant : '' or a key of VARIANT_TEXT; alpha, beta, gamma : (k, p) from
    _times_power_of_m (k * m**p), or None when they have no such form. The answer was
    alpha * (cross-entropy part) + (beta * wd_coefficient + gamma) * weights.
    """
    clauses = [VARIANT_TEXT[variant]] if variant else []
    if alpha is None:
        clauses.append("the cross-entropy part is not a fixed multiple of the right one")
    elif alpha[0] == 0:
        clauses.append("the cross-entropy part is missing: there is only the weight decay term")
    elif alpha != (1, 0):
        k, p = alpha
        if k < 0:
            clauses.append("its sign is flipped (it points uphill): the output error is "
                           "class_prob minus target, not target minus class_prob")
        if abs(k) != 1:
            clauses.append(f"the cross-entropy part is {abs(k):.3g} times what it should be")
        if p == 1:
            clauses.append(f"the cross-entropy part is {_m_times('large', batch_size)}: it is "
                           "the sum over the cases, not the average. Divide by the number of cases m")
        if p == -1:
            clauses.append(f"the cross-entropy part is {_m_times('small', batch_size)}: you "
                           "divide by the number of cases m twice")
    if beta is None:
        clauses.append("the weight decay term is not a fixed multiple of wd_coefficient times the weights")
    elif beta[0] == 0:
        clauses.append("the weight decay term is missing: add wd_coefficient times the weights")
    elif beta != (1, 0):
        k, p = beta
        how = {1: [], 2: ["added twice"], -1: ["subtracted instead of added"],
               -2: ["subtracted twice"]}.get(k, [f"{k:.3g} times what it should be"])
        how += {1: ["multiplied by the number of cases m"], 0: [],
                -1: ["divided by the number of cases m (only the cross-entropy part is averaged)"]}[p]
        clauses.append("the weight decay term is " + " and ".join(how) +
                       ": it is wd_coefficient times the weights")
    if gamma is None:
        clauses.append("it contains a multiple of the weights that does not depend on wd_coefficient "
                       "in the usual way")
    elif gamma[0] != 0:
        k, p = gamma
        times = "the weights" if k == 1 else f"{k:.3g} times the weights"
        times += {1: " times m", 0: "", -1: " divided by m"}[p]
        clauses.append(f"it contains {times} even when wd_coefficient is 0: the weight decay "
                       "term is wd_coefficient times the weights, nothing else")
    return "; ".join(clauses) or None


def _layer_mistake(probes, weights, batch_size):
    """Name the mistakes in one layer, or None when it looks right.

    probes : list of (m, wd_coefficient, answer, parts), answer the learner's gradient of
        this layer and parts this layer's dict {variant: array} from ``_cross_entropy_parts``
    weights : the layer's weights, shaped like answer
    batch_size : int or None, the number of cases of the failing check, for the message
    """
    if not any(np.any(answer) for _, _, answer, _ in probes):
        return "it is all zeros: it looks not implemented yet"
    for variant in probes[0][3]:
        # A transposed gradient usually has its weight decay term transposed too.
        basis = weights.T if variant == "transposed" else weights
        fits = [_fit(answer, parts[variant], basis) for _, _, answer, parts in probes]
        if all(fits):
            break
    else:
        return UNUSUAL
    # alpha must be one number per batch size; c = beta * wd_coefficient + gamma.
    alphas, betas, gammas = {}, {}, {}
    for m in {m for m, *_ in probes}:
        rows = [(wd, alpha, c) for (m_probe, wd, _, _), (alpha, c) in zip(probes, fits) if m_probe == m]
        wds, alpha, c = (np.array(column) for column in zip(*rows))
        if not np.allclose(alpha, alpha[0], rtol=COEFFICIENT_RTOL, atol=COEFFICIENT_ATOL):
            return UNUSUAL
        betas[m], gammas[m] = np.linalg.lstsq(np.stack([wds, np.ones_like(wds)], axis=1), c,
                                              rcond=None)[0]
        if not np.allclose(betas[m] * wds + gammas[m], c, rtol=COEFFICIENT_RTOL, atol=COEFFICIENT_ATOL):
            return UNUSUAL
        alphas[m] = alpha[0]
    return _describe(variant, _times_power_of_m(alphas), _times_power_of_m(betas),
                     _times_power_of_m(gammas), batch_size)


def diagnose_gradient(gradient_fn, datas=None, batch_size=None):
    """Name the usual mistakes in ``gradient_fn``, layer by layer.

    Six probes on a model with 10 hidden units: batches of 5 and 8 cases, each with weight
    decay 0, 0.1 and 0.03. ``batch_size``, the number of cases of the check that failed,
    only goes into the messages ("m times too large (1000 in the test above)").

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
    probes = {"hid_to_class": [], "input_to_hid": []}
    for columns in DIAGNOSIS_BATCHES:
        data = _cases(datas["train"], columns)
        parts = _cross_entropy_parts(model, data)
        for wd_coefficient in DIAGNOSIS_WD_COEFFICIENTS:
            answer = _probe(gradient_fn, model, data, wd_coefficient)
            for part in probes:
                probes[part].append((data["inputs"].shape[1], wd_coefficient, answer[part], parts[part]))
    return {part: _layer_mistake(probes[part], model[part], batch_size) for part in probes}


def _diagnosis_text(gradient_fn, datas, batch_size=None):
    __tracebackhide__ = True
    found = diagnose_gradient(gradient_fn, datas, batch_size)
    lines = [f"- {PART_NAMES[part]}: {message}." for part, message in found.items() if message]
    if not lines:
        return ""
    return "\nWhat looks wrong, layer by layer:\n" + "\n".join(lines)


def _fail_with_diagnosis(problem, gradient_fn, datas, batch_size):
    """Raise AssertionError with ``problem`` and the diagnosis; batch_size is the failing check's m."""
    __tracebackhide__ = True
    try:
        diagnosis = _diagnosis_text(gradient_fn, datas, batch_size)
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
        _fail_with_diagnosis(f"With {what}: {error}", gradient_fn, datas, data["inputs"].shape[1])


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
    _fail_with_diagnosis(problem, gradient_fn, datas, REFERENCE_RUN["mini_batch_size"])


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
    """The learner set ``name`` to a number (a whole number if ``whole``) from ``low`` to ``high``.

    Returns nothing (a number as a test cell's last value would be nbgrader's partial credit).
    """
    __tracebackhide__ = True
    value = _typed_number(answer, name)
    if whole and value != int(value):
        raise AssertionError(f"{name} must be a whole number; it is {answer!r}.")
    if not low <= value <= high:
        raise AssertionError(f"{name} must be between {low:g} and {high:g}; it is {answer!r}.")


def check_choice(answer, name, choices):
    """The learner set ``name`` to one of ``choices`` (whether it is the right one is graded
    when the notebook is graded). Returns nothing, like every check a test cell ends with."""
    __tracebackhide__ = True
    _choice(answer, name, choices)


def _choice(answer, name, choices):
    __tracebackhide__ = True
    value = _typed_number(answer, name)
    matches = [choice for choice in choices if np.isclose(value, choice, rtol=1e-9, atol=0)]
    if not matches:
        raise AssertionError(f"{name} must be one of {list(choices)}; it is {answer!r}.")
    return matches[0]
