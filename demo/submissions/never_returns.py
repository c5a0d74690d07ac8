def d_loss_by_d_model(model, data, wd_coefficient):
    # Mistake: a loop over the cases whose counter is never increased.
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    d_hid_to_class = wd_coefficient * model['hid_to_class']
    case = 0
    while case < data['inputs'].shape[1]:
        error = class_prob[:, case] - data['target'][:, case]
        d_hid_to_class = d_hid_to_class + np.outer(error, hid_output[:, case])
    return {'input_to_hid': 0 * model['input_to_hid'], 'hid_to_class': d_hid_to_class}
