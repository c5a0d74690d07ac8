"""The network: 256 inputs -> n_hid logistic hidden units -> 10 softmax outputs.

Shapes used throughout (m is the number of cases in a data split):

- ``model['input_to_hid']``: (n_hid, 256), ``model['hid_to_class']``: (10, n_hid)
- ``data['inputs']``: (256, m), ``data['target']``: (10, m), one-hot, one column per case
- ``theta``: (266 * n_hid,), both weight matrices flattened in column-major order
"""

import numpy as np

N_INPUTS = 256
N_CLASSES = 10


def logistic(x, out=None):
    """Elementwise logistic function ``1 / (1 + exp(-x))``, computed exactly that way.

    The formula of the original notebook, evaluated in one buffer: ``-x``, ``exp``, ``+ 1``,
    reciprocal. For ``x < -709`` ``exp(-x)`` overflows to inf and the result is 0, as it
    should be; the overflow warning that ``np.exp`` would print is turned off here.

    Parameters
    ----------
    x : array_like of any shape
    out : float64 array of ``x``'s shape, optional
        Where to write the result; may be ``x`` itself (the training loop reuses one buffer).

    Returns
    -------
    array of ``x``'s shape (a float for a scalar ``x``)
    """
    x = np.asarray(x)
    if out is None:
        out = np.empty(x.shape, dtype=np.float64)
    np.negative(x, out=out)
    return logistic_of_negated(out, out=out)


def logistic_of_negated(negated_x, out=None):
    """``logistic(x)`` given ``-x``: ``1 / (1 + exp(negated_x))``, the same numbers.

    For the training loop, which gets ``-x`` directly from a product with the negated
    weights (negating is exact) and so saves a pass over the (n_hid, 2000) hidden layer.

    Parameters
    ----------
    negated_x : float64 array of any shape
    out : float64 array of the same shape, optional; may be ``negated_x`` itself

    Returns
    -------
    array of ``negated_x``'s shape (a float for a 0-d array)
    """
    with np.errstate(over="ignore", under="ignore"):
        out = np.exp(negated_x, out=out)
    out += 1
    # The same correctly rounded 1 / x as np.reciprocal, which NumPy does not vectorize
    # (twice as slow on the (n_hid, 2000) hidden layer of the training loop).
    np.divide(1.0, out, out=out)
    return out if out.ndim else float(out)


def log_sum_exp_over_rows(a):
    """Compute ``log(sum(exp(a), axis=-2))`` without overflow.

    Parameters
    ----------
    a : array of shape (K, m), or a stack (..., K, m) of such arrays

    Returns
    -------
    array of shape (m,), or (..., m)
    """
    maxs = np.max(a, axis=-2)
    return np.log(np.sum(np.exp(a - maxs[..., None, :]), axis=-2)) + maxs


def log_softmax(class_input):
    """Log of the softmax over each column: ``class_input - log_sum_exp_over_rows(class_input)``.

    Parameters
    ----------
    class_input : array of shape (10, m), or a stack (..., 10, m)

    Returns
    -------
    log_class_prob : array of ``class_input``'s shape
    """
    # Huge weights after a diverged run give inf - inf here; the result is
    # reported as a non-finite loss instead of a warning.
    with np.errstate(invalid="ignore", over="ignore"):
        return class_input - log_sum_exp_over_rows(class_input)[..., None, :]


def cross_entropy(log_class_prob, target):
    """Average cross-entropy over the cases: ``-(1/m) sum_cases sum_classes t * log y``.

    Parameters
    ----------
    log_class_prob : array of shape (10, m), or a stack (..., 10, m); ``log y``
    target : array of shape (10, m), one-hot columns ``t``

    Returns
    -------
    float, or an array of shape (...) for a stack
    """
    with np.errstate(invalid="ignore"):
        return cross_entropy_of_cases(np.sum(log_class_prob * target, axis=-2))


def cross_entropy_of_cases(target_log_prob):
    """``-(1/m) sum_cases log y`` of each case's ``log y`` of its target class.

    Parameters
    ----------
    target_log_prob : array of shape (m,), or (..., m) (see ``target_log_prob``)

    Returns
    -------
    float, or an array of shape (...)
    """
    with np.errstate(invalid="ignore"):
        total = -np.mean(target_log_prob, axis=-1)
    return float(total) if np.ndim(total) == 0 else total


def target_log_prob(class_input, target_class):
    """Each case's ``log y`` of its target class, from the class input alone.

    ``log_softmax(class_input)`` at the target class only: where the numbers are finite,
    exactly the column sums of ``log_softmax(class_input) * target`` that ``cross_entropy``
    averages, without the (10, m) products. For the training loop, which needs the loss of
    every training and validation case at every iteration.

    Parameters
    ----------
    class_input : array of shape (10, m)
    target_class : int array of shape (m,), each case's class (``argmax`` of its target column)

    Returns
    -------
    array of shape (m,)
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return class_input[target_class, np.arange(class_input.shape[1])] - log_sum_exp_over_rows(class_input)


def weight_decay_loss(theta, wd_coefficient):
    """The weight-decay term ``(wd_coefficient / 2) * ||theta||^2``.

    Parameters
    ----------
    theta : array of shape (266 * n_hid,), see ``model_to_theta``
    wd_coefficient : float

    Returns
    -------
    float
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.dot(theta, theta) / 2 * wd_coefficient)


def forward_pass(model, data):
    """Run the network on every case of ``data``.

    Returns
    -------
    hid_input : (n_hid, m) array, the hidden units' total input ``W1 @ X``
    hid_output : (n_hid, m) array, ``logistic(hid_input)``
    class_input : (10, m) array, ``W2 @ hid_output``
    log_class_prob : (10, m) array, log softmax of ``class_input``
    class_prob : (10, m) array, ``exp(log_class_prob)``; each column sums to 1
    """
    check_model(model)
    check_data(data)
    return forward_pass_of_arrays(model["input_to_hid"], model["hid_to_class"], data["inputs"])


def forward_pass_of_arrays(input_to_hid, hid_to_class, inputs):
    """``forward_pass`` of the weights ``input_to_hid`` (n_hid, 256) and ``hid_to_class``
    (10, n_hid) and the ``inputs`` (256, m), without checking them; the same five arrays."""
    hid_input = input_to_hid @ inputs
    hid_output = logistic(hid_input)
    class_input = hid_to_class @ hid_output
    log_class_prob = log_softmax(class_input)
    class_prob = np.exp(log_class_prob)
    return hid_input, hid_output, class_input, log_class_prob, class_prob


def loss(model, data, wd_coefficient):
    """Average cross-entropy over the cases plus weight decay.

    ``E = -(1/m) sum_cases sum_classes t * log y + (wd_coefficient / 2) * ||theta||^2``

    Returns
    -------
    float
    """
    log_class_prob = forward_pass(model, data)[3]
    return cross_entropy(log_class_prob, data["target"]) + weight_decay_loss(
        model_to_theta(model), wd_coefficient
    )


def classification_performance(model, data):
    """Fraction of the cases in ``data`` that the model classifies wrongly (error rate)."""
    return error_rate(forward_pass(model, data)[2], data["target"])


def error_rate(class_input, target):
    """Fraction of the columns whose largest ``class_input`` (10, m) is not the ``target``
    (10, m) class."""
    choices = np.argmax(class_input, axis=0)
    targets = np.argmax(target, axis=0)
    return float(np.mean(choices != targets))


def model_to_theta(model):
    """Flatten a model into one vector: ``input_to_hid`` then ``hid_to_class``, column-major.

    Returns
    -------
    theta : array of shape (266 * n_hid,)
    """
    return np.concatenate(
        [np.ravel(model["input_to_hid"], order="F"), np.ravel(model["hid_to_class"], order="F")]
    )


def theta_to_model(theta):
    """The exact inverse of ``model_to_theta``.

    Parameters
    ----------
    theta : array of shape (266 * n_hid,)
    """
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 1 or theta.size == 0 or theta.size % (N_INPUTS + N_CLASSES):
        raise ValueError(
            f"theta must be a 1-D array whose length is a multiple of {N_INPUTS + N_CLASSES} "
            f"(= 266 * n_hid); got shape {theta.shape}."
        )
    n_hid = theta.size // (N_INPUTS + N_CLASSES)
    return {
        "input_to_hid": theta[: N_INPUTS * n_hid].reshape((n_hid, N_INPUTS), order="F"),
        "hid_to_class": theta[N_INPUTS * n_hid :].reshape((N_CLASSES, n_hid), order="F"),
    }


def initial_model(n_hid):
    """The deterministic starting model: ``theta = 0.1 * cos(0, 1, 2, ...)``.

    Every learner starts from the same numbers, so everyone's results can be compared
    with the reference numbers.
    """
    if isinstance(n_hid, bool) or not isinstance(n_hid, (int, np.integer)) or n_hid < 1:
        raise ValueError(f"n_hid must be a positive integer; got {n_hid!r}.")
    return theta_to_model(0.1 * np.cos(np.arange((N_INPUTS + N_CLASSES) * int(n_hid))))


def check_model(model, name="model"):
    """Raise a ValueError that says what is wrong unless ``model`` is a valid model dict."""
    if not isinstance(model, dict) or set(model) != {"input_to_hid", "hid_to_class"}:
        got = sorted(model) if isinstance(model, dict) else type(model).__name__
        raise ValueError(
            f"{name} must be a dict with the keys 'input_to_hid' and 'hid_to_class'; got {got}."
        )
    input_to_hid = np.shape(model["input_to_hid"])
    hid_to_class = np.shape(model["hid_to_class"])
    if len(input_to_hid) != 2 or input_to_hid[1] != N_INPUTS:
        raise ValueError(
            f"{name}['input_to_hid'] must have shape (n_hid, {N_INPUTS}); got {input_to_hid}."
        )
    if hid_to_class != (N_CLASSES, input_to_hid[0]):
        raise ValueError(
            f"{name}['hid_to_class'] must have shape ({N_CLASSES}, n_hid) = "
            f"({N_CLASSES}, {input_to_hid[0]}); got {hid_to_class}."
        )


def check_data(data, name="data"):
    """Raise a ValueError that says what is wrong unless ``data`` is a valid data split."""
    if not isinstance(data, dict) or not {"inputs", "target"} <= set(data):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{name} must be a dict with the keys 'inputs' and 'target' "
            f"(e.g. datas['train']); got {got}."
        )
    inputs = np.shape(data["inputs"])
    target = np.shape(data["target"])
    if len(inputs) != 2 or inputs[0] != N_INPUTS:
        raise ValueError(f"{name}['inputs'] must have shape ({N_INPUTS}, m); got {inputs}.")
    if target != (N_CLASSES, inputs[1]):
        raise ValueError(
            f"{name}['target'] must have shape ({N_CLASSES}, m) = ({N_CLASSES}, {inputs[1]}); "
            f"got {target}."
        )
