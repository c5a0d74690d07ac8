"""Speed of the training driver on a Part-4-sized run, against two baselines in the same run.

    python benchmarks/bench_training.py [--repeats 3] [--iterations 1000]

The run: n_hid = 200, 1000 iterations, mini-batch 100, learning rate 0.35, momentum 0.9,
training and validation loss recorded every iteration (as ``a2`` does). Compared with

- "original": the same run written the way the original notebook does it (``1/(1+exp(-x))``,
  separate forward passes for the training and the validation loss, the gradient computed
  with that forward pass);
- "floor": per iteration only the one matrix product of the 200 x 256 weights with the 2000
  training + validation cases and one logistic pass over the result, which any
  implementation has to do.

Target: ``course_utils.train`` within 1.3x of the floor, and its numbers equal to the
original-style run's within 1e-9. Also times the gradient tester. Prints; asserts nothing.
"""

import argparse
import os
import time
from pathlib import Path

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np  # noqa: E402
from scipy.special import expit  # noqa: E402

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

def floor(datas, n_iters):
    both = np.hstack([datas["train"]["inputs"], datas["val"]["inputs"]])
    weights = initial_model(SETTINGS["n_hid"])["input_to_hid"]
    for _ in range(n_iters):
        expit(weights @ both)


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

    print(f"Part-4-sized run: {SETTINGS}, {n_iters} iterations; best of {args.repeats}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    floor_seconds, _ = best_time(lambda: floor(datas, n_iters), args.repeats)
    ours_seconds, result = best_time(ours, args.repeats)
    original_seconds, (training_losses, validation_losses) = best_time(original, args.repeats)
    difference = max(np.max(np.abs(np.subtract(result.training_losses, training_losses))),
                     np.max(np.abs(np.subtract(result.validation_losses, validation_losses))))
    print(f"  floor (one product + logistic per iteration): {floor_seconds:7.2f} s")
    print(f"  course_utils.train:                           {ours_seconds:7.2f} s "
          f"= {ours_seconds / floor_seconds:.2f} x floor (target <= 1.3)")
    print(f"  written like the original notebook:           {original_seconds:7.2f} s "
          f"= {original_seconds / floor_seconds:.2f} x floor")
    print(f"  largest difference of any recorded loss, train vs original: {difference:.2e} (target <= 1e-9)")
    print(f"  final training loss {result.training_losses[-1]!r}, validation loss {result.validation_losses[-1]!r}")

    print("Gradient tester (100 elements x 8 loss evaluations, full training set):")
    for n_hid in (10, 200):
        model = initial_model(n_hid)
        seconds, _ = best_time(lambda: check_gradient(model, datas["train"], 0, solution), args.repeats)
        print(f"  n_hid = {n_hid:3d}: {seconds:6.2f} s")


if __name__ == "__main__":
    main()
