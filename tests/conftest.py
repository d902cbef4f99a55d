"""Shared helpers: random tiny RBMs, brute-force enumeration of them in float64 numpy."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import shutil
import tempfile

# One compilation cache for the whole session, subprocesses included (they inherit the
# environment): the quick experiment runs in the CLI, reliability and CI-study tests compile
# the same programs. Set before JAX is imported, so JAX reads it at import. It starts empty in
# every session, like a clean clone, and is deleted at the end.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="aerbm-test-xla-")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import numpy as np
import pytest


def random_bernoulli(seed, n: int, m: int, scale: float = 1.0, bias_scale: float = 0.5):
  """A BernoulliRBM with `W ~ N(0, scale^2)` and biases `~ N(0, bias_scale^2)`, float32.

  `seed`: an int, or a numpy Generator to draw from (it continues for the caller's own draws).
  """
  import jax.numpy as jnp

  from aerbm_jax import rbm

  r = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
  return rbm.BernoulliRBM(
    W=jnp.asarray(r.normal(0, scale, (n, m)), jnp.float32),
    b=jnp.asarray(r.normal(0, bias_scale, n), jnp.float32),
    c=jnp.asarray(r.normal(0, bias_scale, m), jnp.float32),
  )


def tiny_problem(seed=0, n=6, m=3):
  """A tiny Bernoulli RBM and 40 rows of two-prototype binary data for it, float32."""
  r = np.random.default_rng(seed)
  p = random_bernoulli(r, n, m, scale=0.5, bias_scale=0.3)
  proto = r.random((2, n)) < 0.5
  data = np.where(r.random((40, n)) < 0.9, proto[r.integers(0, 2, 40)], ~proto[0])
  return p, data.astype(np.float32)


def exact_nll_grad(p, data):
  """The exact gradient of the mean negative log-likelihood of `data`, by enumeration."""
  import jax

  from aerbm_jax import partition

  def nll(q):
    return -partition.log_likelihood(q, data, partition.exact_log_partition(q))
  return jax.grad(nll)(p)


def flat(tree):
  """A pytree's leaves, flattened and joined."""
  return np.concatenate([np.ravel(x) for x in tree])


def exact_sum_model(n: int = 256, m: int = 160):
  """A Bernoulli model whose every product of binary states sums exactly in float32 (W and b
  on a grid of 1/64), so that sweeps whose products sum in another order draw the same."""
  import jax
  import jax.numpy as jnp

  from aerbm_jax import rbm

  grid = lambda x: jnp.round(x * 64) / 64  # noqa: E731
  p = rbm.init(jax.random.key(1), n, m, weight_scale=0.3)
  return p._replace(W=grid(p.W), b=grid(jax.random.normal(jax.random.key(2), (n,))))


def traced_run(p, batch: int, bits: int):
  """`sampling.run` of `batch` random chains of `p` for 4 sweeps, with a trace of the states'
  and hidden probabilities' first columns: `(final_state, trace)`."""
  import jax

  from aerbm_jax import sampling

  state = sampling.init(p, sampling.random_visible(jax.random.key(3), p, batch))
  trace = lambda s, info: (s.v[:, :5], info.hidden_prob[:, :5])  # noqa: E731
  return jax.jit(lambda k: sampling.run(k, state, p, 4, uniform_bits=bits,
                                        transform=trace))(jax.random.key(4))


def dot_count(fn, *args) -> int:
  """How many matrix products `fn(*args)` traces (a scan's body counted once). Pass a new
  function for each trace: traces are cached by function."""
  import jax

  return str(jax.make_jaxpr(fn)(*args)).count("dot_general")


def all_states(n: int) -> np.ndarray:
  """Every binary vector of length n, (2^n, n) float64."""
  return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def bernoulli_joint_energy(W, b, c, v, h):
  """E(v, h) for every pair: (len(v), len(h)) float64."""
  W, b, c = (np.asarray(x, np.float64) for x in (W, b, c))
  return -(v @ W @ h.T) - (v @ b)[:, None] - (h @ c)[None, :]


def exact_visible_probs(params) -> np.ndarray:
  """p(v) over all 2^n visible states of a tiny Bernoulli RBM, by brute force."""
  W = np.asarray(params.W, np.float64)
  v, h = all_states(W.shape[0]), all_states(W.shape[1])
  logits = -bernoulli_joint_energy(W, params.b, params.c, v, h)
  log_pv = np.logaddexp.reduce(logits, axis=1)
  log_pv -= np.logaddexp.reduce(log_pv)
  return np.exp(log_pv)


def state_index(v: np.ndarray) -> np.ndarray:
  """Index of binary rows in the order of `all_states` (first unit is the top bit)."""
  n = v.shape[1]
  return (np.asarray(v).astype(np.int64) * (2 ** np.arange(n - 1, -1, -1))).sum(axis=1)


def total_variation(samples: np.ndarray, probs: np.ndarray) -> float:
  counts = np.bincount(state_index(samples), minlength=len(probs))
  return 0.5 * float(np.abs(counts / counts.sum() - probs).sum())


def tv_tolerance(probs: np.ndarray, n_samples: int, slack: float = 0.01) -> float:
  """Bound on the TV of an exact sampler's empirical distribution.

  E[TV] <= 1/2 sum_i sqrt(p_i (1 - p_i) / N) (Jensen); TV moves by at most 1/N per sample, so
  McDiarmid gives P(TV > E[TV] + t) <= exp(-2 N t^2): for N = 50,000 and t = 0.01, e^-10.
  """
  return 0.5 * float(np.sqrt(probs * (1 - probs) / n_samples).sum()) + slack


@pytest.fixture(scope="session")
def mondrian_run(tmp_path_factory):
  """A finished `aerbm experiment mondrian --quick` run directory, shared by the session."""
  from aerbm_jax import cli

  out = tmp_path_factory.mktemp("runs") / "mondrian"
  assert cli.main(["experiment", "mondrian", "--quick", "--out", str(out)]) == 0
  return out


@pytest.fixture
def rng():
  return np.random.default_rng(1234)


@contextlib.contextmanager
def compiled_programs():
  """The names of the XLA programs JAX compiles (or loads from a compilation cache) inside the
  block, e.g. `jit(pairwise_sq_dists)`, or `jit(add)` for an operation run on its own."""
  names: list[str] = []

  class Names(logging.Handler):
    def emit(self, record):
      message = record.getMessage()
      if message.startswith("Compiling "):
        names.append(message.split()[1])

  logger, handler = logging.getLogger("jax._src.interpreters.pxla"), Names()
  saved = logger.level, logger.propagate
  logger.addHandler(handler)
  logger.setLevel(logging.DEBUG)
  logger.propagate = False  # the debug records stay here
  try:
    yield names
  finally:
    logger.removeHandler(handler)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
