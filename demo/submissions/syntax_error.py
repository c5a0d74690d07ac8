def d_loss_by_d_model(model, data, wd_coefficient):
    # Mistake: a missing closing parenthesis.
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    m = data['inputs'].shape[1]
    error = (class_prob - data['target'] / m
    d_hid_to_class = error @ hid_output.T + wd_coefficient * model['hid_to_class']
    return {'input_to_hid': 0 * model['input_to_hid'], 'hid_to_class': d_hid_to_class}
