def d_loss_by_d_model(model, data, wd_coefficient):
    # Mistake: input_to_hid comes out transposed, 256 x n_hid.
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    m = data['inputs'].shape[1]
    error = (class_prob - data['target']) / m
    d_hid_to_class = error @ hid_output.T + wd_coefficient * model['hid_to_class']
    d_hid_input = (model['hid_to_class'].T @ error) * hid_output * (1 - hid_output)
    d_input_to_hid = data['inputs'] @ d_hid_input.T + wd_coefficient * model['input_to_hid'].T
    return {'input_to_hid': d_input_to_hid, 'hid_to_class': d_hid_to_class}
