def d_loss_by_d_model(model, data, wd_coefficient):
    # Mistake: the error is sent back through hid_to_class but not through the logistic.
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    m = data['inputs'].shape[1]
    error = (class_prob - data['target']) / m
    d_hid_to_class = error @ hid_output.T + wd_coefficient * model['hid_to_class']
    d_hid_input = model['hid_to_class'].T @ error
    d_input_to_hid = d_hid_input @ data['inputs'].T + wd_coefficient * model['input_to_hid']
    return {'input_to_hid': d_input_to_hid, 'hid_to_class': d_hid_to_class}
