"""What bounds the sampler at small batches: a 784 x 500 sweep against its two matmuls alone.

For aerbm_jax and numpy (`bench_peers.numpy_sampler`, as `tasks.py` runs it), times one full
block Gibbs sweep (matmuls, sigmoids, uniforms, Bernoulli draws) and the same loop with the
draws replaced by a threshold (matmuls, biases and sigmoids, the same in both), per sweep,
medians of 7 calls. Where the matmuls alone take as long as numpy's matmuls, the ratio to
numpy cannot exceed numpy's full sweep over our matmuls. Also times one sweep's random words
alone, from `rng.threefry2x32` and from JAX's own lowering of the same Threefry-2x32
(`threefry2x32_p`), and whole sweeps with each (at the batches, and at the `--ab-sizes`
given as NxMxBATCH), back to back; and, at the same sizes, whole sweeps with the chains
carried as two halves (`sampling.in_halves`) against the batch swept at once. Writes
`benchmarks/results/small-bound-<backend>-<cores>core.md` (or `<tag>.md` with `--tag`).

  python benchmarks/small_bound.py [--batches 2,8,32,64] [--sweeps N] [--ab-sizes 128x64x1024]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from unittest.mock import patch

import jax
import jax.numpy as jnp
from jax.extend.random import threefry2x32_p

from aerbm_jax import rbm, rng, row_blocks, sampling
from bench_peers import numpy_sampler
from bench_timing import machine_info, paired, timed

N_VISIBLE, N_HIDDEN = 784, 500
# The matmul shares: alternating rounds, and the least seconds of one timed sample.
SHARE_ROUNDS, SHARE_SAMPLE_S = 9, 0.1


def jax_hash(*args):
  """JAX's own lowering of Threefry-2x32, to compare `rng.threefry2x32` with."""
  return tuple(threefry2x32_p.bind(*args))


def _lasting(call, seconds: float = SHARE_SAMPLE_S) -> tuple:
  """`call` repeated to last about `seconds`, from one timed call: (the repeated call, n)."""
  call()
  t0 = time.perf_counter()
  call()
  n = max(1, math.ceil(seconds / max(time.perf_counter() - t0, 1e-6)))
  return (lambda: [call() for _ in range(n)]), n


def _per_unit(f, units: int) -> float:
  """Median seconds per unit of `f()`, which does `units` of them, over 7 calls."""
  return 1.0 / timed(f, units, 7)["rate"]


def measure(batch: int, sweeps: int) -> dict:
  """Microseconds per sweep: ours (full, matmuls only) and numpy's (full, matmuls only)."""
  params = rbm.init(jax.random.key(0), N_VISIBLE, N_HIDDEN)
  state = sampling.init(params, jnp.zeros((batch, N_VISIBLE)))
  # The model is an argument, as in a user's call: closed over, it lets XLA fold W's transpose
  # into a constant, which no call with a model in hand gets
  # (results/small-batch-alternatives-cpu-2core-xeon.md).
  # The chains' state is returned, as `tasks.py` and `sample` have it: with the visibles alone,
  # chains swept in halves wait on each other (results/small-batch-alternatives-cpu-2core-xeon.md).
  full = jax.jit(lambda k, s, p: sampling.run(k, s, p, sweeps)[0])

  def body(p, s):  # the sweep's matmuls and sigmoids, draws replaced by a threshold
    h = (jax.nn.sigmoid(s.v @ p.W + p.c) > 0.5).astype(jnp.float32)
    return sampling.GibbsState((jax.nn.sigmoid(h @ p.W.T + p.b) > 0.5).astype(jnp.float32), h)

  def body_columns(p, w_t, s):  # the same, for a half carried as columns, as `run` does
    h = (rbm.hidden_prob_columns(p, s.v, None, w_t) > 0.5).astype(jnp.float32)
    return sampling.GibbsState((rbm.visible_mean_columns(p, h, None) > 0.5).astype(jnp.float32),
                               h)

  def body_blocks(p, blocks, s):  # the same, with W in blocks of rows, as `run` has it
    h = (row_blocks.hidden_prob(p, s.v, None, blocks) > 0.5).astype(jnp.float32)
    return sampling.GibbsState(
      (row_blocks.visible_mean(p, h, None, blocks) > 0.5).astype(jnp.float32), h)

  def products(s, p):  # in halves or blocks where the library has them, the state returned
    if blocks := row_blocks.n_blocks(p, batch):
      return jax.lax.scan(lambda c, _: (body_blocks(p, blocks, c), None), s, None, sweeps)[0]
    if not sampling.in_halves(p, batch):
      return jax.lax.scan(lambda c, _: (body(p, c), None), s, None, sweeps)[0]
    top, w_t = (batch + 1) // 2, p.W.T
    parts = tuple(jax.tree.map(lambda x: x[rows].T, s)
                  for rows in (slice(None, top), slice(top, None)))
    return jax.lax.scan(lambda c, _: (tuple(body_columns(p, w_t, x) for x in c), None), parts,
                        None, sweeps)[0]

  matmuls = jax.jit(products)
  key = jax.random.key(1)

  def ours_call():
    jax.block_until_ready(full(key, state, params))

  def ours_mm_call():
    jax.block_until_ready(matmuls(state, params))

  ours, ours_mm = _per_unit(ours_call, sweeps), _per_unit(ours_mm_call, sweeps)
  np_full, np_steps = numpy_sampler(N_VISIBLE, N_HIDDEN, batch, 0.3)  # tasks.py's numpy
  np_matmuls, n_np = numpy_sampler(N_VISIBLE, N_HIDDEN, batch, 0.3, draws=False)
  numpy_full, numpy_mm = _per_unit(np_full, np_steps), _per_unit(np_matmuls, n_np)
  # The share of a sweep its matmuls take, timed back to back (`paired`), so that a change in
  # the machine's load between the timings above does not move it; each timed sample repeats
  # its call to last `SHARE_SAMPLE_S` (a call at 2 chains takes a few milliseconds, which a
  # burst of other work on the machine can double).
  share = {}
  for name, part, units_part, whole, units_whole in (
      ("aerbm_matmul_share", ours_mm_call, sweeps, ours_call, sweeps),
      ("numpy_matmul_share", np_matmuls, n_np, np_full, np_steps)):
    (part, n_part), (whole, n_whole) = _lasting(part), _lasting(whole)
    share[name] = 1.0 / paired(part, n_part * units_part, whole, n_whole * units_whole,
                               SHARE_ROUNDS)["ratio"]
  return {"batch": batch, "aerbm_us": 1e6 * ours, "aerbm_matmuls_us": 1e6 * ours_mm,
          "numpy_us": 1e6 * numpy_full, "numpy_matmuls_us": 1e6 * numpy_mm,
          "ratio": numpy_full / ours, "ceiling": numpy_full / ours_mm, **share}


def hash_cost(batch: int, sweeps: int) -> dict:
  """Microseconds per sweep of the random words of a 16-bit sweep (a block per four draws),
  each word's two halves summed so that every word is used: `rng.threefry2x32` against
  `threefry2x32_p`, and the ratio of the two timed back to back."""
  blocks = -(-batch * (N_VISIBLE + N_HIDDEN) // 4)

  def loop(hash_fn):
    def body(total, key):
      k = jax.random.key_data(key)
      counter = jax.lax.iota(jnp.uint32, blocks)
      x0, x1 = hash_fn(k[0], k[1], jnp.zeros_like(counter), counter)
      return total + sum(((x & 0xFFFF) + (x >> 16)).sum() for x in (x0, x1)), None
    f = jax.jit(lambda key: jax.lax.scan(body, jnp.uint32(0), jax.random.split(key, sweeps))[0])
    return lambda: f(jax.random.key(2)).block_until_ready()

  ours, jaxs = loop(rng.threefry2x32), loop(jax_hash)
  assert int(jax.device_get(ours())) == int(jax.device_get(jaxs()))  # the same words
  return {"batch": batch, "hash_us": 1e6 * _per_unit(ours, sweeps),
          "jax_hash_us": 1e6 * _per_unit(jaxs, sweeps),
          "hash_speedup": paired(ours, sweeps, jaxs, sweeps, 7)["ratio"]}


def _run_ab(n: int, m: int, batch: int, setups, flops: float, state_out: bool = False,
            must_match: bool = True) -> dict:
  """Sweeps/s of `sampling.run` compiled under each of two `setups` (context managers that
  patch the library while `run` is traced), the ratio of the first to the second over 9
  alternating calls of `flops` matmul FLOPs (at least 20 sweeps) each, returning the chains'
  visibles (or, with `state_out`, their whole state), and whether both drew the same samples
  (`same`; asserted with `must_match`). Calls of a few milliseconds time something else than
  a user's long runs do, so the default calls take a fraction of a second."""
  params = rbm.init(jax.random.key(0), n, m)
  state = sampling.init(params, jnp.zeros((batch, n)))
  sweeps = max(20, int(flops / (4 * n * m * batch)))
  calls = []
  for setup in setups:
    with setup:
      f = jax.jit(lambda k, s, p: sampling.run(k, s, p, sweeps)[0][:2 if state_out else 1])
      jax.block_until_ready(f(jax.random.key(1), state, params))
    calls.append(lambda f=f: jax.block_until_ready(f(jax.random.key(1), state, params)))
  same = all(bool((a == b).all()) for a, b in zip(calls[0](), calls[1]()))
  assert same or not must_match, "the two setups drew different samples"
  return {"size": (n, m, batch), "in_halves": sampling.in_halves(params, batch), "same": same,
          **paired(calls[0], sweeps, calls[1], sweeps, 9)}


def sweep_ab(n: int, m: int, batch: int, flops: float = 3e10) -> dict:
  """`sampling.run` as it is over the same with `rng.threefry2x32` replaced by JAX's lowering of
  the hash (`_run_ab`)."""
  return _run_ab(n, m, batch, (patch.object(rng, "threefry2x32", rng.threefry2x32),
                               patch.object(rng, "threefry2x32", jax_hash)), flops)


def halves_ab(n: int, m: int, batch: int, flops: float = 3e10) -> dict:
  """`sampling.run` with the chains swept as two halves over the whole batch at once, whatever
  `sampling.in_halves` would choose (`_run_ab`), returning the chains' whole state (as
  `sample_chains` does, and `sample` when it sweeps in halves) and their visibles alone. The
  halves' products (chains as columns) may round differently, so the samples may differ."""
  forced = lambda halves: patch.object(  # noqa: E731
    sampling, "in_halves", lambda p, c, precision=None: halves)
  setups = lambda: (forced(True), forced(False))  # noqa: E731
  state, v_only = (_run_ab(n, m, batch, setups(), flops, out, must_match=False)
                   for out in (True, False))
  return {**state, "v_only": v_only}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--batches", default="2,8,32,64")
  ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
  ap.add_argument("--sweeps", type=int, default=0,
                  help="sweeps per timed call (0: 2000 up to 8 chains, else 500)")
  ap.add_argument("--ab-sizes", default="",
                  help="more NxMxBATCH sizes for the whole-sweep comparison of the two hashes")
  ap.add_argument("--ab-flops", type=float, default=3e10,
                  help="matmul FLOPs per timed call of the whole-sweep comparisons")
  ap.add_argument("--tag", default=None, help="the output's name, for another machine's run")
  args = ap.parse_args()
  m = machine_info()
  batches = [int(b) for b in args.batches.split(",")]
  sweeps = {b: args.sweeps or (2000 if b <= 8 else 500) for b in batches}
  rows = [measure(b, sweeps[b]) for b in batches]
  hashes = [hash_cost(b, sweeps[b]) for b in batches]
  sizes = [(N_VISIBLE, N_HIDDEN, b) for b in batches] + [
    tuple(map(int, size.split("x"))) for size in filter(None, args.ab_sizes.split(","))]
  abs_ = [sweep_ab(*size, args.ab_flops) for size in sizes]
  halves = [halves_ab(*size, args.ab_flops) for size in sizes if size[2] >= 2]  # two rows
  lines = [f"# Small batches, what bounds them: {m['backend']} ({m['device']}, {m['cores']} "
           f"cores, {m['cpu']})", "", "`python benchmarks/small_bound.py`. Microseconds per "
           "784 x 500 sweep; 'matmuls' is the same loop with the draws replaced by a "
           "threshold; the ceiling is numpy's sweep over our matmuls alone (what free "
           "random numbers would give). The matmul shares are the matmuls' time over the "
           "whole sweep's, each pair timed back to back over 9 alternating rounds of at "
           "least 0.1 s each. Both of "
           "our loops return the chains' state and, where `sampling.in_halves` says so, run "
           "the chains as two halves, or where `row_blocks.n_blocks` does, multiply them by W "
           "in blocks of rows, as `sample` and `tasks.py` do.", "",
           "| chains | aerbm_jax | aerbm_jax matmuls | numpy | numpy matmuls | ratio | ceiling "
           "| matmul share, aerbm_jax | matmul share, numpy |",
           "|---|---|---|---|---|---|---|---|---|"]
  lines += [f"| {r['batch']} | {r['aerbm_us']:.0f} | {r['aerbm_matmuls_us']:.0f} | "
            f"{r['numpy_us']:.0f} | {r['numpy_matmuls_us']:.0f} | {r['ratio']:.2f}x | "
            f"{r['ceiling']:.2f}x | {r['aerbm_matmul_share']:.2f} | "
            f"{r['numpy_matmul_share']:.2f} |" for r in rows]
  lines += ["", "## The sweep's random words alone", "",
            "Microseconds per sweep for the Threefry-2x32 blocks of one sweep's 16-bit "
            "uniforms (a block per four draws), with `rng.threefry2x32` and with JAX's "
            "lowering of the same hash; the speed-up is timed back to back over 7 rounds. "
            "Both give the same words.", "",
            "| chains | rng.threefry2x32 | jax threefry2x32_p | speed-up |", "|---|---|---|---|"]
  lines += [f"| {h['batch']} | {h['hash_us']:.1f} | {h['jax_hash_us']:.1f} | "
            f"{h['hash_speedup']:.2f}x |" for h in hashes]
  lines += ["", "Whole sweeps (`sampling.run`) with `rng.threefry2x32` over the same with JAX's "
            f"lowering of the hash: sweeps/s, 9 alternating calls of {args.ab_flops:.0e} "
            "matmul FLOPs (at least 20 sweeps), the ratio's median [min-max]. "
            "Both draw the same samples.", "", "| n, m, batch | speed-up | [min-max] |",
            "|---|---|---|"]
  lines += [f"| {', '.join(map(str, a['size']))} | {a['ratio']:.2f}x | {a['min']:.2f}-"
            f"{a['max']:.2f} |" for a in abs_]
  lines += ["", "## Two halves of the batch at once", "",
            "Whole sweeps with the chains carried as two halves, each swept on its own, over "
            "the whole batch swept at once (`sampling.in_halves` forced either way): sweeps/s, "
            "9 alternating calls as above, the ratio's median [min-max], with the chains' "
            "whole state returned (what `sample_chains` returns, and `sample` keeps where it "
            "sweeps in halves) and with their visibles alone. Each half is carried as "
            "columns, whose products may round differently: 'same' says whether both drew "
            "the same samples. 'default' is what `sampling.in_halves` chooses on this "
            "machine.", "",
            "| n, m, batch | default | speed-up, state out | [min-max] | speed-up, v out | "
            "[min-max] | same |", "|---|---|---|---|---|---|---|"]
  lines += [f"| {', '.join(map(str, a['size']))} | {'halves' if a['in_halves'] else 'whole'} | "
            f"{a['ratio']:.2f}x | {a['min']:.2f}-{a['max']:.2f} | {a['v_only']['ratio']:.2f}x | "
            f"{a['v_only']['min']:.2f}-{a['v_only']['max']:.2f} | "
            f"{'yes' if a['same'] and a['v_only']['same'] else 'no'} |" for a in halves]
  text = "\n".join(lines) + "\n"
  Path(args.out).mkdir(parents=True, exist_ok=True)
  tag = args.tag or f"small-bound-{m['backend']}-{m['cores']}core"
  (Path(args.out) / f"{tag}.md").write_text(text)
  print(text)


if __name__ == "__main__":
  main()
