import sys
import warnings


def d_loss_by_d_model(model, data, wd_coefficient):
    # Correct, but noisy: debugging output on stderr, a warning, and a logistic of its
    # own whose exp overflows (RuntimeWarning) once the weights grow large.
    def logistic(x):
        return 1 / (1 + np.exp(-x))

    print('computing the gradient of', data['inputs'].shape[1], 'cases', file=sys.stderr)
    warnings.warn('remember to remove the debugging output')
    hid_output = logistic(model['input_to_hid'] @ data['inputs'])
    class_input = model['hid_to_class'] @ hid_output
    class_prob = np.exp(class_input - log_sum_exp_over_rows(class_input))
    m = data['inputs'].shape[1]
    error = (class_prob - data['target']) / m
    d_hid_to_class = error @ hid_output.T + wd_coefficient * model['hid_to_class']
    d_hid_input = (model['hid_to_class'].T @ error) * hid_output * (1 - hid_output)
    d_input_to_hid = d_hid_input @ data['inputs'].T + wd_coefficient * model['input_to_hid']
    return {'input_to_hid': d_input_to_hid, 'hid_to_class': d_hid_to_class}
