"""The notebooks' checkers: reference values from real training, and the mistake diagnosis."""

import linecache
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import course_utils
from course_grading import hidden_tests
from course_utils import checks, diagnosis
from course_utils.diagnosis import CheckFailed, Mistake
from course_utils.learner_errors import LearnerCodeError, hint_for_other_versions
from course_utils.notebook_code import learner_line, learner_namespace, notebook_cells

pytestmark = pytest.mark.fast  # no nbgrader run, no browser

SUBMISSIONS = Path(__file__).resolve().parent.parent / "demo" / "submissions"
SOURCE = Path(__file__).resolve().parent.parent / "notebooks" / "source" / "backprop"


def hidden_expectation(notebook, grade_id):
    """The keyword arguments (literals) of the hidden_tests call in a source notebook's test cell."""
    import ast

    import nbformat

    for cell in nbformat.read(SOURCE / f"{notebook}.ipynb", as_version=4).cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Call) and getattr(node.func, "value", None) is not None \
                        and getattr(node.func.value, "id", None) == "hidden_tests":
                    return {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    raise LookupError(grade_id)


def diagnose(gradient_fn, datas, batch_size=None):
    """{part: the diagnosis's words or None}, probed as the checks probe."""
    found = diagnosis.diagnose_gradient(gradient_fn, datas["train"], batch_size, probe=checks.probe_gradient)
    return {part: finding.text if finding else None for part, finding in found.items()}


def mistakes(gradient_fn, datas):
    """{part: the names of its mistakes} from the diagnosis (an empty tuple when it looks right)."""
    found = diagnosis.diagnose_gradient(gradient_fn, datas["train"], probe=checks.probe_gradient)
    return {part: finding.mistakes if finding else () for part, finding in found.items()}


def answer(file_name):
    """The ``d_loss_by_d_model`` of an example answer file, in a notebook-like namespace."""
    namespace = learner_namespace()
    exec(compile((SUBMISSIONS / file_name).read_text(), file_name, "exec"), namespace)
    return namespace["d_loss_by_d_model"]


def test_reference_training_loss_comes_from_real_training(solution, datas):
    result = course_utils.train(solution, **checks.REFERENCE_RUN, datas=datas, check_gradient=False)
    assert result.training_losses[-1] == pytest.approx(checks.REFERENCE_TRAINING_LOSS, rel=1e-12)
    assert course_utils.loss(course_utils.initial_model(10), datas["train"], 0) == pytest.approx(
        checks.INITIAL_TRAINING_LOSS, rel=1e-12)


def test_sweep_answers_in_the_hidden_tests_come_from_real_training(solution, datas):
    finals = {}
    for momentum in (0.0, 0.9):
        for rate in (0.002, 0.01, 0.05, 0.2, 1.0, 5.0, 20.0):
            result = course_utils.train(solution, 0, 10, 70, rate, momentum, False, 4, datas=datas,
                                        check_gradient=False)
            finals[rate, momentum] = np.nan_to_num(result.training_losses[-1], nan=np.inf)
    best = {m: min((r for r, mm in finals if mm == m), key=lambda r: finals[r, m]) for m in (0.0, 0.9)}
    without = hidden_expectation("backprop", "test_best_rate_without_momentum")
    with_momentum = hidden_expectation("backprop", "test_best_rate_with_momentum")
    assert (without["expected"], without["other"]) == (best[0.0], best[0.9]) == (1.0, 0.2)
    assert (with_momentum["expected"], with_momentum["other"]) == (best[0.9], best[0.0])


def test_the_learner_library_holds_no_graded_answer():
    # Every answer the hidden tests compare with, as it would be written in code.
    literals = set()
    for notebook, grade_id in [("backprop", "test_tiny_hid_to_class"), ("backprop", "test_tiny_input_to_hid"),
                               ("generalization", "test_early_stopping_iteration"),
                               ("generalization", "test_validation_loss_without_early_stopping")]:
        expected = hidden_expectation(notebook, grade_id)["expected"]
        literals |= {repr(float(x))[:8] if float(x) != int(x) else str(int(x)) for x in np.ravel(expected)}
    text = "".join(path.read_text() for path in Path(checks.__file__).parent.glob("*.py"))
    assert literals and not [literal for literal in literals if literal in text]
    for name in ("tiny_gradient", "best_learning_rate", "best_wd_coefficient", "EARLY_STOPPING_ITERATION",
                 "check_other_hidden_sizes", "check_uses_backpropagation"):
        assert not hasattr(checks, name), name


def test_numerical_gradient_agrees_with_the_tester(datas):
    model = diagnosis.slightly_random_model(6)
    data = diagnosis.cases(datas["train"], slice(0, 7))
    fast = course_utils.model_to_theta(diagnosis.numerical_gradient(model, data, 0.05))
    indices = course_utils.gradient_check.indices_to_check(6)
    slow = course_utils.finite_difference_gradient(model, data, 0.05, indices)
    np.testing.assert_allclose(fast[indices], slow, rtol=1e-7, atol=1e-12)


def test_tiny_gradient_answers_match_finite_differences():
    # Exercise 1 c: the hidden tests' answers are the gradient of the tiny network.
    from scipy.special import logsumexp

    def tiny_loss(weights):
        hidden = 1 / (1 + np.exp(-weights["input_to_hid"] @ hidden_tests.TINY_DATA["inputs"]))
        scores = weights["hid_to_class"] @ hidden
        return float(-np.sum(hidden_tests.TINY_DATA["target"] * (scores - logsumexp(scores, axis=0))))

    numerical = {}
    for part, weights in hidden_tests.TINY_MODEL.items():
        numerical[part] = np.zeros_like(weights)
        for index in np.ndindex(weights.shape):
            moved = [{**hidden_tests.TINY_MODEL, part: weights.copy()} for _ in range(2)]
            moved[0][part][index] += 1e-6
            moved[1][part][index] -= 1e-6
            numerical[part][index] = (tiny_loss(moved[0]) - tiny_loss(moved[1])) / 2e-6
    expected = {part: hidden_expectation("backprop", f"test_tiny_{part}")["expected"]
                for part in ("hid_to_class", "input_to_hid")}
    y1 = np.e / (np.e + 1)
    np.testing.assert_allclose(expected["hid_to_class"], [[y1 / 2], [-y1 / 2]], rtol=1e-15)
    np.testing.assert_allclose(expected["input_to_hid"], [[y1 / 2, y1]], rtol=1e-15)
    for part in expected:
        np.testing.assert_allclose(numerical[part], expected[part], atol=1e-8)
    hidden_tests.check_tiny_gradient("hid_to_class", [[0.3655], [-0.3655]], expected["hid_to_class"])
    with pytest.raises(AssertionError, match="sign is flipped"):
        hidden_tests.check_tiny_gradient("hid_to_class", [[-0.3655], [0.3655]], expected["hid_to_class"])
    with pytest.raises(AssertionError, match="logistic function"):
        hidden_tests.check_tiny_gradient("input_to_hid", [[1.4621, 2.9242]], expected["input_to_hid"])
    with pytest.raises(AssertionError, match="shape"):
        checks.check_tiny_gradient_form("input_to_hid", [[0.3655], [0.7311]])


@pytest.mark.parametrize("file_name, part, phrase, mistake", [
    ("transposed.py", "hid_to_class", "transpose", Mistake.TRANSPOSED),
    ("missing_1_over_m.py", "hid_to_class", "m times too large", Mistake.MISSING_ONE_OVER_M),
    ("missing_1_over_m.py", "input_to_hid", "m times too large", Mistake.MISSING_ONE_OVER_M),
    ("flipped_sign.py", "input_to_hid", "sign is flipped", Mistake.SIGN_FLIPPED),
    ("missing_weight_decay.py", "input_to_hid", "weight decay term is missing", Mistake.MISSING_WEIGHT_DECAY),
    ("doubled_weight_decay.py", "hid_to_class", "added twice", Mistake.DOUBLED_WEIGHT_DECAY),
    ("missing_logistic_derivative.py", "input_to_hid", "logistic function is missing",
     Mistake.MISSING_LOGISTIC_DERIVATIVE),
])
def test_diagnosis_names_the_mistake_per_layer(datas, file_name, part, phrase, mistake):
    found = diagnose(answer(file_name), datas)
    assert phrase in found[part]
    assert mistakes(answer(file_name), datas)[part] == (mistake,)


def _m(data):
    return data["inputs"].shape[1]


def _wrong(solution, cross_entropy, weight_decay):
    """A wrong gradient: cross_entropy(g, m) + weight_decay(W, wd, m) per layer, g the solution's at wd 0."""
    def d_loss_by_d_model(model, data, wd_coefficient):
        right = solution(model, data, 0.0)
        return {part: cross_entropy(right[part], _m(data)) + weight_decay(model[part], wd_coefficient, _m(data))
                for part in model}
    return d_loss_by_d_model


# (cross-entropy part, weight decay part, what the diagnosis says for both layers)
COMBINATIONS = {
    "twice and divided by m": (lambda g, m: g, lambda w, wd, m: 2 * wd * w / m,
                               "the weight decay term is added twice and divided by the number of cases m"),
    "divided by m": (lambda g, m: g, lambda w, wd, m: wd * w / m,
                     "the weight decay term is divided by the number of cases m"),
    "weights at wd 0": (lambda g, m: g, lambda w, wd, m: wd * w + w,
                        "it contains the weights even when wd_coefficient is 0"),
    "weights over m at wd 0": (lambda g, m: g, lambda w, wd, m: wd * w + 0.5 * w / m,
                               "it contains 0.5 times the weights divided by m even when wd_coefficient is 0"),
    "subtracted": (lambda g, m: g, lambda w, wd, m: -wd * w, "subtracted instead of added"),
    "multiplied by m": (lambda g, m: g, lambda w, wd, m: wd * w * m,
                        "the weight decay term is multiplied by the number of cases m"),
    "sum and missing": (lambda g, m: g * m, lambda w, wd, m: 0 * w,
                        "m times too large (1000 in the test above): it is the sum over the cases, "
                        "not the average. Divide by the number of cases m; the weight decay term is missing"),
    "flipped sum": (lambda g, m: -g * m, lambda w, wd, m: wd * w,
                    "its sign is flipped (it points uphill): the output error is class_prob minus target, "
                    "not target minus class_prob; the cross-entropy part is m times too large"),
    "too small, twice": (lambda g, m: g / m, lambda w, wd, m: 2 * wd * w,
                         "m times too small (1000 in the test above): you divide by the number of cases m "
                         "twice; the weight decay term is added twice"),
    "half": (lambda g, m: g / 2, lambda w, wd, m: wd * w, "the cross-entropy part is 0.5 times what it should be"),
    "only weight decay": (lambda g, m: 0 * g, lambda w, wd, m: wd * w, "the cross-entropy part is missing"),
}


@pytest.mark.parametrize("name", COMBINATIONS)
def test_diagnosis_names_combined_mistakes(solution, datas, name):
    cross_entropy, weight_decay, phrase = COMBINATIONS[name]
    found = diagnose(_wrong(solution, cross_entropy, weight_decay), datas, batch_size=1000)
    for part in found:
        assert phrase in found[part], (part, found[part])


# The names of the mistakes of each combination, both layers alike.
COMBINATION_MISTAKES = {
    "twice and divided by m": (Mistake.WRONG_WEIGHT_DECAY,),
    "divided by m": (Mistake.WRONG_WEIGHT_DECAY,),
    "weights at wd 0": (Mistake.WEIGHT_DECAY_WITHOUT_COEFFICIENT,),
    "weights over m at wd 0": (Mistake.WEIGHT_DECAY_WITHOUT_COEFFICIENT,),
    "subtracted": (Mistake.WRONG_WEIGHT_DECAY,),
    "multiplied by m": (Mistake.WRONG_WEIGHT_DECAY,),
    "sum and missing": (Mistake.MISSING_ONE_OVER_M, Mistake.MISSING_WEIGHT_DECAY),
    "flipped sum": (Mistake.SIGN_FLIPPED, Mistake.MISSING_ONE_OVER_M),
    "too small, twice": (Mistake.DIVIDED_BY_M_TWICE, Mistake.DOUBLED_WEIGHT_DECAY),
    "half": (Mistake.SCALED,),
    "only weight decay": (Mistake.MISSING_CROSS_ENTROPY,),
}


@pytest.mark.parametrize("name", COMBINATIONS)
def test_diagnosis_names_each_mistake_of_a_synthetic_gradient(solution, datas, name):
    cross_entropy, weight_decay, _ = COMBINATIONS[name]
    found = mistakes(_wrong(solution, cross_entropy, weight_decay), datas)
    assert found == {"hid_to_class": COMBINATION_MISTAKES[name], "input_to_hid": COMBINATION_MISTAKES[name]}


def test_a_failed_check_names_the_mistakes_and_keeps_its_words(solution, datas):
    flipped = _wrong(solution, lambda g, m: -g, lambda w, wd, m: wd * w)
    with pytest.raises(CheckFailed) as raised:
        checks.check_gradient_on_training_set(flipped, datas)
    assert raised.value.mistakes == (Mistake.SIGN_FLIPPED,)
    assert str(raised.value).startswith("With 10 hidden units on the whole training set")
    assert "its sign is flipped" in str(raised.value)
    for file_name, mistake in [("wrong_keys.py", Mistake.WRONG_KEYS_OR_SHAPE), ("nan_gradient.py", Mistake.NOT_FINITE),
                               ("raises.py", Mistake.RAISED), ("returns_zeros.py", Mistake.NOT_IMPLEMENTED)]:
        with pytest.raises(CheckFailed) as raised:
            checks.check_gradient_keys_and_shapes(answer(file_name), datas)
        assert raised.value.mistakes == (mistake,), file_name
    with pytest.raises(CheckFailed) as raised:
        hidden_tests.check_not_transposed(answer("transposed.py"), datas)
    assert raised.value.mistakes == (Mistake.TRANSPOSED,)


def test_wrong_and_missing_answers_are_named(datas):
    for call, mistake in [(lambda: checks.check_reported_training_loss(None), Mistake.NOT_ANSWERED),
                          (lambda: checks.check_reported_training_loss(2.302642), Mistake.WRONG_VALUE),
                          (lambda: checks.check_choice("fast", "best_rate_with_momentum", [0.2, 1.0]),
                           Mistake.WRONG_VALUE),
                          (lambda: hidden_tests.check_best_learning_rate(0.2, "best_rate_without_momentum",
                                                                         expected=1.0, other=0.2, which="x"),
                           Mistake.WRONG_VALUE),
                          (lambda: hidden_tests.check_tiny_gradient("hid_to_class", [[-0.3655], [0.3655]],
                                                                    [[0.3655], [-0.3655]]), Mistake.SIGN_FLIPPED)]:
        with pytest.raises(CheckFailed) as raised:
            call()
        assert raised.value.mistakes == (mistake,)


def test_diagnosis_of_transposition_and_the_logistic_derivative_with_other_mistakes(solution, datas):
    transposed = answer("transposed.py")
    no_slope = answer("missing_logistic_derivative.py")

    def both(model, data, wd_coefficient):
        # transposed hid_to_class without weight decay; no logistic derivative, decay added twice
        gradient = no_slope(model, data, wd_coefficient)
        return {"hid_to_class": transposed(model, data, 0.0)["hid_to_class"],
                "input_to_hid": gradient["input_to_hid"] + wd_coefficient * model["input_to_hid"]}

    found = diagnose(both, datas)
    assert "transpose of the correct gradient" in found["hid_to_class"]
    assert "weight decay term is missing" in found["hid_to_class"]
    assert "logistic function is missing" in found["input_to_hid"]
    assert "added twice" in found["input_to_hid"]

    def slope_twice(model, data, wd_coefficient):
        hid_output = course_utils.forward_pass(model, data)[1]
        right = solution(model, data, 0.0)["input_to_hid"]
        # the correct cross-entropy part with the logistic slope applied once more, case by case
        m = _m(data)
        twice = sum(solution(model, diagnosis.cases(data, slice(j, j + 1)), 0.0)["input_to_hid"]
                    * (hid_output[:, j:j + 1] * (1 - hid_output[:, j:j + 1])) for j in range(m)) / m
        assert twice.shape == right.shape
        return {"hid_to_class": solution(model, data, wd_coefficient)["hid_to_class"],
                "input_to_hid": -twice + wd_coefficient * model["input_to_hid"]}

    found = diagnose(slope_twice, datas)
    assert found["hid_to_class"] is None
    assert "applied twice" in found["input_to_hid"] and "sign is flipped" in found["input_to_hid"]
    assert mistakes(slope_twice, datas)["input_to_hid"] == (Mistake.LOGISTIC_DERIVATIVE_TWICE, Mistake.SIGN_FLIPPED)


def test_diagnosis_of_a_mistake_that_is_not_usual(solution, datas):
    def noisy(model, data, wd_coefficient):
        return {part: g + 1e-3 * np.sin(np.arange(g.size)).reshape(g.shape)
                for part, g in solution(model, data, wd_coefficient).items()}

    found = diagnose(noisy, datas)
    assert all("not one of the usual mistakes" in message for message in found.values())
    assert mistakes(noisy, datas) == {"hid_to_class": (Mistake.UNUSUAL,), "input_to_hid": (Mistake.UNUSUAL,)}


def test_factor_m_is_the_one_of_the_failing_check(solution, datas):
    summed = _wrong(solution, lambda g, m: g * m, lambda w, wd, m: wd * w)
    with pytest.raises(AssertionError, match=r"m times too large \(1000 in the test above\)"):
        checks.check_gradient_on_training_set(summed, datas)
    # the first batch has one case, where the sum is the average: the failing one has 3
    with pytest.raises(AssertionError, match=r"mini-batch of 3 cases(.|\n)*m times too large \(3 in the test above\)"):
        hidden_tests.check_small_batches(summed, datas)
    with pytest.raises(AssertionError, match=r"m times too large \(20 in the test above\)"):
        hidden_tests.check_weight_decay(summed, datas)
    with pytest.raises(AssertionError, match=r"m times too large \(6 in the test above\)"):
        hidden_tests.check_whole_gradient(summed, datas)
    halved = _wrong(solution, lambda g, m: g / m, lambda w, wd, m: wd * w)
    with pytest.raises(AssertionError, match=r"m times too small \(50 in the test above\)"):
        hidden_tests.check_other_hidden_sizes(halved, datas)


def test_factor_m_of_the_training_run(solution, datas):
    summed = _wrong(solution, lambda g, m: g * m, lambda w, wd, m: wd * w)
    with pytest.raises(AssertionError, match=r"m times too large \(10 in the test above\)"):
        checks.check_training_loss(summed, datas)


def test_diagnosis_finds_nothing_wrong_in_correct_answers(solution, datas):
    for gradient_fn in (solution, answer("learner_style.py")):
        assert diagnose(gradient_fn, datas) == {"hid_to_class": None, "input_to_hid": None}
    found = diagnose(answer("missing_logistic_derivative.py"), datas)
    assert found["hid_to_class"] is None


@pytest.mark.parametrize("file_name, phrase", [
    ("wrong_keys.py", "exactly the keys"),
    ("wrong_shape.py", "It looks transposed"),
    ("nan_gradient.py", "NaN or infinity"),
    ("raises.py", "raised ValueError"),
    ("returns_zeros.py", "not implemented yet"),
])
def test_unusable_answers_get_a_clear_message(datas, file_name, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_gradient_keys_and_shapes(answer(file_name), datas)


def test_not_implemented_stub(datas):
    def d_loss_by_d_model(model, data, wd_coefficient):
        raise NotImplementedError("Not implemented yet: write your code in this cell.")

    with pytest.raises(AssertionError, match="not implemented yet"):
        checks.check_gradient_on_training_set(d_loss_by_d_model, datas)


def test_correct_answers_pass_every_check(solution, datas):
    for gradient_fn in (solution, answer("learner_style.py")):
        checks.check_gradient_keys_and_shapes(gradient_fn, datas)
        checks.check_gradient_on_training_set(gradient_fn, datas)
        hidden_tests.check_other_hidden_sizes(gradient_fn, datas)
        hidden_tests.check_small_batches(gradient_fn, datas)
        hidden_tests.check_weight_decay(gradient_fn, datas)
        hidden_tests.check_whole_gradient(gradient_fn, datas)
        hidden_tests.check_not_transposed(gradient_fn, datas)
        hidden_tests.check_uses_backpropagation(gradient_fn, datas)


# Gradients that are right but not computed by backpropagation. None calls a function of
# the library, so no counting of library calls could see them.
CENTRAL_DIFFERENCES = (SUBMISSIONS / "finite_differences.py").read_text()
# Exact, but with the cost of evaluating the network once per weight (here the cost alone,
# in a child process: the learner's processes count all together).
EXACT_BUT_COSTLY = """
import subprocess, sys
def d_loss_by_d_model(model, data, wd_coefficient):
    subprocess.run([sys.executable, '-c', 'n = 0\\nfor _ in range(5_000_000): n += 1'], check=True)
    return backpropagation(model, data, wd_coefficient)
"""


def _defined(code):
    namespace = learner_namespace()
    namespace["backpropagation"] = hidden_tests.backpropagation
    exec(code, namespace)
    return namespace["d_loss_by_d_model"]


def test_the_reference_backpropagation_is_the_instructors_solution(solution, datas):
    rng = np.random.default_rng(5)
    model = {part: w * rng.uniform(0.5, 2.0, w.shape) for part, w in course_utils.initial_model(7).items()}
    data = {k: v[:, :13] for k, v in datas["train"].items()}
    exact, theirs = hidden_tests.backpropagation(model, data, 0.1), solution(model, data, 0.1)
    for part in exact:
        np.testing.assert_allclose(exact[part], theirs[part], rtol=1e-13, atol=1e-16)


def test_backpropagation_looping_over_the_cases_is_accepted(solution, datas):
    def looping(model, data, wd_coefficient):
        m = data["inputs"].shape[1]
        total = {part: wd_coefficient * w for part, w in model.items()}
        for case in range(m):
            one = solution(model, {k: v[:, case:case + 1] for k, v in data.items()}, 0.0)
            for part in total:
                total[part] += one[part] / m
        return total

    hidden_tests.check_uses_backpropagation(looping, datas)


def test_finite_differences_are_not_accepted_whatever_they_call(datas):
    gradient_fn = _defined(CENTRAL_DIFFERENCES)
    # It gives the right numbers (far within the gradient tester's tolerance), yet not by
    # backpropagation.
    model, data = course_utils.initial_model(3), {k: v[:, :10] for k, v in datas["train"].items()}
    for part, exact in hidden_tests.backpropagation(model, data, 0.1).items():
        np.testing.assert_allclose(gradient_fn(model, data, 0.1)[part], exact, rtol=1e-6, atol=1e-9)
    with pytest.raises(hidden_tests.BackpropagationNotUsed, match="finite differences") as raised:
        hidden_tests.check_uses_backpropagation(gradient_fn, datas)
    assert raised.value.mistakes == (Mistake.FINITE_DIFFERENCES,)


def test_an_exact_gradient_that_costs_as_much_as_one_evaluation_per_weight_is_not_accepted(datas):
    with pytest.raises(hidden_tests.BackpropagationNotUsed, match="CPU time"):
        hidden_tests.check_uses_backpropagation(_defined(EXACT_BUT_COSTLY), datas)


def test_the_transposition_trap_with_ten_hidden_units(datas):
    transposed = answer("transposed.py")
    with pytest.raises(AssertionError, match="transpose of the correct one"):
        hidden_tests.check_not_transposed(transposed, datas)


def test_a_transposed_target_is_caught_on_ten_cases(datas):
    # raises.py subtracts target.T; with ten cases in label order 0..9 the target matrix is
    # the identity and the mistake would be invisible.
    gradient = answer("raises.py")
    with pytest.raises(AssertionError):
        hidden_tests.check_not_transposed(gradient, datas)
    with pytest.raises(AssertionError):
        hidden_tests.check_uses_backpropagation(gradient, datas)


def test_an_error_inside_numpy_is_placed_on_the_learners_line(datas):
    def d_loss_by_d_model(model, data, wd_coefficient):
        # np.hstack raises from NumPy's own Python code, one frame deeper than this line.
        return {"input_to_hid": np.hstack([model["input_to_hid"], data["inputs"]])}

    line = d_loss_by_d_model.__code__.co_firstlineno + 2
    with pytest.raises(AssertionError, match=f"line {line} of your code: return"):
        checks.check_gradient_on_training_set(d_loss_by_d_model, datas)


# Code from other versions of the assignment: the mistake, and what the message must say.
OTHER_VERSIONS = {
    "targets key": ("    t = data['targets']\n", "raised KeyError: 'targets'", "here it is data['target']"),
    "targets attribute": ("    t = data.targets\n", "raised AttributeError: 'dict' object has no attribute 'targets'",
                          "use data['target'], not .targets"),
    "inputs attribute": ("    x = data.inputs\n", "no attribute 'inputs'", "use data['inputs'], not .inputs"),
    "inputToHid": ("    w = model['inputToHid']\n", "raised KeyError: 'inputToHid'", "here it is model['input_to_hid']"),
    "hidToClass": ("    w = model['hidToClass']\n", "raised KeyError: 'hidToClass'", "here it is model['hid_to_class']"),
}


def _other_version(body, parameters="model, data, wd_coefficient"):
    """A learner's d_loss_by_d_model with this body, its source known to tracebacks as in a notebook."""
    source = f"def d_loss_by_d_model({parameters}):\n{body}"
    file_name = f"<other version {len(linecache.cache)}>"
    linecache.cache[file_name] = (len(source), None, source.splitlines(True), file_name)
    namespace = learner_namespace()
    exec(compile(source, file_name, "exec"), namespace)
    return namespace["d_loss_by_d_model"]


def _run_elsewhere(function):
    """A stand-in for a proxy that runs ``function`` in another process: only plain data comes back."""
    def proxy(*args):
        try:
            return function(*args)
        except Exception as error:
            # the proxy's own frame is not the learner's code (a real proxy lives in course_utils)
            error = error.with_traceback(error.__traceback__.tb_next)
            raise LearnerCodeError(type(error).__name__, str(error),
                                   learner_line(error, of="your code")) from None
    return proxy


@pytest.mark.parametrize("name", OTHER_VERSIONS)
def test_names_from_other_versions_say_what_they_are_here(datas, name):
    body, error, hint = OTHER_VERSIONS[name]
    function = _other_version(body)
    with pytest.raises(AssertionError) as local:
        checks.check_gradient_keys_and_shapes(function, datas)
    message = str(local.value)
    assert error in message and hint in message
    assert f"(line 2 of your code: {body.strip()}). Fix the error" in message
    with pytest.raises(AssertionError) as remote:
        checks.check_gradient_keys_and_shapes(_run_elsewhere(function), datas)
    assert str(remote.value) == message


def test_a_two_argument_gradient_from_another_version(datas):
    function = _other_version("    return {}\n", parameters="model, data")
    for gradient_fn in (function, _run_elsewhere(function)):
        with pytest.raises(AssertionError, match=r"raised TypeError: (.*\.)?d_loss_by_d_model\(\) takes 2 "
                           r"positional arguments but 3 were given\. Fix the error and run its cell "
                           r"again\. Here d_loss_by_d_model takes three arguments, \(model, data, "
                           r"wd_coefficient\)"):
            checks.check_gradient_on_training_set(gradient_fn, datas)


def test_hints_for_other_versions_only_for_their_names():
    assert "data['target']" in hint_for_other_versions("KeyError", "'targets'")
    assert hint_for_other_versions("KeyError", "'target'") == ""
    assert hint_for_other_versions("AttributeError", "'list' object has no attribute 'targets'") == ""
    # another function called with too many arguments is the learner's own mistake
    assert hint_for_other_versions("TypeError", "forward_pass() takes 2 positional arguments but 3 were given") == ""


def test_errors_from_another_process_read_like_local_ones(datas):
    def not_implemented(model, data, wd_coefficient):
        raise LearnerCodeError("NotImplementedError", "Not implemented yet")

    with pytest.raises(AssertionError, match="not implemented yet: replace the line"):
        checks.check_gradient_on_training_set(not_implemented, datas)

    def fails(model, data, wd_coefficient):
        raise LearnerCodeError("ValueError", "operands could not be broadcast together")

    with pytest.raises(AssertionError) as error:
        checks.check_gradient_on_training_set(fails, datas)
    assert str(error.value) == ("d_loss_by_d_model raised ValueError: operands could not be broadcast "
                                "together. Fix the error and run its cell again.")


def test_learner_output_on_stderr_is_swallowed(capfd, datas):
    noisy = answer("noisy_stderr.py")
    checks.check_gradient_on_training_set(noisy, datas)
    hidden_tests.check_weight_decay(noisy, datas)
    with pytest.raises(AssertionError):
        checks.check_gradient_on_training_set(answer("nan_gradient.py"), datas)
    captured = capfd.readouterr()
    assert captured.err == ""


def test_typed_answers():
    checks.check_reported_training_loss(2.301907)
    checks.check_reported_training_loss("2.301906765216956")
    with pytest.raises(AssertionError, match="untrained network"):
        checks.check_reported_training_loss(2.302642)
    with pytest.raises(AssertionError, match="a number"):
        checks.check_reported_training_loss(None)
    with pytest.raises(AssertionError, match="must be one of"):
        checks.check_choice(0.3, "best_rate_without_momentum", [0.002, 0.01, 0.05, 0.2, 1.0, 5.0, 20.0])
    with pytest.raises(AssertionError, match="other setting of momentum"):
        hidden_tests.check_best_learning_rate(0.2, "best_rate_without_momentum", expected=1.0, other=0.2,
                                              which="without momentum")
    choices = [0, 0.0001, 0.001, 0.01, 1, 5]
    hidden_tests.check_best_wd_coefficient(0.001, choices, expected=0.001)
    with pytest.raises(AssertionError, match="classification loss"):
        hidden_tests.check_best_wd_coefficient(0.0001, choices, expected=0.001)
    with pytest.raises(AssertionError, match="last iteration"):
        hidden_tests.check_early_stopping_iteration(1000, expected=183)
    with pytest.raises(AssertionError, match="whole number"):
        checks.check_number(18.5, "early_stopping_iteration", 1, 1000, whole=True)


@pytest.mark.fast
def test_visible_checks_return_nothing():
    # nbgrader gives a test cell whose last value is a number only that many points.
    assert checks.check_choice(0.2, "best_rate_with_momentum", [0.002, 0.2, 1.0]) is None
    assert checks.check_number(183, "early_stopping_iteration", 1, 1000, whole=True) is None
    assert checks.check_tiny_gradient_form("hid_to_class", [[0.3655], [-0.3655]]) is None


SOURCE_NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks" / "source" / "backprop").glob("*.ipynb"))


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_cells_reads_a_notebook_as_nbformat_does_without_importing_it(path):
    import nbformat

    expected = [(cell.cell_type, cell.source, cell.metadata) for cell in nbformat.read(path, as_version=4).cells]
    assert [(cell["cell_type"], cell["source"], cell["metadata"]) for cell in notebook_cells(path)] == expected
    # In a fresh process: reading a version-4 notebook leaves nbformat (and its 0.8 s import) out.
    code = ("import sys; from course_utils.notebook_code import notebook_cells; "
            f"notebook_cells({str(path)!r}); print('nbformat' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False" and result.stderr == ""


def test_notebook_cells_leaves_other_versions_and_shapes_to_nbformat(tmp_path):
    import nbformat

    old = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(
        cells=[nbformat.v3.new_code_cell(input="x = 1\n")])])
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(old, version=3))
    assert [(cell["cell_type"], cell["source"]) for cell in notebook_cells(path)] == [("code", "x = 1\n")]
    path.write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"source": 1}]}')
    with pytest.raises(Exception):  # not a notebook nbformat can read: its error, not a guess of ours
        notebook_cells(path)
    path.write_text("not JSON")
    with pytest.raises(Exception, match="Notebook does not appear to be JSON"):
        notebook_cells(path)
