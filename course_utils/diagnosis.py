"""The diagnosis of a wrong gradient: which usual mistakes it looks like, named and in words.

A failed check says in words what looks wrong; it also names each mistake with a member of
:class:`Mistake`, so that the grader can keep them per learner and cell and an instructor
can count them over the class. The value of each member is its stable name (it is written
to the verdict files beside the autograded notebooks); ``label`` is what a report shows.
A check that fails raises :class:`CheckFailed`, an ``AssertionError`` that carries them.

:func:`diagnose_gradient` probes a gradient function and names the usual mistakes layer by
layer; the visible checks (``course_utils.checks``) and the grader's hidden tests both call
it, and the numerical gradient it compares with (:func:`numerical_gradient`).
"""

import dataclasses
import enum

import numpy as np

from .gradient_check import central_difference
from .network import N_CLASSES, cross_entropy, forward_pass, initial_model, log_softmax, logistic



class Mistake(enum.Enum):
    """One recognizable mistake; ``Mistake("sign_flipped").label == "sign flipped"``."""

    # The function as a whole
    NOT_IMPLEMENTED = "not_implemented"
    RAISED = "raised"
    NEVER_RETURNED = "never_returned"
    WRONG_KEYS_OR_SHAPE = "wrong_keys_or_shape"
    NOT_FINITE = "not_finite"
    NOT_DEFINED = "not_defined"
    PROCESS_FAILED = "process_failed"
    # The cross-entropy part of a layer's gradient
    SIGN_FLIPPED = "sign_flipped"
    TRANSPOSED = "transposed"
    MISSING_ONE_OVER_M = "missing_one_over_m"
    DIVIDED_BY_M_TWICE = "divided_by_m_twice"
    SCALED = "scaled"
    MISSING_CROSS_ENTROPY = "missing_cross_entropy"
    MISSING_LOGISTIC_DERIVATIVE = "missing_logistic_derivative"
    LOGISTIC_DERIVATIVE_TWICE = "logistic_derivative_twice"
    # The weight decay part
    MISSING_WEIGHT_DECAY = "missing_weight_decay"
    DOUBLED_WEIGHT_DECAY = "doubled_weight_decay"
    WRONG_WEIGHT_DECAY = "wrong_weight_decay"
    WEIGHT_DECAY_WITHOUT_COEFFICIENT = "weight_decay_without_coefficient"
    # Wrong, but not in a usual way
    UNUSUAL = "unusual"
    # How the gradient is computed
    FINITE_DIFFERENCES = "finite_differences"
    RIGHT_ONLY_ON_TESTED_INPUTS = "right_only_on_tested_inputs"
    # Answers given as values (learning rates, iterations, sizes, the reported loss)
    NOT_ANSWERED = "not_answered"
    WRONG_VALUE = "wrong_value"
    UNREADABLE_ANSWER = "unreadable_answer"

    @property
    def label(self):
        """The name in plain words, for reports: 'missing 1/m'."""
        return _LABELS.get(self, self.value.replace("_", " "))


_LABELS = {
    Mistake.MISSING_ONE_OVER_M: "missing 1/m (sum instead of mean)",
    Mistake.DIVIDED_BY_M_TWICE: "divided by m twice",
    Mistake.WRONG_KEYS_OR_SHAPE: "wrong keys or shape",
    Mistake.NOT_FINITE: "NaN or infinite values",
    Mistake.RAISED: "raised an exception",
    Mistake.NEVER_RETURNED: "never returned (time limit)",
    Mistake.SCALED: "scaled by a constant",
    Mistake.WEIGHT_DECAY_WITHOUT_COEFFICIENT: "weight decay even when wd_coefficient is 0",
    Mistake.UNUSUAL: "wrong in an unusual way",
    Mistake.FINITE_DIFFERENCES: "finite differences, not backpropagation",
    Mistake.RIGHT_ONLY_ON_TESTED_INPUTS: "right only on the tested inputs",
    Mistake.WRONG_VALUE: "wrong value",
    Mistake.NOT_DEFINED: "the function's cell does not define it (a syntax error, ...)",
    Mistake.PROCESS_FAILED: "crashed or misbehaved in the grader's process",
    Mistake.UNREADABLE_ANSWER: "answers could not be read from the notebook",
}


class CheckFailed(AssertionError):
    """A failed check: ``str()`` is the message for the learner, ``mistakes`` the tuple of
    :class:`Mistake` it recognized (for the grader's records)."""

    def __init__(self, message, mistakes=()):
        super().__init__(message)
        self.mistakes = tuple(mistakes)


# ---------------------------------------------------------------------------------------
# Probing inputs and comparing gradients

#: Element-wise tolerance when comparing a gradient with a numerical one or a transform of it.
GRADIENT_RTOL = 1e-4
GRADIENT_ATOL = 1e-8
PART_NAMES = {"input_to_hid": "input_to_hid (the first layer, W1)",
              "hid_to_class": "hid_to_class (the second layer, W2)"}


def close(answer, expected):
    """Whether two gradients (arrays) agree element by element, relative to the largest of ``expected``."""
    answer = np.asarray(answer, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if answer.shape != expected.shape:
        return False
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    return bool(np.allclose(answer, expected, rtol=GRADIENT_RTOL, atol=GRADIENT_ATOL * scale + 1e-15))


def cases(data, columns):
    """The cases ``columns`` (a slice) of ``data``: 'inputs' (256, m) and 'target' (10, m)."""
    return {"inputs": data["inputs"][:, columns], "target": data["target"][:, columns]}


def slightly_random_model(n_hid):
    """initial_model(n_hid) made less regular, so that no mistake can agree with it by accident."""
    model = initial_model(n_hid)
    rng = np.random.default_rng(1299721)
    return {part: weights + 0.1 * rng.standard_normal(weights.shape)
            for part, weights in model.items()}


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
# Naming the mistakes of a wrong gradient


@dataclasses.dataclass(frozen=True)
class Finding:
    """What looks wrong in one layer of a gradient: ``text`` in words for the learner,
    ``mistakes`` a tuple of :class:`Mistake`."""

    text: str
    mistakes: tuple


# The diagnosis models each layer of the learner's answer as
#     answer = alpha * (cross-entropy part) + c * (the layer's weights)
# and fits alpha and c on probes with two batch sizes (a factor m is not a constant) and
# three weight decays, one of them 0 (c should be wd_coefficient, nothing more).
DIAGNOSIS_BATCHES = (slice(1, 6), slice(6, 14))       # 5 and 8 cases of the training set
DIAGNOSIS_WD_COEFFICIENTS = (0.0, 0.1, 0.03)
FIT_RTOL = 1e-6          # residual of a fit, relative to the answer: it explains the answer
COEFFICIENT_RTOL = 1e-4  # two fitted coefficients that agree to this are the same number
COEFFICIENT_ATOL = 1e-7
UNUSUAL_TEXT = "its values are wrong, in a way that is not one of the usual mistakes"
#: The usual wrong versions of a layer's cross-entropy part: their mistake and its words.
VARIANT_MISTAKES = {"transposed": Mistake.TRANSPOSED,
                    "no logistic derivative": Mistake.MISSING_LOGISTIC_DERIVATIVE,
                    "logistic derivative twice": Mistake.LOGISTIC_DERIVATIVE_TWICE}
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
        one_case = cases(data, slice(case, case + 1))
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
    """The Finding for one layer from the fitted forms, or None when they are the right ones.

    variant : '' or a key of VARIANT_TEXT; alpha, beta, gamma : (k, p) from
    _times_power_of_m (k * m**p), or None when they have no such form. The answer was
    alpha * (cross-entropy part) + (beta * wd_coefficient + gamma) * weights.
    """
    clauses = []  # (words, mistake)
    if variant:
        clauses.append((VARIANT_TEXT[variant], VARIANT_MISTAKES[variant]))
    if alpha is None:
        clauses.append(("the cross-entropy part is not a fixed multiple of the right one", Mistake.UNUSUAL))
    elif alpha[0] == 0:
        clauses.append(("the cross-entropy part is missing: there is only the weight decay term",
                        Mistake.MISSING_CROSS_ENTROPY))
    elif alpha != (1, 0):
        k, p = alpha
        if k < 0:
            clauses.append(("its sign is flipped (it points uphill): the output error is "
                            "class_prob minus target, not target minus class_prob", Mistake.SIGN_FLIPPED))
        if abs(k) != 1:
            clauses.append((f"the cross-entropy part is {abs(k):.3g} times what it should be", Mistake.SCALED))
        if p == 1:
            clauses.append((f"the cross-entropy part is {_m_times('large', batch_size)}: it is "
                            "the sum over the cases, not the average. Divide by the number of cases m",
                            Mistake.MISSING_ONE_OVER_M))
        if p == -1:
            clauses.append((f"the cross-entropy part is {_m_times('small', batch_size)}: you "
                            "divide by the number of cases m twice", Mistake.DIVIDED_BY_M_TWICE))
    if beta is None:
        clauses.append(("the weight decay term is not a fixed multiple of wd_coefficient times the weights",
                        Mistake.WRONG_WEIGHT_DECAY))
    elif beta[0] == 0:
        clauses.append(("the weight decay term is missing: add wd_coefficient times the weights",
                        Mistake.MISSING_WEIGHT_DECAY))
    elif beta != (1, 0):
        k, p = beta
        how = {1: [], 2: ["added twice"], -1: ["subtracted instead of added"],
               -2: ["subtracted twice"]}.get(k, [f"{k:.3g} times what it should be"])
        how += {1: ["multiplied by the number of cases m"], 0: [],
                -1: ["divided by the number of cases m (only the cross-entropy part is averaged)"]}[p]
        mistake = Mistake.DOUBLED_WEIGHT_DECAY if beta == (2, 0) else Mistake.WRONG_WEIGHT_DECAY
        clauses.append(("the weight decay term is " + " and ".join(how) +
                        ": it is wd_coefficient times the weights", mistake))
    if gamma is None:
        clauses.append(("it contains a multiple of the weights that does not depend on wd_coefficient "
                        "in the usual way", Mistake.WRONG_WEIGHT_DECAY))
    elif gamma[0] != 0:
        k, p = gamma
        times = "the weights" if k == 1 else f"{k:.3g} times the weights"
        times += {1: " times m", 0: "", -1: " divided by m"}[p]
        clauses.append((f"it contains {times} even when wd_coefficient is 0: the weight decay "
                        "term is wd_coefficient times the weights, nothing else",
                        Mistake.WEIGHT_DECAY_WITHOUT_COEFFICIENT))
    if not clauses:
        return None
    return Finding("; ".join(words for words, _ in clauses),
                   tuple(dict.fromkeys(mistake for _, mistake in clauses)))


def _layer_finding(probes, weights, batch_size):
    """The Finding of mistakes in one layer, or None when it looks right.

    probes : list of (m, wd_coefficient, answer, parts), answer the learner's gradient of
        this layer and parts this layer's dict {variant: array} from ``_cross_entropy_parts``
    weights : the layer's weights, shaped like answer
    batch_size : int or None, the number of cases of the failing check, for the message
    """
    if not any(np.any(answer) for _, _, answer, _ in probes):
        return Finding("it is all zeros: it looks not implemented yet", (Mistake.NOT_IMPLEMENTED,))
    for variant in probes[0][3]:
        # A transposed gradient usually has its weight decay term transposed too.
        basis = weights.T if variant == "transposed" else weights
        fits = [_fit(answer, parts[variant], basis) for _, _, answer, parts in probes]
        if all(fits):
            break
    else:
        return Finding(UNUSUAL_TEXT, (Mistake.UNUSUAL,))
    # alpha must be one number per batch size; c = beta * wd_coefficient + gamma.
    alphas, betas, gammas = {}, {}, {}
    for m in {m for m, *_ in probes}:
        rows = [(wd, alpha, c) for (m_probe, wd, _, _), (alpha, c) in zip(probes, fits) if m_probe == m]
        wds, alpha, c = (np.array(column) for column in zip(*rows))
        if not np.allclose(alpha, alpha[0], rtol=COEFFICIENT_RTOL, atol=COEFFICIENT_ATOL):
            return Finding(UNUSUAL_TEXT, (Mistake.UNUSUAL,))
        betas[m], gammas[m] = np.linalg.lstsq(np.stack([wds, np.ones_like(wds)], axis=1), c,
                                              rcond=None)[0]
        if not np.allclose(betas[m] * wds + gammas[m], c, rtol=COEFFICIENT_RTOL, atol=COEFFICIENT_ATOL):
            return Finding(UNUSUAL_TEXT, (Mistake.UNUSUAL,))
        alphas[m] = alpha[0]
    return _describe(variant, _times_power_of_m(alphas), _times_power_of_m(betas),
                     _times_power_of_m(gammas), batch_size)


def diagnose_gradient(gradient_fn, train_data, batch_size=None, probe=None):
    """Name the usual mistakes in ``gradient_fn``, layer by layer.

    Six probes on a model with 10 hidden units: batches of 5 and 8 cases of ``train_data``
    (the training set: 'inputs' (256, m), 'target' (10, m)), each with weight decay 0, 0.1
    and 0.03. ``batch_size``, the number of cases of the check that failed, only goes into
    the words ("m times too large (1000 in the test above)").

    ``probe(gradient_fn, model, data, wd_coefficient)`` returns the gradient as a dict of
    float arrays shaped like the model, or raises :class:`CheckFailed` when the function cannot
    be probed at all (not implemented, raised, wrong keys or shapes, NaN); by default the
    function is called as it is.

    Returns
    -------
    dict
        ``{part: Finding or None}`` for 'hid_to_class' and 'input_to_hid'; None means the
        part looked right in every probe.
    """
    __tracebackhide__ = True
    probe = probe or (lambda function, *args: {part: np.asarray(value, dtype=np.float64)
                                               for part, value in function(*args).items()})
    model = slightly_random_model(10)
    probes = {"hid_to_class": [], "input_to_hid": []}
    for columns in DIAGNOSIS_BATCHES:
        data = cases(train_data, columns)
        parts = _cross_entropy_parts(model, data)
        for wd_coefficient in DIAGNOSIS_WD_COEFFICIENTS:
            answer = probe(gradient_fn, model, data, wd_coefficient)
            for part in probes:
                probes[part].append((data["inputs"].shape[1], wd_coefficient, answer[part], parts[part]))
    return {part: _layer_finding(probes[part], model[part], batch_size) for part in probes}


def diagnosis_text(findings):
    """The findings of :func:`diagnose_gradient` in words for the learner ('' when none)."""
    lines = [f"- {PART_NAMES[part]}: {finding.text}." for part, finding in findings.items() if finding]
    if not lines:
        return ""
    return "\nWhat looks wrong, layer by layer:\n" + "\n".join(lines)


def mistakes_of(findings):
    """The mistakes of :func:`diagnose_gradient`'s findings, each once, in the order found."""
    return tuple(dict.fromkeys(m for finding in findings.values() if finding for m in finding.mistakes))
