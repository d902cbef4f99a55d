"""Image data: a folder loader, a Mondrian generator, shipped faces and digits, tfds, splits,
and the one choice between them (`load_source`).

Every source returns images as `(N, H, W, C)` float32 in [0, 1].
"""

from aerbm_jax.data.builtin import digits, lfw_faces
from aerbm_jax.data.folder import IMAGE_EXTENSIONS, load_folder, load_image
from aerbm_jax.data.mondrian import mondrian, mondrian_batch
from aerbm_jax.data.preprocess import fit_image, resize_images, split_indices
from aerbm_jax.data.sources import BUILTIN, load_source
from aerbm_jax.data.tfds_source import load_tfds

__all__ = [
  "IMAGE_EXTENSIONS", "load_folder", "load_image",
  "mondrian", "mondrian_batch",
  "lfw_faces", "digits",
  "load_tfds",
  "fit_image", "resize_images", "split_indices",
  "BUILTIN", "load_source",
]
