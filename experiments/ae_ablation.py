"""The autoencoder ablation behind docs/mondrian.md: one change at a time on Mondrian.

Trains a conv autoencoder shaped like `aerbm_jax.autoencoder` (stride-2 3x3 convolutions, a
dense sigmoid code, `UpConv` stages back) on the `mondrian` experiment's split (175 training,
25 held-out images of 128x128x3), with knobs the library does not expose, so that each
variant differs from the baseline in one setting, and prints the held-out MSE as it goes.
Arguments are key=value pairs:

  features=16,32,64,128  channels per stage (the stages run down to features' length)
  aug=flipshift|dihedral|dihedralshift|dihedralperm|dihedralshiftperm|none
  steps=600 bs=16 lr=2e-3 sched=const|cos latent=128 norm=none|gn act=relu|lrelu|gelu|silu
  loss=mse|l1 coord=0|1|2 (CoordConv channels in the decoder, 2: encoder too) blocks=0
  warmup=0 (Adam warm-up updates) shiftdiv=16 (circular shifts up to side/shiftdiv)
  wd=0 (AdamW's decoupled weight decay) mix=0 (probability of joining two compositions
  along a random cut with a black line, as the generator splits a canvas)
  code=sigmoid|ln (LayerNorm on the code's pre-activations before the sigmoid)
  mlp=0 (a hidden dense layer of this width, with the activation, on each side of the code)
  rank=0 (that many rank-1 terms, row profile x column profile x colour, added to the output
  logits) prof=box|free (profiles as soft intervals, or free vectors) temp=1 cscale=1
  axis=0|1 (the first stage's map averaged along rows and along columns, fed to the code too)

  python experiments/ae_ablation.py steps=1500 features=16,32,64 aug=dihedralshift
"""
import sys, time, json
from functools import partial
import numpy as np, jax, jax.numpy as jnp, flax.linen as nn, optax
from aerbm_jax.data.mondrian import mondrian_batch
from aerbm_jax.data.preprocess import split_indices
from aerbm_jax.layers import UpConv, lecun_normal

args = dict(a.split("=") for a in sys.argv[1:])
feat = tuple(int(f) for f in args.get("features", "16,32,64,128").split(","))
blocks = int(args.get("blocks", 0)); aug = args.get("aug", "flipshift")
steps = int(args.get("steps", 600)); bs = int(args.get("bs", 16)); lr = float(args.get("lr", 2e-3))
sched = args.get("sched", "const"); latent = int(args.get("latent", 128))
norm = args.get("norm", "none"); act = args.get("act", "relu"); loss_kind = args.get("loss", "mse")
size = int(args.get("size", 128)); n = int(args.get("n", 200))
imgs = mondrian_batch(n, size, seed=0)
tr, ho = split_indices([f"mondrian-0-{i}" for i in range(n)], 0.15)
xtr, xho = np.asarray(imgs[tr]), jnp.asarray(imgs[ho])  # batches gathered on the host
conv = partial(nn.Conv, kernel_size=(3, 3), padding="SAME", kernel_init=lecun_normal)
A = {"relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu, "lrelu": lambda x: nn.leaky_relu(x, 0.2)}[act]
def N(x, f):
  if norm == "gn": return nn.GroupNorm(num_groups=min(8, f))(x)
  return x
def up(x): return jnp.repeat(jnp.repeat(x, 2, 1), 2, 2)
coord = int(args.get("coord", 0)); code = args.get("code", "sigmoid")
mlp = int(args.get("mlp", 0)); rank = int(args.get("rank", 0)); prof = args.get("prof", "box")
axis = int(args.get("axis", 0)); temp = float(args.get("temp", 1.0)); cscale = float(args.get("cscale", 1.0))
def C(x):
  if not coord: return x
  b, h, w, _ = x.shape
  yy, xx = jnp.meshgrid(jnp.linspace(-1, 1, h), jnp.linspace(-1, 1, w), indexing="ij")
  g = jnp.broadcast_to(jnp.stack([yy, xx], -1)[None], (b, h, w, 2)).astype(x.dtype)
  return jnp.concatenate([x, g], -1)
class AE(nn.Module):
  @nn.compact
  def __call__(self, x):
    pooled = []
    for f in feat:
      x = A(N(conv(f, strides=(2, 2))(C(x) if coord > 1 else x), f))
      for _ in range(blocks):
        x = x + conv(f)(A(N(conv(f)(x), f)))
      if axis and not pooled:  # the first stage's map averaged along each axis
        pooled = [x.mean(2).reshape(x.shape[0], -1), x.mean(1).reshape(x.shape[0], -1)]
    s = x.shape
    a = jnp.concatenate([x.reshape(s[0], -1)] + pooled, -1)
    if mlp:
      a = A(nn.Dense(mlp, kernel_init=lecun_normal)(a))
    a = nn.Dense(latent, kernel_init=lecun_normal)(a)
    z = nn.sigmoid(nn.LayerNorm()(a) if code == "ln" else a)
    if mlp:
      z = A(nn.Dense(mlp, kernel_init=lecun_normal)(z))
    x = A(nn.Dense(s[1]*s[2]*s[3], kernel_init=lecun_normal)(z)).reshape(s)
    for i, f in enumerate(reversed(feat)):
      for _ in range(blocks):
        x = x + conv(f)(A(N(conv(f)(x), f)))
      nxt = feat[::-1][i+1] if i + 1 < len(feat) else feat[0]
      if i + 1 < len(feat):
        x = A(N(UpConv(nxt)(C(x)), nxt))
    logits = UpConv(3)(C(x))
    if rank:
      # A sum of `rank` rank-1 terms added to the logits: row profile x column profile x
      # colour, one batched matmul. prof=box: each profile is the difference of two
      # cumulative softmaxes over positions (a soft interval [start, end)).
      B, H, W = x.shape[0], logits.shape[1], logits.shape[2]
      def profile(n):
        if prof == "free":
          return nn.Dense(rank * n, kernel_init=lecun_normal)(z).reshape(B, rank, n)
        a = nn.Dense(2 * rank * n, kernel_init=lecun_normal)(z).reshape(B, rank, 2, n)
        cdf = jnp.cumsum(jax.nn.softmax(a * temp, -1), -1)
        return cdf[:, :, 0] - cdf[:, :, 1]
      r, c = profile(H), profile(W)
      col = nn.Dense(rank * 3, kernel_init=lecun_normal)(z).reshape(B, rank, 3) * cscale
      cm = (c[..., None] * col[:, :, None, :]).reshape(B, rank, W * 3)
      logits = logits + jnp.einsum("bkh,bkx->bhx", r, cm).reshape(B, H, W, 3)
    return nn.sigmoid(logits)
m = AE()
params = jax.jit(m.init)(jax.random.key(1), xtr[:1])
print("params", sum(p.size for p in jax.tree.leaves(params)))
warmup = int(args.get("warmup", 0)); wd = float(args.get("wd", 0))
shiftdiv = int(args.get("shiftdiv", 16)); mix = float(args.get("mix", 0))
if sched == "cos":
  sch = optax.warmup_cosine_decay_schedule(lr*0.1, lr, min(100, steps//10), steps, lr*0.02)
elif warmup:
  sch = optax.linear_schedule(lr / warmup, lr, warmup)
else:
  sch = lr
opt = optax.adamw(sch, weight_decay=wd) if wd else optax.adam(sch)
ost = opt.init(params)
def augment(key, x):
  k1, k2, k3 = jax.random.split(key, 3)
  if aug == "flipshift" or aug.startswith("dihedral"):
    f = jax.random.bernoulli(k1, 0.5, (x.shape[0],))
    x = jnp.where(f[:, None, None, None], x[:, :, ::-1], x)
  if aug.startswith("dihedral"):
    f = jax.random.bernoulli(k2, 0.5, (x.shape[0],))
    x = jnp.where(f[:, None, None, None], x[:, ::-1], x)
    t = jax.random.bernoulli(k3, 0.5, (x.shape[0],))
    x = jnp.where(t[:, None, None, None], jnp.swapaxes(x, 1, 2), x)
  if "perm" in aug:
    perms = jnp.array([[0,1,2],[0,2,1],[1,0,2],[1,2,0],[2,0,1],[2,1,0]])
    pi = perms[jax.random.randint(jax.random.fold_in(k1, 3), (x.shape[0],), 0, 6)]
    x = jnp.take_along_axis(x, pi[:, None, None, :], axis=3)
  if mix:
    # Join image i (before the cut) and image i+1 (after it) along a random row or column
    # cut, with a black line over the seam 1 or 3 pixels wide: a split of a canvas.
    km, ka, kc, kw = jax.random.split(jax.random.fold_in(k2, 11), 4)
    side = x.shape[1]; pos = jnp.arange(side)
    cut = jax.random.randint(kc, (x.shape[0], 1), side // 8, side - side // 8)
    half = jax.random.randint(kw, (x.shape[0], 1), 1, 3)
    mask = (pos[None] >= cut).astype(x.dtype)  # (B, S): after the cut
    line = (jnp.abs(pos[None] - cut) < half).astype(x.dtype)
    rows = jax.random.bernoulli(ka, 0.5, (x.shape[0], 1, 1, 1))
    m2 = jnp.where(rows, mask[:, :, None, None], mask[:, None, :, None])
    l2 = jnp.where(rows, line[:, :, None, None], line[:, None, :, None])
    y = x * (1 - m2) + jnp.roll(x, 1, axis=0) * m2
    y = y * (1 - l2) + 0.05 * l2
    on = jax.random.bernoulli(km, mix, (x.shape[0], 1, 1, 1))
    x = jnp.where(on, y, x)
  if aug in ("flipshift",) or "shift" in aug:
    lim = max(1, x.shape[1] // shiftdiv)
    sh = jax.random.randint(jax.random.fold_in(k3, 7), (x.shape[0], 2), -lim, lim + 1)
    x = jax.vmap(lambda i, s: jnp.roll(i, s, axis=(0, 1)))(x, sh)
  return x
def lossf(p, b):
  r = m.apply(p, b)
  if loss_kind == "mse": return jnp.mean((r - b) ** 2)
  return jnp.mean(jnp.abs(r - b))
@jax.jit  # not donated: donation made the library's step about 1.25x slower on the CPU
def step(p, o, b, k):
  b = augment(k, b)
  l, g = jax.value_and_grad(lossf)(p, b)
  u, o = opt.update(g, o, p)
  return optax.apply_updates(p, u), o, l
@jax.jit
def ev(p, x): return jnp.mean((m.apply(p, x) - x) ** 2)
key = jax.random.key(0)
t0 = time.time(); nb = len(xtr) // bs; out = []
for s in range(steps):
  e, i = divmod(s, nb)
  if i == 0: perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, e), len(xtr)))
  params, ost, l = step(params, ost, xtr[perm[i*bs:(i+1)*bs]], jax.random.fold_in(key, 10**6 + s))
  if (s + 1) % max(1, steps // 8) == 0 or s == steps - 1:
    h = float(ev(params, xho)); t = time.time() - t0
    print(f"step {s+1} t={t:.0f}s loss={float(l):.4f} held={h:.4f}", flush=True); out.append((s+1, t, h))
print("RESULT", json.dumps(dict(args=args, final=out[-1])))
if "save" in args:
  import pickle; pickle.dump(jax.device_get(params), open(args["save"], "wb"))
  np.save(args["save"] + ".rec.npy", np.asarray(m.apply(params, xho[:8])))
