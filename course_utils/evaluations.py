"""Counting how often code evaluates the network, to tell backpropagation from finite differences.

A gradient by backpropagation evaluates the network a few times (once per case if it
loops over the cases); a numerical one at least once per weight. Counting the calls,
rather than timing them, gives the same answer on a quiet and on a busy machine.
"""
import numpy as np

#: Functions counted: each call of these is one evaluation of the network ...
NETWORK_FUNCTIONS = ("forward_pass", "loss")
#: ... and each element a finite-difference gradient computes is one more.
NUMERICAL_FUNCTIONS = ("finite_difference_gradient",)


def _elements(args, kwargs):
    model, indices = args[0], kwargs.get("theta_indices", args[3] if len(args) > 3 else None)
    if indices is not None:
        return int(np.size(indices))
    return int(sum(np.size(weights) for weights in model.values()))


def count_evaluations(namespaces, counter):
    """Wrap the network's functions in each namespace (a dict) so that ``counter[0]`` counts.

    Returns a function that puts the originals back.
    """
    replaced = []
    for namespace in namespaces:
        for name in NETWORK_FUNCTIONS + NUMERICAL_FUNCTIONS:
            original = namespace.get(name)
            if not callable(original) or getattr(original, "_counted", False):
                continue

            def counted(*args, _original=original, _numerical=name in NUMERICAL_FUNCTIONS, **kwargs):
                counter[0] += _elements(args, kwargs) if _numerical else 1
                return _original(*args, **kwargs)

            counted._counted = True
            counted.__wrapped__ = original
            counted.__doc__ = original.__doc__
            replaced.append((namespace, name, original))
            namespace[name] = counted

    def restore():
        for namespace, name, original in reversed(replaced):
            namespace[name] = original

    return restore


def count_library_evaluations(namespace, counter):
    """``count_evaluations`` on ``namespace`` (the learner's globals) and on every name
    through which learner code can reach the network: ``course_utils``, its network and
    its gradient tester. Returns the function that puts the originals back."""
    import course_utils
    from course_utils import gradient_check, network

    return count_evaluations([namespace, network.__dict__, gradient_check.__dict__, course_utils.__dict__],
                             counter)
