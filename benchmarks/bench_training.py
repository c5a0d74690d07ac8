"""Speed of the training driver on a Part-4-sized run, against its floor measured in the same run.

    python benchmarks/bench_training.py [--repeats 3] [--iterations 1000]

Run it with all of BLAS's threads (``OPENBLAS_NUM_THREADS`` unset): it measures on one BLAS
thread and on all of them in the same run (threadpoolctl), alternating, the fastest of
``--repeats`` counting, so that a change of the machine's load hits all alike.

The run: n_hid = 200, 1000 iterations, mini-batch 100, learning rate 0.35, momentum 0.9,
training and validation loss recorded every iteration (as ``a2`` does). Compared with

- "floor": per iteration only what such a run cannot avoid: W1 times the 2000 training and
  validation cases, the logistic over that (exp, add, reciprocal, in place), W2 times it,
  and the mini-batch's forward and backward products with its logistic. No softmax, no
  loss, no bookkeeping;
- "original": the same run written the way the original notebook does it (``1/(1+exp(-x))``,
  separate forward passes for the training and the validation loss, the gradient computed
  with that forward pass), on one thread: every loss ``train`` records must equal its own
  within 1e-12.

Targets: ``course_utils.train`` within 1.3 x the floor on one BLAS thread; on all of BLAS's
threads no slower than 1.15 x the one-thread run; the final losses those recorded in
benchmarks/README.md. Also times the gradient tester. Prints; asserts nothing.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

import course_utils  # noqa: E402
from course_utils import check_gradient, initial_model, load_data, train  # noqa: E402

SOURCE_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "source" / "backprop" / "backprop.ipynb"
SETTINGS = dict(wd_coefficient=0, n_hid=200, learning_rate=0.35, momentum_multiplier=0.9, mini_batch_size=100)
# The final training and validation loss of this run, 1000 iterations (benchmarks/README.md).
RECORDED_FINAL_LOSSES = (0.0025920696963846863, 0.41351756897524805)


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
    both = np.asfortranarray(np.hstack([datas["train"]["inputs"], datas["val"]["inputs"]]))
    model = initial_model(n_hid)
    input_to_hid, hid_to_class = model["input_to_hid"], model["hid_to_class"]
    hidden = np.empty((input_to_hid.shape[0], both.shape[1]))  # (n_hid, 2000)
    class_input = np.empty((hid_to_class.shape[0], both.shape[1]))  # (10, 2000)
    batch_size = SETTINGS["mini_batch_size"]
    n_train = datas["train"]["inputs"].shape[1]

    def logistic_in_place(x):
        np.exp(x, out=x)
        x += 1
        np.divide(1.0, x, out=x)  # as fast as np.reciprocal or faster

    for i in range(n_iters):
        start = (i * batch_size) % n_train
        batch = datas["train"]["inputs"][:, start:start + batch_size]  # (256, 100)
        # The mini-batch step: forward through both layers, back through both.
        batch_hidden = input_to_hid @ batch
        logistic_in_place(batch_hidden)
        batch_class = hid_to_class @ batch_hidden
        batch_class @ batch_hidden.T
        back = hid_to_class.T @ batch_class
        back @ batch.T
        # The losses of both splits: W1 @ X, its logistic, W2 @ that.
        np.matmul(input_to_hid, both, out=hidden)
        logistic_in_place(hidden)
        np.matmul(hid_to_class, hidden, out=class_input)


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

    all_threads = max([info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"], default=1)
    print(f"Part-4-sized run: {SETTINGS}, {n_iters} iterations; fastest of {args.repeats}; "
          f"BLAS has {all_threads} thread(s) (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')})")
    if all_threads == 1:
        print("  (BLAS has one thread only: unset OPENBLAS_NUM_THREADS to compare with all of them)")
    thread_counts = sorted({1, all_threads})
    # Fastest wall-clock and CPU seconds (this process's, all its threads) of each.
    floor_seconds = {threads: [np.inf, np.inf] for threads in thread_counts}
    train_seconds = {threads: [np.inf, np.inf] for threads in thread_counts}
    results = {}

    def measure(function, fastest):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        fastest[:] = min(fastest[0], wall), min(fastest[1], cpu)
        return result

    for _ in range(args.repeats):
        for threads in thread_counts:  # alternating, so that a change of the load hits all alike
            with threadpool_limits(limits=threads, user_api="blas"):
                measure(lambda: floor(datas, n_iters), floor_seconds[threads])
                results[threads] = measure(ours, train_seconds[threads])
    one_wall, one_cpu = train_seconds[1]
    for threads in thread_counts:
        (floor_wall, floor_cpu), (wall, cpu) = floor_seconds[threads], train_seconds[threads]
        print(f"  {threads} BLAS thread(s): floor {floor_wall:6.2f} s (CPU {floor_cpu:6.2f} s), "
              f"course_utils.train {wall:6.2f} s (CPU {cpu:6.2f} s) = {wall / floor_wall:.2f} x floor "
              f"(CPU {cpu / floor_cpu:.2f} x)" + (" (target <= 1.3)" if threads == 1 else ""))
        if threads > 1:
            print(f"    train on {threads} BLAS threads against train on one: {wall / one_wall:.2f} x "
                  f"(CPU {cpu / one_cpu:.2f} x) (target <= 1.15)")

    with threadpool_limits(limits=1, user_api="blas"):
        original_seconds, (training_losses, validation_losses) = best_time(original, 1)
    print(f"  written like the original notebook (1 thread): {original_seconds:6.2f} s")
    for threads, result in results.items():
        difference = max(np.max(np.abs(np.subtract(result.training_losses, training_losses))),
                         np.max(np.abs(np.subtract(result.validation_losses, validation_losses))))
        print(f"  largest difference of any recorded loss, train on {threads} thread(s) vs original: "
              f"{difference:.2e} (target <= 1e-12)")
    result = results[1]
    print(f"  final training loss {result.training_losses[-1]!r}, validation loss {result.validation_losses[-1]!r}")
    if n_iters == 1000:
        print(f"  recorded in benchmarks/README.md: {RECORDED_FINAL_LOSSES[0]!r}, {RECORDED_FINAL_LOSSES[1]!r}; "
              f"differences {result.training_losses[-1] - RECORDED_FINAL_LOSSES[0]:.1e}, "
              f"{result.validation_losses[-1] - RECORDED_FINAL_LOSSES[1]:.1e}")

    print("Gradient tester (100 elements x 8 loss evaluations, full training set), 1 BLAS thread:")
    with threadpool_limits(limits=1, user_api="blas"):
        for n_hid in (10, 200):
            model = initial_model(n_hid)
            seconds, _ = best_time(lambda: check_gradient(model, datas["train"], 0, solution), args.repeats)
            print(f"  n_hid = {n_hid:3d}: {seconds:6.2f} s")


if __name__ == "__main__":
    main()
