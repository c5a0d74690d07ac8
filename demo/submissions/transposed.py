def d_loss_by_d_model(model, data, wd_coefficient):
    # Mistake: hid_to_class is transposed (hidden units x classes). With 10 hidden
    # units its shape is (10, 10) anyway, so only the values give it away.
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    m = data['inputs'].shape[1]
    error = (class_prob - data['target']) / m
    d_hid_to_class = hid_output @ error.T + wd_coefficient * model['hid_to_class'].T
    d_hid_input = (model['hid_to_class'].T @ error) * hid_output * (1 - hid_output)
    d_input_to_hid = d_hid_input @ data['inputs'].T + wd_coefficient * model['input_to_hid']
    return {'input_to_hid': d_input_to_hid, 'hid_to_class': d_hid_to_class}
