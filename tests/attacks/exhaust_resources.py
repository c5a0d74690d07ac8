# After a correct d_loss_by_d_model (the model answer), cells that call these run into limits.


def exhaust_memory():
    # Large zeroed arrays, as a learner's would be: the address space is taken at once, the
    # pages only when written, so the limit is reached in no time however slow the machine
    # (a bytearray writes every byte, which on a loaded machine outlasted the cell's limit).
    import numpy as np

    hoard = []
    while True:
        hoard.append(np.zeros(512 * 2**20, dtype=np.uint8))


def fill_disk():
    for number in range(1000):
        with open(f"filler-{number}.bin", "wb") as stream:
            for _ in range(4):
                stream.write(bytes(16 * 2**20))


def hang():
    while True:
        pass
