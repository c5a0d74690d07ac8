def d_loss_by_d_model(model, data, wd_coefficient):
    # Mistake: the sum over the cases instead of the average (no division by m).
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    error = class_prob - data['target']
    d_hid_to_class = error @ hid_output.T + wd_coefficient * model['hid_to_class']
    d_hid_input = (model['hid_to_class'].T @ error) * hid_output * (1 - hid_output)
    d_input_to_hid = d_hid_input @ data['inputs'].T + wd_coefficient * model['input_to_hid']
    return {'input_to_hid': d_input_to_hid, 'hid_to_class': d_hid_to_class}
