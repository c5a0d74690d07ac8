# After a correct d_loss_by_d_model (the model answer), cells that call these run into limits.


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
