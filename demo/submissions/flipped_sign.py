def d_loss_by_d_model(model, data, wd_coefficient):
    # Mistake: target - class_prob, so both layers point uphill (weight decay is right).
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    m = data['inputs'].shape[1]
    error = (data['target'] - class_prob) / m
    d_hid_to_class = error @ hid_output.T
    d_hid_input = (model['hid_to_class'].T @ error) * hid_output * (1 - hid_output)
    d_input_to_hid = d_hid_input @ data['inputs'].T
    return {'input_to_hid': d_input_to_hid + wd_coefficient * model['input_to_hid'],
            'hid_to_class': d_hid_to_class + wd_coefficient * model['hid_to_class']}
