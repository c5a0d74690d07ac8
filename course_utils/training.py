"""The training driver: mini-batch gradient descent with momentum, weight decay and early stopping.

``train`` is one plain loop, in the manner of CS231n's ``Solver``: each iteration takes the
next mini-batch, asks ``gradient_fn`` for the gradient there, takes one step, and records
the training and validation loss. It computes and returns a ``TrainingResult``; printing
and plotting are in ``report.py``, so tests, widgets and notebooks share this one loop.
"""

from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from .data import SPLITS, load_data
from .gradient_check import check_gradient as run_gradient_check
from .gradient_check import check_gradient_structure
from .network import (
    cross_entropy,
    cross_entropy_of_cases,
    error_rate,
    forward_pass,
    initial_model,
    logistic_of_negated,
    model_to_theta,
    target_log_prob,
    theta_to_model,
    weight_decay_loss,
)
from .progress import progress_bar



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

    Each iteration ``i = 1, 2, ..., n_iters``, in order:

    1. ``batch``: the training columns ``[start, start + mini_batch_size)`` with
       ``start = ((i - 1) * mini_batch_size) mod n_train``;
    2. ``gradient = gradient_fn(model, batch, wd_coefficient)``, called once, with a copy of
       the current model;
    3. ``momentum_speed = momentum_multiplier * momentum_speed - gradient`` and
       ``theta = theta + learning_rate * momentum_speed`` (``theta``: the model flattened by
       ``model_to_theta``, shape (266 * n_hid,));
    4. the training and validation loss of the new model (weight decay included) recorded;
       training stops if either is not finite (diverged);
    5. ``callback(i, training_loss, validation_loss)``, if given; ``"stop"`` ends training.

    Parameters
    ----------
    gradient_fn : callable
        ``gradient_fn(model, data, wd_coefficient)`` returns a dict shaped like ``model``:
        ``'input_to_hid'`` (n_hid, 256), ``'hid_to_class'`` (10, n_hid) (the learner's
        ``d_loss_by_d_model``). ``data`` is ``{'inputs': (256, b), 'target': (10, b)}``.
    wd_coefficient : float, weight decay coefficient (>= 0)
    n_hid : int, number of hidden units
    n_iters : int, number of mini-batch updates (>= 0)
    learning_rate : float
    momentum_multiplier : float, 0 means plain gradient descent
    do_early_stopping : bool, keep the model with the lowest validation loss
    mini_batch_size : int, ``b`` above (the last batch before ``n_train`` may be shorter)
    datas : dict, optional, the splits from ``load_data()`` (loaded when omitted); targets one-hot
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

    Notes
    -----
    Training holds BLAS to one thread (threadpoolctl) while it runs, whatever BLAS had, and
    restores it after.
    """
    check_settings(wd_coefficient, n_hid, n_iters, learning_rate, momentum_multiplier, mini_batch_size)
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
    # All of training on one BLAS thread: its products are small (the mini-batch's) or
    # middling (the losses'), and on a machine whose cores are busy BLAS's threads make
    # them several times slower (benchmarks/README.md). So the numbers never depend on it.
    with threadpool_limits(limits=1, user_api="blas"):
        training, validation = datas["train"], datas["val"]
        n_train = training["inputs"].shape[1]
        both_splits = _BothSplits(training, validation, n_hid)

        model = initial_model(n_hid)
        gradient_checks = []
        if check_gradient:
            gradient_checks.append(run_gradient_check(model, training, wd_coefficient, gradient_fn))

        theta = model_to_theta(model)  # (266 * n_hid,)
        momentum_speed = np.zeros_like(theta)
        training_losses, validation_losses = [], []
        best = {"theta": theta.copy(), "validation_loss": np.inf, "iteration": None}
        diverged = stopped_early = False
        batch = training

        iterations = progress_bar(range(1, n_iters + 1), progress, unit="iteration")
        for iteration in iterations:
            start = ((iteration - 1) * mini_batch_size) % n_train
            batch = {
                "inputs": training["inputs"][:, start : start + mini_batch_size],  # (256, b)
                "target": training["target"][:, start : start + mini_batch_size],  # (10, b)
            }
            # A copy, so that a gradient_fn that writes into the model cannot change theta.
            model = theta_to_model(theta.copy())
            gradient = gradient_fn(model, batch, wd_coefficient)
            check_gradient_structure(gradient, model)

            # A run that blows up overflows here; it is reported as diverged, not as warnings.
            with np.errstate(over="ignore", invalid="ignore"):
                momentum_speed = momentum_speed * momentum_multiplier - model_to_theta(gradient)
                theta = theta + momentum_speed * learning_rate

            training_loss, validation_loss = both_splits.losses(theta_to_model(theta))
            decay = weight_decay_loss(theta, wd_coefficient)
            training_loss += decay
            validation_loss += decay
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


class _BothSplits:
    """The training and the validation loss (without weight decay) of a model, in one pass.

    Every iteration needs the loss of all the training and validation cases; putting the
    two splits side by side makes that one product per layer, written into buffers made once.
    """

    def __init__(self, training, validation, n_hid):
        self.n_train = training["inputs"].shape[1]
        # (256, n_train + n_val), column-major as the data set's own arrays: OpenBLAS
        # multiplies by it faster that way.
        self.inputs = np.asfortranarray(np.hstack([training["inputs"], validation["inputs"]]))
        targets = np.hstack([training["target"], validation["target"]])  # (10, n_train + n_val)
        self.target_class = np.argmax(targets, axis=0)  # (n_train + n_val,)
        if not np.array_equal(targets, np.eye(targets.shape[0])[:, self.target_class]):
            raise ValueError(
                "train needs one-hot targets: every column of datas['train']['target'] and "
                "datas['val']['target'] a single 1 (in the row of its class) and zeros, as "
                "load_data() gives them.")
        n_cases = self.inputs.shape[1]
        self.negated_input_to_hid = np.empty((n_hid, self.inputs.shape[0]))  # (n_hid, 256)
        self.hidden = np.empty((n_hid, n_cases))  # the hidden units' output
        self.class_input = np.empty((targets.shape[0], n_cases))  # (10, n_train + n_val)

    def losses(self, model):
        """(training loss, validation loss) of ``model``, without weight decay: two floats."""
        # Huge weights after a diverged run overflow here; the loss, not a warning, reports it.
        with np.errstate(over="ignore", invalid="ignore"):
            # (-W1) @ X is exactly -(W1 @ X), which the logistic 1 / (1 + exp(-x)) needs:
            # negating the small weight matrix saves a pass over the large hidden layer.
            np.negative(model["input_to_hid"], out=self.negated_input_to_hid)
            np.matmul(self.negated_input_to_hid, self.inputs, out=self.hidden)
            logistic_of_negated(self.hidden, out=self.hidden)
            np.matmul(model["hid_to_class"], self.hidden, out=self.class_input)
        log_prob = target_log_prob(self.class_input, self.target_class)  # (n_train + n_val,)
        return cross_entropy_of_cases(log_prob[: self.n_train]), cross_entropy_of_cases(log_prob[self.n_train :])


def evaluate(model, datas, wd_coefficient):
    """``metrics[split][name]``: loss, classification loss and error rate of every split."""
    metrics = {}
    decay = weight_decay_loss(model_to_theta(model), wd_coefficient)
    with np.errstate(invalid="ignore", over="ignore"):
        for split in SPLITS:
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


def check_settings(wd_coefficient, n_hid, n_iters, learning_rate, momentum_multiplier, mini_batch_size):
    """Raise ValueError naming every setting of a training run that is not usable (``train``'s
    arguments; the training lab checks its own with it too)."""
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
