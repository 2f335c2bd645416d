"""The synthetic BIS5k generator writes the published layout, binary masks of the tiles' glands."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from app.datasets.bis5k.synth import generate_bis5k


def test_layout_names_sizes_and_binary_masks(tmp_path):
    out = generate_bis5k(tmp_path, n_train=7, n_test=5, seed=1)
    train = sorted(p.name for p in (tmp_path / "formal_train" / "images").iterdir())
    test = sorted(p.name for p in (tmp_path / "formal_test" / "images").iterdir())
    assert len(train) == 7 and all(re.fullmatch(r"bis_he_id\d+\.png", n) for n in train)
    assert len(test) == 5 and all(re.fullmatch(r"bis_val_id\d+\.png", n) for n in test)
    assert sorted(p.name for p in (tmp_path / "formal_train" / "masks").iterdir()) == train
    assert sorted(p.name for p in (tmp_path / "formal_test" / "masks").iterdir()) == test
    sizes = set()
    for s in out.images:
        with Image.open(tmp_path / s.image) as im, Image.open(tmp_path / s.mask) as mk:
            assert im.format == "PNG" and im.mode == "RGB"
            assert mk.format == "PNG" and mk.mode == "L" and mk.size == im.size
            mask = np.asarray(mk)
        assert set(np.unique(mask)) <= {0, 255}
        assert s.foreground == int((mask > 0).sum()) and (s.width, s.height) == im.size
        sizes.add(im.size)
    assert len(sizes) == 3
    shares = [s.foreground / (s.width * s.height) for s in out.images]
    assert min(shares) == 0 and max(shares) > 0.5  # empty masks and mostly-tumour tiles both occur


def test_masks_cover_the_glands(tmp_path):
    """Near-white lumen occurs only inside glands, so inside the mask; stroma is pink outside it."""
    out = generate_bis5k(tmp_path, n_train=6, n_test=0, seed=4)
    for s in out.images:
        rgb = np.asarray(Image.open(tmp_path / s.image)).astype(int)
        fg = np.asarray(Image.open(tmp_path / s.mask)) > 0
        lumen = rgb.min(axis=2) > 225
        if fg.any():
            assert lumen[fg].any()
        assert lumen[~fg].mean() < 0.002
        stroma = rgb[~fg]
        assert (stroma[:, 0] > stroma[:, 1]).mean() > 0.9  # eosin pink: red above green
        purple = (rgb[..., 2] > rgb[..., 1] + 40) & (rgb.sum(axis=2) < 360)  # haematoxylin nuclei
        assert purple[~fg].any()


def test_same_seed_same_bytes(tmp_path):
    a = generate_bis5k(tmp_path / "a", n_train=2, n_test=1, seed=9)
    b = generate_bis5k(tmp_path / "b", n_train=2, n_test=1, seed=9)
    c = generate_bis5k(tmp_path / "c", n_train=2, n_test=1, seed=10)
    for x, y, z in zip(a.images, b.images, c.images, strict=True):
        assert (a.root / x.image).read_bytes() == (b.root / y.image).read_bytes()
        assert (a.root / x.image).read_bytes() != (c.root / z.image).read_bytes()
