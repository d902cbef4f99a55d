"""scikit-learn estimators: `BernoulliRBM` (a drop-in for sklearn's) and `GaussianRBM`.

`BernoulliRBM` takes scikit-learn's constructor arguments and has its attributes and methods
(`fit`, `partial_fit`, `transform`, `gibbs`, `score_samples` as the pseudo-likelihood,
`components_`, `intercept_hidden_`, `intercept_visible_`, `h_samples_`,
`get_feature_names_out`), takes dense or sparse input and keeps float32 as float32. Training
runs aerbm_jax's compiled epochs (`epochs.epochs`: PCD-1 by default, as scikit-learn trains);
the extras are keyword arguments: `method`, `k`, `centered`, `momentum`, and `score`, the
mean log-likelihood, exact when the model is small enough and by AIS otherwise.
`GaussianRBM` is the same for real-valued features (standardise them first, e.g. with
`StandardScaler`); its `score_samples` is the log-density.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from aerbm_jax import epochs, partition, rbm

__all__ = ["BernoulliRBM", "GaussianRBM"]


def _dense(X) -> np.ndarray:
  return X.toarray() if sp.issparse(X) else np.asarray(X)


class _RBMEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
  """What both estimators share: training on aerbm_jax's compiled epochs, and the attributes."""

  _visible = "bernoulli"

  def _params(self) -> rbm.RBM:
    """The fitted model as an aerbm_jax pytree (float32)."""
    W = jnp.asarray(self.components_.T, jnp.float32)
    b = jnp.asarray(self.intercept_visible_, jnp.float32)
    c = jnp.asarray(self.intercept_hidden_, jnp.float32)
    if self._visible == "gaussian":
      return rbm.GaussianRBM(W, b, c, jnp.asarray(np.log(self.sigma_), jnp.float32))
    return rbm.BernoulliRBM(W, b, c)

  def _config(self, n_rows: int, n_epochs: int) -> epochs.TrainConfig:
    return epochs.TrainConfig(
      method=self.method, k=self.k, epochs=max(n_epochs, 1),
      batch_size=min(self.batch_size, n_rows), learning_rate=float(self.learning_rate),
      momentum=float(self.momentum), weight_decay=0.0, centered=self.centered,
      n_persistent=self.batch_size, exact_ll=False, progress=False,
      **self._extra_config())

  def _extra_config(self) -> dict:
    return {}

  def _init_params(self, X: np.ndarray, rng: np.random.RandomState) -> rbm.RBM:
    W = rng.normal(0, 0.01, (X.shape[1], self.n_components)).astype(np.float32)
    p = rbm.init(jax.random.key(0), X.shape[1], self.n_components, visible=self._visible,
                 data=X if self._visible == "gaussian" else None)
    p = p._replace(W=jnp.asarray(W))
    if self._visible == "gaussian":  # a feature without spread (or one row) starts at sigma 1
      std = np.std(X, axis=0)
      p = p._replace(log_sigma=jnp.asarray(np.where(std > 1e-3, np.log(np.maximum(std, 1e-3)),
                                                    0.0), jnp.float32))
    return p

  def _run(self, state, x: jax.Array, n_epochs: int, rng, start: int = 0,
           cfg: epochs.TrainConfig | None = None, verbose: bool | None = None):
    """`n_epochs` compiled epochs from `state` (an `epochs.TrainState`) with `cfg` (default:
    the estimator's); the new state. Divergence is a FloatingPointError."""
    cfg = self._config(x.shape[0], n_epochs) if cfg is None else cfg
    verbose = self.verbose if verbose is None else verbose
    key = jax.random.key(rng.randint(2**31 - 1))
    calls = [1] * n_epochs if verbose else [n_epochs]
    begin = time.time()
    for i, n in enumerate(c for c in calls if c):
      out = epochs.epochs(key, start + i, state, x, None, cfg, n, False)
      if not bool(np.all(np.asarray(out.ok))):
        raise FloatingPointError(f"{type(self).__name__} training diverged: an update would "
                                 f"have made the parameters NaN or inf; lower learning_rate "
                                 f"(now {self.learning_rate})")
      state = out.state
      if verbose:
        self._store(state, x.dtype)
        print(f"[{type(self).__name__}] Iteration {i + 1}, pseudo-likelihood = "
              f"{self.score_samples(np.asarray(x)).mean():.2f}, time = {time.time() - begin:.2f}s")
        begin = time.time()
    return state

  def _store(self, state, dtype, x=None) -> None:
    """The fitted attributes, as numpy in the input's float dtype. `h_samples_` are hidden
    samples: PCD's drawn from its chains' `p(h | v)`; CD keeps no persistent chains, so its are
    drawn at the first `batch_size` rows of `x`."""
    p = state.params
    self.components_ = np.asarray(p.W, dtype).T.copy()
    self.intercept_hidden_ = np.asarray(p.c, dtype)
    self.intercept_visible_ = np.asarray(p.b, dtype)
    if self._visible == "gaussian":
      self.sigma_ = np.exp(np.asarray(p.log_sigma, np.float64)).astype(dtype)
    rng = check_random_state(self.random_state)
    if self.method == "pcd" or x is None:
      p_h = np.asarray(state.chains.h, dtype)
      self.h_samples_ = (rng.uniform(size=p_h.shape) < p_h).astype(dtype)
    else:
      self.h_samples_ = self._sample_hiddens(np.asarray(x[:self.batch_size], dtype), rng)
    self._n_features_out = self.components_.shape[0]
    self._state = jax.tree.map(np.asarray, state)

  def fit(self, X, y=None):
    """Fit the model to `X: (n_samples, n_features)` for `n_iter` passes.

    Args:
      X: dense or sparse training data (in [0, 1] for BernoulliRBM).
      y: ignored.

    Returns:
      self.
    """
    X = validate_data(self, X, accept_sparse="csr", dtype=(np.float64, np.float32))
    self._check_params()
    dense = _dense(X)
    rng = check_random_state(self.random_state)
    x = jnp.asarray(dense, jnp.float32)
    params = self._init_params(dense, rng)
    cfg = self._config(x.shape[0], self.n_iter)
    _, state, _ = epochs.setup(jax.random.key(rng.randint(2**31 - 1)), params, x, cfg)
    state = self._run(state, x, self.n_iter, rng)
    self._store(state, X.dtype, dense)
    self._seen_ = self.n_iter
    return self

  def partial_fit(self, X, y=None):
    """One update on `X` as a single minibatch (the first call also initialises the model).

    Args:
      X: dense or sparse data.
      y: ignored.

    Returns:
      self.
    """
    first = not hasattr(self, "components_")
    X = validate_data(self, X, accept_sparse="csr", dtype=(np.float64, np.float32),
                      reset=first)
    self._check_params()
    if not hasattr(self, "random_state_"):
      self.random_state_ = check_random_state(self.random_state)
    dense = _dense(X)
    x = jnp.asarray(dense, jnp.float32)
    cfg = dataclasses.replace(self._config(x.shape[0], 1), batch_size=x.shape[0])
    if first:
      params = self._init_params(dense, self.random_state_)
      _, state, _ = epochs.setup(jax.random.key(self.random_state_.randint(2**31 - 1)),
                                 params, x, cfg)
      self._seen_ = 0
    else:
      state = jax.tree.map(jnp.asarray, self._state)
    state = self._run(state, x, 1, self.random_state_, start=self._seen_, cfg=cfg,
                      verbose=False)
    self._store(state, X.dtype, dense)
    self._seen_ += 1
    return self

  def _check_params(self) -> None:
    for name in ("n_components", "batch_size", "k"):
      v = getattr(self, name)
      if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not isinstance(self.n_iter, (int, np.integer)) or self.n_iter < 0:
      raise ValueError(f"n_iter must be an int >= 0, got {self.n_iter!r}")
    if not np.isfinite(self.learning_rate) or self.learning_rate <= 0:
      raise ValueError(f"learning_rate must be finite and > 0, got {self.learning_rate!r}")
    if self.method not in ("cd", "pcd"):
      raise ValueError(f"method must be 'cd' or 'pcd', got {self.method!r}")

  def transform(self, X):
    """`p(h = 1 | v = X)`, `(n_samples, n_components)`, in X's float dtype."""
    check_is_fitted(self)
    X = validate_data(self, X, accept_sparse="csr", reset=False, dtype=(np.float64, np.float32))
    return self._mean_hiddens(X)

  def _hidden_input(self, v):
    return v

  def _mean_hiddens(self, v):
    a = np.asarray(self._hidden_input(v) @ self.components_.T) + self.intercept_hidden_
    return 1.0 / (1.0 + np.exp(-a))

  def _sample_hiddens(self, v, rng):
    p = self._mean_hiddens(v)
    return (rng.uniform(size=p.shape) < p).astype(p.dtype)

  def gibbs(self, v):
    """One Gibbs step from visible values `v`: `h ~ p(h | v)`, then `v ~ p(v | h)`."""
    check_is_fitted(self)
    if not hasattr(self, "random_state_"):
      self.random_state_ = check_random_state(self.random_state)
    h = self._sample_hiddens(v, self.random_state_)
    return self._sample_visibles(h, self.random_state_)

  def score(self, X, y=None) -> float:
    """Mean log-likelihood of `X` in nats: exact with at most `partition.EXACT_UNITS` units to
    enumerate, else forward AIS (`ais_chains` x `ais_betas`); a log-density for GaussianRBM."""
    check_is_fitted(self)
    X = validate_data(self, X, accept_sparse="csr", reset=False, dtype=(np.float64, np.float32))
    res = partition.log_likelihood_estimate(
      jax.random.key(check_random_state(self.random_state).randint(2**31 - 1)), self._params(),
      _dense(X), n_chains=self.ais_chains, n_betas=self.ais_betas, reverse=False)
    return res.log_likelihood

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.sparse = True
    tags.transformer_tags.preserves_dtype = ["float64", "float32"]
    return tags


class BernoulliRBM(_RBMEstimator):
  """scikit-learn's `BernoulliRBM`, trained by aerbm_jax.

  Args:
    n_components: hidden units.
    learning_rate: SGD step size (the gradient is a minibatch mean, as in scikit-learn).
    batch_size: examples per minibatch, and the number of persistent chains.
    n_iter: passes over the training data.
    verbose: print the pseudo-likelihood after every pass.
    random_state: seed, RandomState or None.
    method: "pcd" (scikit-learn's) or "cd".
    k: Gibbs sweeps per update.
    centered: centred gradients (Melchior et al. 2016); False as in scikit-learn, None for
      aerbm_jax's default.
    momentum: SGD momentum (0 as in scikit-learn).
    ais_chains, ais_betas: AIS settings of `score` for models too large to enumerate.
  """

  def __init__(self, n_components=256, *, learning_rate=0.1, batch_size=10, n_iter=10,
               verbose=0, random_state=None, method="pcd", k=1, centered=False, momentum=0.0,
               ais_chains=100, ais_betas=14_500):
    self.n_components = n_components
    self.learning_rate = learning_rate
    self.batch_size = batch_size
    self.n_iter = n_iter
    self.verbose = verbose
    self.random_state = random_state
    self.method = method
    self.k = k
    self.centered = centered
    self.momentum = momentum
    self.ais_chains = ais_chains
    self.ais_betas = ais_betas

  def _sample_visibles(self, h, rng):
    p = 1.0 / (1.0 + np.exp(-(h @ self.components_ + self.intercept_visible_)))
    return (rng.uniform(size=p.shape) < p).astype(p.dtype)

  def _free_energy(self, v):
    a = np.asarray(v @ self.components_.T) + self.intercept_hidden_
    return -np.asarray(v @ self.intercept_visible_).ravel() - np.logaddexp(0, a).sum(axis=1)

  def score_samples(self, X):
    """The pseudo-likelihood of `X`, `(n_samples,)`, as scikit-learn computes it: the free
    energy of X against that of X with one random bit flipped per row."""
    check_is_fitted(self)
    v = validate_data(self, X, accept_sparse="csr", reset=False)
    rng = check_random_state(self.random_state)
    ind = (np.arange(v.shape[0]), rng.randint(0, v.shape[1], v.shape[0]))
    if sp.issparse(v):
      data = -2 * np.asarray(v[ind]).ravel() + 1
      v_ = v + sp.csr_matrix((data, ind), shape=v.shape)
    else:
      v_ = v.copy()
      v_[ind] = 1 - v_[ind]
    fe, fe_ = self._free_energy(v), self._free_energy(v_)
    return -v.shape[1] * np.logaddexp(0, -(fe_ - fe))


class GaussianRBM(_RBMEstimator):
  """An RBM with Gaussian visible units (learned per-feature `sigma_`) and binary hidden units.

  Args:
    n_components, learning_rate, batch_size, n_iter, verbose, random_state, method, k,
    momentum, ais_chains, ais_betas: as in `BernoulliRBM`.
    learn_sigma: learn the standard deviations (else they stay the data's).
    sigma_lr_scale: learning-rate factor for `log sigma`.
  """

  _visible = "gaussian"

  def __init__(self, n_components=256, *, learning_rate=0.01, batch_size=10, n_iter=10,
               verbose=0, random_state=None, method="pcd", k=1, momentum=0.0,
               learn_sigma=True, sigma_lr_scale=0.1, ais_chains=100, ais_betas=14_500):
    self.n_components = n_components
    self.learning_rate = learning_rate
    self.batch_size = batch_size
    self.n_iter = n_iter
    self.verbose = verbose
    self.random_state = random_state
    self.method = method
    self.k = k
    self.momentum = momentum
    self.learn_sigma = learn_sigma
    self.sigma_lr_scale = sigma_lr_scale
    self.ais_chains = ais_chains
    self.ais_betas = ais_betas

  centered = False  # a Gaussian RBM's visible units are standardised, not centred

  def _extra_config(self) -> dict:
    return {"learn_sigma": bool(self.learn_sigma), "sigma_lr_scale": float(self.sigma_lr_scale)}

  def _hidden_input(self, v):
    return _dense(v) / self.sigma_**2

  def _sample_visibles(self, h, rng):
    mean = h @ self.components_ + self.intercept_visible_
    return mean + self.sigma_ * rng.standard_normal(mean.shape).astype(mean.dtype)

  def score_samples(self, X):
    """`log p(x)`, `(n_samples,)`: `-F(x) - log Z`, log Z exact or by AIS (see `score`)."""
    check_is_fitted(self)
    X = validate_data(self, X, accept_sparse="csr", reset=False, dtype=(np.float64, np.float32))
    p = self._params()
    x = jnp.asarray(_dense(X), jnp.float32)
    if partition.is_enumerable(p):
      log_z = float(partition.exact_log_partition(p))
    else:
      key = jax.random.key(check_random_state(self.random_state).randint(2**31 - 1))
      log_z = float(partition.ais_log_partition(key, p, n_chains=self.ais_chains,
                                                n_betas=self.ais_betas).log_z)
    return (np.asarray(-rbm.free_energy(p, x), np.float64) - log_z).astype(X.dtype)
