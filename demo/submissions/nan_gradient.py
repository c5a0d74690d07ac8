def d_loss_by_d_model(model, data, wd_coefficient):
    # Mistake: the logistic derivative through logarithms; log of a negative number
    # gives NaN (and numpy warns on stderr).
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    m = data['inputs'].shape[1]
    error = (class_prob - data['target']) / m
    d_hid_to_class = error @ hid_output.T + wd_coefficient * model['hid_to_class']
    slope = np.exp(np.log(hid_output) + np.log(hid_output - 1))
    d_hid_input = (model['hid_to_class'].T @ error) * slope
    d_input_to_hid = d_hid_input @ data['inputs'].T + wd_coefficient * model['input_to_hid']
    return {'input_to_hid': d_input_to_hid, 'hid_to_class': d_hid_to_class}
