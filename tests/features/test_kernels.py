import numpy as np

from tocsin.features.kernels import grow


def test_grow_doubles_and_keeps_contents():
    a = np.arange(6, dtype=np.int64).reshape(3, 2)
    grown = grow(a, 4, -1)
    assert grown.shape == (6, 2) and grown[:3].tolist() == a.tolist() and (grown[3:] == -1).all()
    assert grow(grown, 5, -1) is grown
    assert grow(np.empty(0), 1, 0.0).shape == (16,)
