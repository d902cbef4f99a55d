"""Pictures: the image grid's layout and the training-curve plot."""

import numpy as np
from PIL import Image

from aerbm_jax import plots


def test_image_grid_places_each_image_in_its_cell():
  images = np.zeros((5, 4, 3, 1), np.float32)
  for i in range(5):
    images[i] = i / 4
  grid = plots.image_grid(images, cols=3, pad=1)
  assert grid.shape == (2 * 5 + 1, 3 * 4 + 1, 1) and grid.dtype == np.uint8
  for i in range(5):
    r, c = divmod(i, 3)
    cell = grid[1 + r * 5:1 + r * 5 + 4, 1 + c * 4:1 + c * 4 + 3]
    assert np.all(cell == round(i / 4 * 255)), i
  assert np.all(grid[0] == 255) and np.all(grid[6:, 9:] == 255)  # padding and the empty cell
  assert plots.image_grid(np.full((1, 2, 2, 3), 2.0)).max() == 255  # clipped to [0, 1]


def test_save_grid_enlarges_small_images(tmp_path):
  path = plots.save_grid(tmp_path / "g.png", np.random.default_rng(0).random((4, 8, 8, 3)))
  img = Image.open(path)
  assert img.mode == "RGB" and img.size[0] >= 2 * 64


def test_save_curves_skips_missing_points(tmp_path):
  curve = np.array([1.0, np.nan, 0.5, 0.25])
  path = plots.save_curves(tmp_path / "c.png", {"a": {"train": curve}, "b": {"x": curve * 2}})
  img = Image.open(path)
  assert img.size[0] > img.size[1] > 100
