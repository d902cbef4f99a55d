"""A user's folder of photos, offline: random crops of the colour photographs bundled with
scikit-image, written as JPEG files to a folder, then the recipe on that folder.

The crops (96 by default) come from the bundled colour photos (astronaut, coffee, chelsea,
rocket, hubble_deep_field, immunohistochemistry, retina, colorwheel), each a random square
of 1/4 to 3/4 of the photo's shorter side. The run is what a user gets from
`aerbm experiment faces --data FOLDER`: the folder's images at 128x128x3.

  python experiments/photo_folder.py [--n 96] [--folder /tmp/photos] [--out docs/photos]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from aerbm_jax.configs import make_config
from aerbm_jax.experiment import run_experiment

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry", "retina", "colorwheel")


def write_crops(folder: Path, n: int, seed: int = 0) -> None:
  """`n` random square crops of the bundled photos, as `folder/crop-XXX.jpg`."""
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  photos = [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]
  for i in range(n):
    img = photos[i % len(photos)]
    h, w = img.shape[:2]
    side = int(rng.uniform(0.25, 0.75) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    Image.fromarray(img[y : y + side, x : x + side]).save(folder / f"crop-{i:03d}.jpg",
                                                          quality=92)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--n", type=int, default=96)
  ap.add_argument("--folder", default="/tmp/aerbm_photos")
  ap.add_argument("--out", default=str(Path(__file__).parents[1] / "docs" / "photos"))
  args = ap.parse_args()
  folder = Path(args.folder)
  write_crops(folder, args.n)
  run_experiment(make_config("faces", folder=True, data=str(folder)), args.out)


if __name__ == "__main__":
  main()
