"""The training driver: mini-batch gradient descent with momentum, weight decay and early stopping.

``train`` computes and returns a ``TrainingResult``; printing and plotting are in
``report.py``, so tests, widgets and notebooks share this one loop.
"""

import contextlib
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from .data import load_data
from .gradient_check import check_gradient as run_gradient_check
from .gradient_check import check_gradient_structure
from .network import (
    cross_entropy,
    error_rate,
    forward_pass,
    initial_model,
    log_softmax,
    logistic_of_negated,
    model_to_theta,
    theta_to_model,
    weight_decay_loss,
)
from .progress import progress_bar

SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


@dataclass
class TrainingResult:
    """Everything one training run produced.

    Attributes
    ----------
    model : dict, the final model (the best one when early stopping was on)
    training_losses, validation_losses : list of float, one per iteration, including weight decay
    best_iteration : int or None
        With early stopping, the (1-based) iteration whose model was kept.
    metrics : dict
        ``metrics[split][name]`` for split in ``'train'``, ``'val'``, ``'test'`` and name in
        ``'loss'``, ``'classification_loss'`` (without weight decay), ``'error_rate'``.
    diverged : bool
        True when the loss became NaN or infinite; training stopped there.
    stopped_early : bool
        True when a ``callback`` asked to stop.
    settings : dict, the arguments of the run
    gradient_checks : list of GradientReport, the gradient tests run before and after training
    """

    model: dict
    training_losses: list
    validation_losses: list
    best_iteration: object
    metrics: dict
    diverged: bool
    stopped_early: bool
    settings: dict
    gradient_checks: list = field(default_factory=list)

    def __repr__(self):
        return (
            f"<TrainingResult n_hid={self.settings['n_hid']}, "
            f"{len(self.training_losses)} iterations, "
            f"final training loss {self.metrics['train']['loss']!r}>"
        )


def train(
    gradient_fn,
    wd_coefficient,
    n_hid,
    n_iters,
    learning_rate,
    momentum_multiplier,
    do_early_stopping,
    mini_batch_size,
    *,
    datas=None,
    check_gradient=True,
    callback=None,
    progress=False,
):
    """Train the network from ``initial_model(n_hid)``.

    Parameters
    ----------
    gradient_fn : callable
        ``gradient_fn(model, data, wd_coefficient)`` returns a dict shaped like ``model``
        (the learner's ``d_loss_by_d_model``).
    wd_coefficient : float, weight decay coefficient (>= 0)
    n_hid : int, number of hidden units
    n_iters : int, number of mini-batch updates (>= 0)
    learning_rate : float
    momentum_multiplier : float, 0 means plain gradient descent
    do_early_stopping : bool, keep the model with the lowest validation loss
    mini_batch_size : int
        Iteration ``i`` (1-based) uses the training columns ``[start, start + mini_batch_size)``
        with ``start = ((i - 1) * mini_batch_size) mod n_train``.
    datas : dict, optional, the splits from ``load_data()`` (loaded when omitted)
    check_gradient : bool
        Run the gradient tester on the full training set before training and on the last
        mini-batch after it (raises ``GradientCheckError`` if the gradient is wrong).
    callback : callable, optional
        ``callback(iteration, training_loss, validation_loss)`` after every iteration;
        returning ``"stop"`` ends training.
    progress : bool or str
        Show a progress bar of the iterations (text for the bar's label), for a learner
        working interactively; see ``progress_bar``. Nothing is shown while nbgrader grades.

    Returns
    -------
    TrainingResult
    """
    _check_settings(wd_coefficient, n_hid, n_iters, learning_rate, momentum_multiplier, mini_batch_size)
    settings = dict(
        wd_coefficient=wd_coefficient,
        n_hid=n_hid,
        n_iters=n_iters,
        learning_rate=learning_rate,
        momentum_multiplier=momentum_multiplier,
        do_early_stopping=bool(do_early_stopping),
        mini_batch_size=mini_batch_size,
    )
    if datas is None:
        datas = load_data()
    training, validation = datas["train"], datas["val"]
    n_train = training["inputs"].shape[1]

    model = initial_model(n_hid)
    gradient_checks = []
    if check_gradient:
        gradient_checks.append(run_gradient_check(model, training, wd_coefficient, gradient_fn))

    # Training and validation losses come from one product of the weights with both
    # splits side by side (n_train + n_val columns), written into one preallocated buffer.
    both_inputs = np.hstack([training["inputs"], validation["inputs"]])
    hid_output = np.empty((n_hid, both_inputs.shape[1]))
    negated_input_to_hid = np.empty((n_hid, both_inputs.shape[0]))
    theta = model_to_theta(model)
    # Views into theta: updating theta in place updates them.
    weights = theta_to_model(theta)
    momentum_speed = np.zeros_like(theta)
    # Views again, so that the gradient is subtracted layer by layer without flattening it.
    momentum_by_layer = theta_to_model(momentum_speed)
    step = np.empty_like(theta)
    training_losses, validation_losses = [], []
    best = {"theta": theta.copy(), "validation_loss": np.inf, "iteration": None}
    diverged = stopped_early = False
    batch = training
    one_blas_thread = _one_blas_thread_for_small_products()
    iterations = progress_bar(range(1, n_iters + 1), progress, unit="iteration")
    for iteration in iterations:
        start = ((iteration - 1) * mini_batch_size) % n_train
        batch = {
            "inputs": training["inputs"][:, start : start + mini_batch_size],
            "target": training["target"][:, start : start + mini_batch_size],
        }
        # A copy, so a gradient_fn that writes into the model cannot change theta.
        model = theta_to_model(theta.copy())
        with one_blas_thread():
            gradient = gradient_fn(model, batch, wd_coefficient)
        check_gradient_structure(gradient, model)
        # A run that blows up overflows here; it is reported as diverged, not as warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            momentum_speed *= momentum_multiplier
            for layer, speed in momentum_by_layer.items():
                speed -= gradient[layer]
            np.multiply(momentum_speed, learning_rate, out=step)
            theta += step
            # -W1 @ X is exactly -(W1 @ X): the logistic's negation is done on the weights.
            np.negative(weights["input_to_hid"], out=negated_input_to_hid)
            np.matmul(negated_input_to_hid, both_inputs, out=hid_output)
            logistic_of_negated(hid_output, out=hid_output)
            log_class_prob = log_softmax(weights["hid_to_class"] @ hid_output)
            decay = weight_decay_loss(theta, wd_coefficient)
            training_loss = cross_entropy(log_class_prob[:, :n_train], training["target"]) + decay
            validation_loss = cross_entropy(log_class_prob[:, n_train:], validation["target"]) + decay
        training_losses.append(training_loss)
        validation_losses.append(validation_loss)
        if do_early_stopping and validation_loss < best["validation_loss"]:
            best = {"theta": theta.copy(), "validation_loss": validation_loss, "iteration": iteration}
        if not (np.isfinite(training_loss) and np.isfinite(validation_loss)):
            diverged = True
            break
        if callback is not None and callback(iteration, training_loss, validation_loss) == "stop":
            stopped_early = True
            break
    if hasattr(iterations, "close"):
        iterations.close()

    if do_early_stopping and best["iteration"] is not None:
        theta = best["theta"]
    model = theta_to_model(theta)
    if check_gradient and training_losses and not diverged:
        gradient_checks.append(run_gradient_check(model, batch, wd_coefficient, gradient_fn))
    return TrainingResult(
        model=model,
        training_losses=training_losses,
        validation_losses=validation_losses,
        best_iteration=best["iteration"] if do_early_stopping else None,
        metrics=evaluate(model, datas, wd_coefficient),
        diverged=diverged,
        stopped_early=stopped_early,
        settings=settings,
        gradient_checks=gradient_checks,
    )


def _one_blas_thread_for_small_products():
    """A context manager that limits BLAS to one thread, when it has more.

    The mini-batch step's products (n_hid x 256 x 100) are too small for threads: on a
    shared machine spinning BLAS threads make them several times slower. The product
    with all the training and validation cases, outside it, keeps the threads.
    """
    blas = ThreadpoolController().select(user_api="blas")
    if all(info["num_threads"] <= 1 for info in blas.info()):
        return contextlib.nullcontext
    return lambda: blas.limit(limits=1)


def evaluate(model, datas, wd_coefficient):
    """``metrics[split][name]``: loss, classification loss and error rate of every split."""
    metrics = {}
    decay = weight_decay_loss(model_to_theta(model), wd_coefficient)
    with np.errstate(invalid="ignore", over="ignore"):
        for split in SPLIT_NAMES:
            # One forward pass serves all three numbers (``loss`` twice and
            # ``classification_performance`` would each run their own).
            _, _, class_input, log_class_prob, _ = forward_pass(model, datas[split])
            target = datas[split]["target"]
            metrics[split] = {
                "loss": cross_entropy(log_class_prob, target) + decay,
                "classification_loss": cross_entropy(log_class_prob, target),
                "error_rate": error_rate(class_input, target),
            }
    return metrics


def _check_settings(wd_coefficient, n_hid, n_iters, learning_rate, momentum_multiplier, mini_batch_size):
    def is_int(value):
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    problems = []
    if not is_int(n_hid) or n_hid < 1:
        problems.append(f"n_hid must be a positive integer (got {n_hid!r})")
    if not is_int(n_iters) or n_iters < 0:
        problems.append(f"n_iters must be an integer >= 0 (got {n_iters!r})")
    if not is_int(mini_batch_size) or mini_batch_size < 1:
        problems.append(f"mini_batch_size must be a positive integer (got {mini_batch_size!r})")
    for name, value in [
        ("wd_coefficient", wd_coefficient),
        ("learning_rate", learning_rate),
        ("momentum_multiplier", momentum_multiplier),
    ]:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or value < 0:
            problems.append(f"{name} must be a number >= 0 (got {value!r})")
    if problems:
        raise ValueError("Invalid training settings: " + "; ".join(problems) + ".")
