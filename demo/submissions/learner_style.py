def d_loss_by_d_model(model, data, wd_coefficient):
    # An answer written for the original notebook: its own logistic, np.dot, and
    # the forward pass written out step by step.
    def logistic(x):
        return 1.0 / (1.0 + np.exp(-x))

    ret = {}
    hid_input = np.dot(model['input_to_hid'], data['inputs'])
    hid_output = logistic(hid_input)
    class_input = np.dot(model['hid_to_class'], hid_output)
    class_prob = np.exp(class_input - log_sum_exp_over_rows(class_input))
    num_cases = data['inputs'].shape[1]

    error_at_class_input = (class_prob - data['target']) / num_cases
    ret['hid_to_class'] = np.dot(error_at_class_input, hid_output.T) + wd_coefficient * model['hid_to_class']
    error_at_hid_output = np.dot(model['hid_to_class'].T, error_at_class_input)
    error_at_hid_input = error_at_hid_output * hid_output * (1 - hid_output)
    ret['input_to_hid'] = np.dot(error_at_hid_input, data['inputs'].T) + wd_coefficient * model['input_to_hid']
    return ret
