"""The benchmark's report: the markdown tables and the throughput-against-batch plot."""

from __future__ import annotations

from pathlib import Path


def fmt_rate(r: dict) -> str:
  return f"{r['rate']:,.1f}" if "rate" in r else f"error: {r['error'][:60]}"


def markdown(res: dict, plot: str | None) -> str:
  info = res["machine"]
  peak = info["matmul_peak"]["gflops"]
  v = info["versions"]
  lines = [
    f"# RBM throughput: {info['device']} ({info['backend']}, {info['cores']} cores, "
    f"{info['cpu']})",
    "",
    "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".",
    f"Measured float32 matmul peak ({info['matmul_peak']['size']}^3, default precision"
    f"{', TF32' if info['matmul_peak']['tf32'] else ''}): {peak:,.1f} GFLOP/s"
    + (", the higher of two measurements, at the start "
       f"({info['matmul_peak']['gflops_start']:,.1f}) and the end "
       f"({info['matmul_peak']['gflops_end']:,.1f}) of the run"
       if "gflops_end" in info["matmul_peak"] else "") + ". "
    "Rates are medians of 5 timed calls after a warm-up [min-max]; compile time excluded "
    "and shown apart. FLOPs per sweep = 4 batch n m.",
  ]
  if res.get("interrupted"):
    lines += ["", "**This run was interrupted: the tables hold the rows measured before it "
                  "stopped.**"]
  if res.get("targets"):
    lines += [
      "", "## Goals, timed back to back",
      "",
      "aerbm_jax's float32 sampler and the reference, alternately, over "
      f"{res['targets'][0]['rounds']} rounds: the ratio's median [min-max]. Against numpy, the "
      "ratio of sweeps/s; against the matmul, the sampler's FLOP/s as a fraction of the float32 "
      "matmul's"
      f"{' (TF32)' if info['matmul_peak']['tf32'] else ''}.",
      "",
      "| n, m, batch | against | goal | measured | [min-max] | met | sampler compile s |",
      "|---|---|---|---|---|---|---|",
    ]
    for t in res["targets"]:
      pct = t["against"] == "matmul"
      fmt = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.2f}x")
      goal = "-" if t["target"] is None else (">= " + fmt(t["target"]))
      met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
      against = "matmul" if pct else "numpy sampler"
      lines.append(f"| {t['n']}, {t['m']}, {t['batch']} | {against} | {goal} | {fmt(t['ratio'])} | "
                   f"{fmt(t['min'])}-{fmt(t['max'])} | {met} | {t['compile_s']:.2f} |")
  lines += [
    "",
    "## Block Gibbs sampling",
    "",
    "| n, m, batch | library | variant | sweeps/s | [min-max] | unit updates/s | "
    "% of matmul peak | vs fastest peer | compile s | XLA memory MB |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for group in _groups(res["sampling"]):
    best = _best_peer(group)
    for r in group:
      head = f"| {r['n']}, {r['m']}, {r['batch']} | {r['lib']} | {r['variant']} |"
      if "rate" not in r:
        lines.append(f"{head} {fmt_rate(r)} | | | | | | |")
        continue
      units = r["rate"] * r["batch"] * (r["n"] + r["m"])
      gf = r["rate"] * 4 * r["batch"] * r["n"] * r["m"] / 1e9
      lines.append(f"{head} {r['rate']:,.1f} | {r['min']:,.0f}-{r['max']:,.0f} | {units:.3g} | "
                   f"{100 * gf / peak:.1f} | {_tail(r, best)}")
  lines += ["", "## Training: minibatch updates/s (one CD-1 or PCD-1 step with momentum SGD)", "",
            "Epochs of 16 minibatches. aerbm_jax's compiled calls hold up to 256 updates (fewer "
            "where that would exceed the time budget), as `train.fit` makes them, and each epoch "
            "also computes its reconstruction-error curve point; the peers update in a Python "
            "loop.", "",
            "| n, m, batch | method | library | updates/s | [min-max] | vs fastest peer | "
            "compile s | XLA memory MB |", "|---|---|---|---|---|---|---|---|"]
  for group in _groups(res["training"], by_kind=True):
    best = _best_peer(group)
    for r in group:
      head = f"| {r['n']}, {r['m']}, {r['batch']} | {r['kind']} | {r['lib']} |"
      if "rate" not in r:
        lines.append(f"{head} {fmt_rate(r)} | | | | |")
        continue
      lines.append(f"{head} {r['rate']:,.1f} | {r['min']:,.0f}-{r['max']:,.0f} | "
                   f"{_tail(r, best)}")
  mem = res["memory"]
  lines += ["", "## Memory", "",
            f"Peak resident memory of the whole benchmark process: "
            f"{mem['peak_rss_bytes'] / 1e9:.2f} GB."]
  if mem.get("device_peak_bytes"):
    lines.append(f"Device peak bytes in use: {mem['device_peak_bytes'] / 1e9:.2f} GB.")
  big = mem.get("largest_rbm_on_80gb")
  if big and big.get("largest_square_units"):
    lines.append(
      f"The largest square RBM whose compiled CD-1 epoch ({big.get('n_batches', 1)} minibatches "
      f"of {big['batch']}, momentum SGD) "
      f"XLA plans within 80 GB has {big['largest_square_units']:,} visible and "
      f"{big['largest_square_units']:,} hidden units (to the nearest {big['step']}): "
      f"{big['plan_bytes'] / 1e9:.1f} GB, {big['bytes_per_weight']:.1f} bytes per weight "
      f"(parameters, momentum, gradient and XLA's temporaries). The programs were compiled "
      f"from shapes alone on this backend ({res['machine']['backend']}), not run.")
  if res.get("scaling"):
    lines += ["", "## Scaling over devices (fixed total of chains)", "",
              "| devices | n, m, chains | sweeps/s | [min-max] | speed-up |",
              "|---|---|---|---|---|"]
    base = next((r["rate"] for r in res["scaling"] if "rate" in r), None)
    for r in res["scaling"]:
      if "rate" in r:
        lines.append(f"| {r['devices']} | {r['n']}, {r['m']}, {r['chains']} | {r['rate']:,.1f} | "
                     f"{r['min']:,.0f}-{r['max']:,.0f} | {r['rate'] / base:.2f}x |")
      else:
        lines.append(f"| {r['devices']} | error: {r['error'][:80]} | | | |")
  if plot:
    lines += ["", "## Throughput against batch size", "", f"![samples/s against batch]({plot})"]
  return "\n".join(lines) + "\n"


def _best_peer(group: list[dict]) -> float | None:
  peers = [r["rate"] for r in group if r["lib"] != "aerbm_jax" and "rate" in r]
  return max(peers) if peers else None


def _tail(r: dict, best: float | None) -> str:
  """The last cells of a row: ratio to the fastest peer, compile seconds, XLA memory."""
  ratio = f"{r['rate'] / best:.2f}x" if best else "-"
  comp = f"{r['compile_s']:.2f}" if "compile_s" in r else "-"
  mem = f"{r['memory_bytes'] / 1e6:.1f}" if r.get("memory_bytes") else "-"
  return f"{ratio} | {comp} | {mem} |"


def _groups(rows: list[dict], by_kind: bool = False) -> list[list[dict]]:
  keys: dict = {}
  for r in rows:
    keys.setdefault((r["n"], r["m"], r["batch"]) + ((r["kind"],) if by_kind else ()), []).append(r)
  return list(keys.values())


def batch_plot(rows: list[dict], path: Path) -> str | None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  ok = [r for r in rows if "rate" in r]
  if not ok:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  for lib in dict.fromkeys(r["lib"] for r in ok):
    pts = sorted((r["batch"], r["rate"] * r["batch"]) for r in ok if r["lib"] == lib)
    ax.plot(*zip(*pts), marker="o", label=lib)
  ax.set(xscale="log", yscale="log", xlabel="batch (chains)", ylabel="samples/s (sweeps x batch)",
         title=f"Block Gibbs at n={ok[0]['n']}, m={ok[0]['m']}")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path.name
