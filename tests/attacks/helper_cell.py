# Another cell of the same learner: the helper (and a module it imports).
import numpy.linalg as la  # noqa: F401  (imported here, used nowhere: a learner's leftover)

OUTPUT_SIZE = 10


def one_case_gradient(model, one):
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, one)
    error = class_prob - one['target']
    assert error.shape[0] == OUTPUT_SIZE
    back = model['hid_to_class'].T @ error * hid_output * (1 - hid_output)
    return {'input_to_hid': back @ one['inputs'].T, 'hid_to_class': error @ hid_output.T}
