# An honest answer written for another version of the assignment: data['targets'].
def d_loss_by_d_model(model, data, wd_coefficient):
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    error = (class_prob - data['targets']) / data['inputs'].shape[1]
    return {'input_to_hid': model['input_to_hid'] * 0, 'hid_to_class': error @ hid_output.T}
