"""How far apart backpropagation and finite differences are on the backpropagation probe.

``hidden_tests.check_uses_backpropagation`` accepts a gradient whose cheaper call on the
probe (100 hidden units, 10 cases) costs at most ``MAX_GRADIENT_CPU_SECONDS`` of CPU time
and that is exact to ``EXACT_RTOL``. This prints, for gradients computed in several ways,
the CPU seconds of one call (best of ``--repeats``) and the relative error against the
exact gradient, next to the limits: each way should sit far from the limit, on its side.

    python benchmarks/bench_backprop_probe.py [--repeats 3]
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_grading import hidden_tests  # noqa: E402
from course_grading.learner_function import process_tree_cpu_seconds  # noqa: E402
from course_utils import finite_difference_gradient, initial_model, load_data, theta_to_model  # noqa: E402
from course_utils.notebook_code import learner_namespace  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _defined(path):
    namespace = learner_namespace()
    exec(Path(path).read_text(), namespace)
    return namespace["d_loss_by_d_model"]


def _looping(gradient_fn):
    def looping(model, data, wd_coefficient):
        m = data["inputs"].shape[1]
        total = {part: wd_coefficient * w for part, w in model.items()}
        for case in range(m):
            one = gradient_fn(model, {k: v[:, case:case + 1] for k, v in data.items()}, 0.0)
            for part in total:
                total[part] += one[part] / m
        return total
    return looping


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    datas = load_data()
    rng = np.random.default_rng(0)
    columns = rng.choice(datas["train"]["inputs"].shape[1], hidden_tests.PROBE_CASES, replace=False)
    data = {k: v[:, columns] for k, v in datas["train"].items()}
    model = {part: w * rng.uniform(0.5, 2.0, w.shape)
             for part, w in initial_model(hidden_tests.PROBE_HIDDEN_UNITS).items()}
    exact = hidden_tests.backpropagation(model, data, 0.0)
    learner_style = _defined(ROOT / "demo" / "submissions" / "learner_style.py")
    ways = {
        "backpropagation, vectorized (learner_style.py)": learner_style,
        "backpropagation, looping over the 10 cases": _looping(learner_style),
        "central differences, own forward pass (demo/submissions/finite_differences.py)":
            _defined(ROOT / "demo" / "submissions" / "finite_differences.py"),
        "course_utils.finite_difference_gradient": lambda m, d, wd: theta_to_model(finite_difference_gradient(m, d, wd)),
    }
    print(f"Probe: {hidden_tests.PROBE_HIDDEN_UNITS} hidden units, {hidden_tests.PROBE_CASES} cases; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"Limits: CPU {hidden_tests.MAX_GRADIENT_CPU_SECONDS} s, relative error {hidden_tests.EXACT_RTOL:g}")
    for name, gradient_fn in ways.items():
        # The operating system counts CPU time in ticks (10 ms): a fast way is measured over
        # many calls, a slow one once.
        calls = 1 if "differences" in name or "finite" in name else 200
        best = np.inf
        for _ in range(args.repeats if calls > 1 else 1):
            started = process_tree_cpu_seconds(os.getpid())
            for _ in range(calls):
                answer = gradient_fn(model, data, 0.0)
            best = min(best, (process_tree_cpu_seconds(os.getpid()) - started) / calls)
        error = max(np.linalg.norm(answer[p] - exact[p]) / np.linalg.norm(exact[p]) for p in exact)
        ratio = best / hidden_tests.MAX_GRADIENT_CPU_SECONDS
        print(f"  {name}: {best:.5f} CPU s ({ratio:.3g} x the limit), relative error {error:.1e}")


if __name__ == "__main__":
    main()
