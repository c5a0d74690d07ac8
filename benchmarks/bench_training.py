"""Speed of the training driver on a Part-4-sized run, against two baselines in the same run.

    python benchmarks/bench_training.py [--repeats 3] [--iterations 1000]

The run: n_hid = 200, 1000 iterations, mini-batch 100, learning rate 0.35, momentum 0.9,
training and validation loss recorded every iteration (as ``a2`` does). Compared with

- "original": the same run written the way the original notebook does it (``1/(1+exp(-x))``,
  separate forward passes for the training and the validation loss, the gradient computed
  with that forward pass);
- "floor": per iteration only what the run cannot avoid: the one matrix product of the
  200 x 256 weights with the 2000 training + validation cases, one ``np.exp`` pass over its
  result (in place), and the mini-batch step's own matrix products (forward and backward
  through both layers). No logistic beyond that one ``exp``, no softmax, no bookkeeping.

Both are measured on one BLAS thread and on all the machine's threads (threadpoolctl), in
this run. Target: ``course_utils.train`` within 1.3x of the floor on each, and every recorded
loss equal to the original-style run's within 1e-12. Also times the gradient tester.
Prints; asserts nothing.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import course_utils  # noqa: E402
from course_utils import check_gradient, initial_model, load_data, train  # noqa: E402

SOURCE_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "source" / "backprop" / "backprop.ipynb"
SETTINGS = dict(wd_coefficient=0, n_hid=200, learning_rate=0.35, momentum_multiplier=0.9, mini_batch_size=100)


# --- The original notebook's way -----------------------------------------------------------

def original_logistic(x):
    return 1 / (1 + np.exp(-x))


def original_forward_pass(model, data):
    hid_input = np.dot(model["input_to_hid"], data["inputs"])
    hid_output = original_logistic(hid_input)
    class_input = np.dot(model["hid_to_class"], hid_output)
    class_normalizer = course_utils.log_sum_exp_over_rows(class_input)
    log_class_prob = class_input - np.tile(class_normalizer, (class_input.shape[0], 1))
    class_prob = np.exp(log_class_prob)
    return hid_input, hid_output, class_input, log_class_prob, class_prob


def original_loss(model, data, wd_coefficient):
    log_class_prob = original_forward_pass(model, data)[3]
    classification_loss = -np.mean(np.sum(log_class_prob * data["target"], 0))
    wd_loss = np.sum(course_utils.model_to_theta(model) ** 2) / 2 * wd_coefficient
    return classification_loss + wd_loss


def original_training(gradient_fn, datas, n_iters):
    wd, n_hid, lr, momentum, batch_size = (SETTINGS[k] for k in
                                           ("wd_coefficient", "n_hid", "learning_rate",
                                            "momentum_multiplier", "mini_batch_size"))
    theta = course_utils.model_to_theta(initial_model(n_hid))
    momentum_speed = theta * 0
    training_losses, validation_losses = [], []
    n_train = datas["train"]["inputs"].shape[1]
    for i in range(n_iters):
        model = course_utils.theta_to_model(theta)
        start = (i * batch_size) % n_train
        batch = {key: datas["train"][key][:, start:start + batch_size] for key in ("inputs", "target")}
        gradient = course_utils.model_to_theta(gradient_fn(model, batch, wd))
        momentum_speed = momentum_speed * momentum - gradient
        theta = theta + momentum_speed * lr
        model = course_utils.theta_to_model(theta)
        training_losses.append(original_loss(model, datas["train"], wd))
        validation_losses.append(original_loss(model, datas["val"], wd))
    return training_losses, validation_losses


# --- The floor -----------------------------------------------------------------------------

def floor(datas, n_iters, n_hid=SETTINGS["n_hid"]):
    """Run only what a training run of ``n_hid`` units cannot avoid (see the module's doc)."""
    both = np.hstack([datas["train"]["inputs"], datas["val"]["inputs"]])
    model = initial_model(n_hid)
    input_to_hid, hid_to_class = model["input_to_hid"], model["hid_to_class"]
    hidden = np.empty((input_to_hid.shape[0], both.shape[1]))
    batch_size = SETTINGS["mini_batch_size"]
    n_train = datas["train"]["inputs"].shape[1]
    for i in range(n_iters):
        start = (i * batch_size) % n_train
        batch = datas["train"]["inputs"][:, start:start + batch_size]
        # The mini-batch step's products: forward through both layers, back through both.
        batch_hidden = input_to_hid @ batch
        batch_class = hid_to_class @ batch_hidden
        batch_class @ batch_hidden.T
        back = hid_to_class.T @ batch_class
        back @ batch.T
        # The losses of both splits: one product, one exp.
        np.matmul(input_to_hid, both, out=hidden)
        np.exp(hidden, out=hidden)


# --- Measuring -----------------------------------------------------------------------------

def best_time(function, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    n_iters = args.iterations
    datas = load_data()
    solution = course_utils.function_from_notebook(SOURCE_NOTEBOOK, "d_loss_by_d_model", "d_loss_by_d_model")
    namespace = course_utils.notebook_code.learner_namespace()
    namespace.update(forward_pass=original_forward_pass, logistic=original_logistic)
    original_solution = course_utils.function_from_notebook(
        SOURCE_NOTEBOOK, "d_loss_by_d_model", "d_loss_by_d_model", namespace)

    def ours():
        return train(solution, n_iters=n_iters, do_early_stopping=False, datas=datas,
                     check_gradient=False, **SETTINGS)

    def original():
        with np.errstate(over="ignore"):  # the original's logistic overflows loudly
            return original_training(original_solution, datas, n_iters)

    print(f"Part-4-sized run: {SETTINGS}, {n_iters} iterations; best of {args.repeats}")
    all_threads = os.cpu_count()
    for threads in sorted({1, all_threads}):
        # Alternating, so that a change of the machine's load hits both alike.
        floor_seconds = ours_seconds = np.inf
        with threadpool_limits(limits=threads, user_api="blas"):
            for _ in range(args.repeats):
                floor_seconds = min(floor_seconds, best_time(lambda: floor(datas, n_iters), 1)[0])
                seconds, result = best_time(ours, 1)
                ours_seconds = min(ours_seconds, seconds)
        print(f"  {threads} BLAS thread(s): floor {floor_seconds:6.2f} s, course_utils.train "
              f"{ours_seconds:6.2f} s = {ours_seconds / floor_seconds:.2f} x floor (target <= 1.3)")
    with threadpool_limits(limits=1, user_api="blas"):
        original_seconds, (training_losses, validation_losses) = best_time(original, 1)
    difference = max(np.max(np.abs(np.subtract(result.training_losses, training_losses))),
                     np.max(np.abs(np.subtract(result.validation_losses, validation_losses))))
    print(f"  written like the original notebook (1 thread): {original_seconds:6.2f} s")
    print(f"  largest difference of any recorded loss, train vs original: {difference:.2e} (target <= 1e-12)")
    print(f"  final training loss {result.training_losses[-1]!r}, validation loss {result.validation_losses[-1]!r}")

    print("Gradient tester (100 elements x 8 loss evaluations, full training set):")
    for n_hid in (10, 200):
        model = initial_model(n_hid)
        seconds, _ = best_time(lambda: check_gradient(model, datas["train"], 0, solution), args.repeats)
        print(f"  n_hid = {n_hid:3d}: {seconds:6.2f} s")


if __name__ == "__main__":
    main()
