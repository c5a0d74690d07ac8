"""The training driver: mini-batch gradient descent with momentum, weight decay and early stopping.

``train`` computes and returns a ``TrainingResult``; printing and plotting are in
``report.py``, so tests, widgets and notebooks share this one loop.
"""

import collections
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from .data import load_data
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
    Where BLAS may use more than one thread (threadpoolctl says how many), training uses
    as many threads, the calling one included: the others compute the losses of most of the
    training and validation cases while the calling thread calls ``gradient_fn`` for the
    next iteration, which needs only the new weights, and then the rest. So ``gradient_fn``
    for iteration ``i + 1`` runs before ``callback`` for iteration ``i``, always on the
    calling thread and with one BLAS thread. If the ``callback`` then stops training, that extra call's result,
    or the exception it raised, is thrown away (what it printed or changed stays; an
    interrupt still stops training at once); a run whose loss is no longer finite stops
    without it. On one BLAS thread (as under nbgrader) nothing runs ahead. The numbers are
    the same either way, for a ``gradient_fn`` that changes nothing but its result.
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
    both_targets = np.hstack([training["target"], validation["target"]])
    both_target_classes = np.argmax(both_targets, axis=0)
    if not np.array_equal(both_targets, np.eye(both_targets.shape[0])[:, both_target_classes]):
        raise ValueError(
            "train needs one-hot targets: every column of datas['train']['target'] and "
            "datas['val']['target'] a single 1 (in the row of its class) and zeros, as "
            "load_data() gives them.")

    model = initial_model(n_hid)
    gradient_checks = []
    if check_gradient:
        gradient_checks.append(run_gradient_check(model, training, wd_coefficient, gradient_fn))

    theta = model_to_theta(model)
    # Views into theta: updating theta in place updates them.
    weights = theta_to_model(theta)
    blas = ThreadpoolController().select(user_api="blas")
    momentum_speed = np.zeros_like(theta)
    # Views again, so that the gradient is subtracted layer by layer without flattening it.
    momentum_by_layer = theta_to_model(momentum_speed)
    step = np.empty_like(theta)
    training_losses, validation_losses = [], []
    best = {"theta": theta.copy(), "validation_loss": np.inf, "iteration": None}
    diverged = stopped_early = False
    batch = training

    def batch_of(iteration):
        start = ((iteration - 1) * mini_batch_size) % n_train
        return {
            "inputs": training["inputs"][:, start : start + mini_batch_size],
            "target": training["target"][:, start : start + mini_batch_size],
        }

    def gradient_at(theta, batch):
        # A copy, so a gradient_fn that writes into the model cannot change theta.
        model = theta_to_model(theta.copy())
        return model, gradient_fn(model, batch, wd_coefficient)

    ahead = None
    both_inputs = np.hstack([training["inputs"], validation["inputs"]])
    # The whole loop runs on one BLAS thread: the mini-batch step's products (n_hid x 256 x 100)
    # are too small for threads (on a shared machine spinning BLAS threads make them several
    # times slower). Where BLAS had more threads, the losses' product is shared out over
    # that many threads of our own instead (see _BothSplitsClassInput).
    with _one_blas_thread(blas) as n_threads, _BothSplitsClassInput(weights, both_inputs, n_threads) as both_splits:
        iterations = progress_bar(range(1, n_iters + 1), progress, unit="iteration")
        for iteration in iterations:
            batch = batch_of(iteration)
            if ahead is None:
                model, gradient = gradient_at(theta, batch)
            else:
                (model, gradient), error = ahead
                if error is not None:
                    raise error
            check_gradient_structure(gradient, model)
            # A run that blows up overflows here; it is reported as diverged, not as warnings.
            with np.errstate(over="ignore", invalid="ignore"):
                momentum_speed *= momentum_multiplier
                for layer, speed in momentum_by_layer.items():
                    speed -= gradient[layer]
                np.multiply(momentum_speed, learning_rate, out=step)
                theta += step
            # The loss will be finite exactly when the weight decay is (the weights' squared
            # norm bounds every other number in it; with no decay, an overflowing norm gives
            # inf * 0 = NaN); if not, training stops as diverged.
            decay = weight_decay_loss(theta, wd_coefficient)
            both_splits.start()
            # While the other threads compute the losses, this one computes the next
            # iteration's gradient, which needs only the new weights. It is thrown away
            # (and an error it raised with it) if the callback stops training here.
            ahead = None
            if both_splits.threaded and iteration < n_iters and np.isfinite(decay):
                try:
                    ahead = gradient_at(theta, batch_of(iteration + 1)), None
                except Exception as error:  # an interrupt is not kept for later: it stops training now
                    ahead = (None, None), error
            log_prob = target_log_prob(both_splits.finish(), both_target_classes)
            training_loss = cross_entropy_of_cases(log_prob[:n_train]) + decay
            validation_loss = cross_entropy_of_cases(log_prob[n_train:]) + decay
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


def _blas_threads(blas):
    """How many threads BLAS may use now (1 when there is no BLAS threadpoolctl knows)."""
    return max([info["num_threads"] for info in blas.info()], default=1)


_blas_limit_lock = threading.Lock()


@contextlib.contextmanager
def _one_blas_thread(blas):
    """Hold BLAS to one thread for a training; gives how many threads BLAS had.

    A training that starts while another one (in another thread) holds the limit finds
    one thread and leaves the limit alone: the holder restores BLAS's threads, from its
    own thread (OpenBLAS keeps one thread when a different thread restores the count).
    """
    with _blas_limit_lock:
        n_threads = _blas_threads(blas)
        limiter = blas.limit(limits=1) if n_threads > 1 else None
    try:
        yield n_threads
    finally:
        if limiter is not None:
            with _blas_limit_lock:
                limiter.restore_original_limits()


class _BothSplitsClassInput:
    """The class input ``W2 @ logistic(W1 @ X)`` of all training and validation cases, as the weights change.

    ``X`` is (256, n_train + n_val), the two splits side by side. On one thread this is one
    product and one logistic pass, into a buffer made once. On ``n_threads``, the cases are
    cut into blocks of columns: for each, its product (BLAS on one thread, as the whole
    training loop is), its logistic, its columns of ``W2 @ h``. (BLAS's own threads would
    share the product but leave the logistic's passes on one core.) The calling thread
    starts late, after ``gradient_fn``, so its own block is narrower than the helpers'
    share: after each iteration the cut moves to where all would have finished together
    (the clock decides only who computes which cases; each case's numbers are the same for
    any cut). The helpers' share comes in a few pieces, so that the calling thread can take
    over the pieces of a helper that the machine keeps waiting.

    ``start()`` sets the other threads to work on the weights as they are now (the first
    layer's are copied; the second's must not change before ``finish()``); ``finish()`` does
    the calling thread's block and returns the (10, n_train + n_val) class input. Use it as
    a context manager: it owns the threads.
    """

    #: No block smaller than this many hidden units x cases (50 cases of 200 units): below
    #: it a block's own calls cost more than sharing it out saves. (Nor may a block be one
    #: case wide: BLAS's matrix-vector product, which NumPy calls then, sums in another order.)
    SMALLEST_BLOCK = 10_000
    #: Cuts fall on multiples of this many cases: moving a cut by fewer is not worth it.
    ALIGN = 8
    #: The helpers' share comes in this many pieces per helper (see ``start``).
    PIECES_PER_HELPER = 2

    def __init__(self, weights, both_inputs, n_threads):
        self.weights = weights
        self.negated_input_to_hid = np.empty_like(weights["input_to_hid"])
        self.n_hid, self.n_cases = self.negated_input_to_hid.shape[0], both_inputs.shape[1]
        self.class_input = np.empty((weights["hid_to_class"].shape[0], self.n_cases))
        # Column-major, as the data set's arrays are: OpenBLAS multiplies by it faster
        # (for 10 hidden units, in 60 % of the time it needs row-major); a block of its
        # columns is column-major too.
        self.inputs = np.asfortranarray(both_inputs)
        smallest = -(-self.SMALLEST_BLOCK // self.n_hid)  # cases
        self.smallest = -(-smallest // self.ALIGN) * self.ALIGN
        n_threads = max(1, min(n_threads, self.n_cases // self.smallest))
        self.pool = ThreadPoolExecutor(n_threads - 1) if n_threads > 1 else None
        if self.pool is not None and not self._start_threads(n_threads - 1):
            n_threads, self.pool = 1, None
        self.threaded = n_threads > 1
        self.n_helpers = n_threads - 1
        # One row-major hidden-layer buffer per thread, as large as all the cases; a block
        # uses its start (row-major: the product writes it in one pass).
        self.hidden = [np.empty(self.n_hid * self.n_cases) for _ in range(n_threads)]
        # The calling thread's block: all the cases on one thread.
        self.own_width = self.n_cases
        if self.threaded:
            self.own_width = min(self._aligned(self.n_cases / n_threads), self.n_cases - self.n_helpers * self.smallest)
        self.helpers = []

    def _start_threads(self, n_helpers):
        """Start all the pool's threads now (False if they cannot all be started).

        Each first task waits until all have started, so that each gets a thread of its
        own. After that ``submit`` never starts a thread, and so never fails after having
        queued its task (only at interpreter shutdown, before queueing): no piece runs
        twice.
        """
        all_started = threading.Barrier(n_helpers + 1)
        try:
            for _ in range(n_helpers):
                self.pool.submit(all_started.wait)
            all_started.wait(timeout=60)
            return True
        except (RuntimeError, threading.BrokenBarrierError):
            all_started.abort()
            self.pool.shutdown()
            return False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.pool is not None:
            self.pool.shutdown()

    def _aligned(self, width):
        return int(round(width / self.ALIGN)) * self.ALIGN

    def start(self):
        # -W1 @ X is exactly -(W1 @ X): the logistic's negation is done on the weights.
        np.negative(self.weights["input_to_hid"], out=self.negated_input_to_hid)
        # The helpers' share first, in pieces, then the calling thread's block. The helpers
        # take pieces from the front; the calling thread, done with its block, from the
        # back: on a busy machine a helper may not run for a while, and its pieces are done
        # all the same. (deque's popleft and pop are atomic: each piece is taken once.)
        helpers_end = self.n_cases - self.own_width
        n_pieces = max(1, min(self.PIECES_PER_HELPER * self.n_helpers, helpers_end // self.smallest))
        edges = [self._aligned(helpers_end * i / n_pieces) for i in range(n_pieces)] + [helpers_end]
        self.pieces = collections.deque(slice(a, b) for a, b in zip(edges, edges[1:]))
        self.started = time.perf_counter()
        self.helpers = []
        for index in range(self.n_helpers):
            try:
                self.helpers.append(self.pool.submit(self._take_pieces, index + 1, self.pieces.popleft))
            except RuntimeError:  # no new threads while Python shuts down: finish() does the rest
                break

    def finish(self):
        own_start = time.perf_counter()
        self._block(slice(self.n_cases - self.own_width, self.n_cases), 0)
        own_end = time.perf_counter()
        self._take_pieces(0, self.pieces.pop)  # from the back: what no helper has started
        done = [helper.result() for helper in self.helpers]  # (cases, when finished) each
        helper_cases = sum(cases for cases, _ in done)
        if helper_cases:
            helpers_seconds = max(finished for _, finished in done) - self.started
            self._move_cut(own_start - self.started, own_end - own_start, helpers_seconds / helper_cases)
        return self.class_input

    def _take_pieces(self, buffer, take):
        """Compute pieces got from ``take()`` until none is left; (cases done, when done)."""
        cases = 0
        while True:
            try:
                columns = take()
            except IndexError:
                return cases, time.perf_counter()
            self._block(columns, buffer)
            cases += columns.stop - columns.start

    def _move_cut(self, own_delay, own_seconds, helper_seconds_per_case):
        # Seconds per case of all the helpers together, and of the calling thread.
        share = helper_seconds_per_case / self.n_helpers
        per_case_own = own_seconds / self.own_width if self.own_width else share * self.n_helpers
        # The width w at which all finish together: delay + w * own = (n - w) * share.
        width = (self.n_cases * share - own_delay) / (per_case_own + share)
        # Halfway there, against one iteration's noise.
        width = self._aligned((self.own_width + width) / 2)
        self.own_width = min(max(width, 0), self.n_cases - self.n_helpers * self.smallest)

    def _block(self, columns, buffer):
        # Huge weights after a diverged run overflow here; the loss, not a warning, reports it.
        # (NumPy's error state is per thread: each sets its own.)
        width = columns.stop - columns.start
        if width:
            hidden = self.hidden[buffer][: self.n_hid * width].reshape(self.n_hid, width)
            with np.errstate(over="ignore", invalid="ignore"):
                np.matmul(self.negated_input_to_hid, self.inputs[:, columns], out=hidden)
                logistic_of_negated(hidden, out=hidden)
                np.matmul(self.weights["hid_to_class"], hidden, out=self.class_input[:, columns])


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
