import numpy as np
import pytest

from app.imaging.labels import decode_label_png, encode_label_png


@pytest.mark.parametrize("high", [1, 25, 255, 300])
def test_label_png_round_trip(high):
    rng = np.random.default_rng(high)
    labels = rng.integers(0, high + 1, size=(37, 53))
    decoded = decode_label_png(encode_label_png(labels))
    assert decoded.shape == (37, 53)
    assert np.array_equal(decoded, labels)
    assert decoded.dtype == (np.uint16 if high > 255 else np.uint8)


def test_label_png_refuses_bad_shapes_and_values():
    with pytest.raises(ValueError, match="2-D"):
        encode_label_png(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="0…65535"):
        encode_label_png(np.full((2, 2), -1))
