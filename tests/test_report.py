"""The recipe's report.md from a metrics dictionary: the table shows what metrics.json holds."""

from aerbm_jax import configs, report


def _metrics(latent_ll, pixel_ll):
  rbm_part = lambda n, ll: {"n_visible": n, "n_hidden": 8, "final_recon_error": 0.25,
                            **({"held_out_log_likelihood": ll} if ll else {})}
  return {
    "data": {"source": "somewhere", "n_train": 10, "n_held_out": 3, "image_shape": [4, 4, 1]},
    "autoencoder": {"held_out_mse": 0.0123, "mean_image_mse": 0.5, "evaluated_on": "held-out"},
    "latent_rbm": rbm_part(16, latent_ll), "pixel_rbm": rbm_part(16, pixel_ll),
    "sampling": {"chains": 8, "steps": 20},
    "sample_pixel_mse_to_nearest_train": {"ae_rbm": 0.1, "pixel_rbm": 0.2},
    "timings": {"total_s": 5.0, "autoencoder_s": 1.0, "latent_rbm_s": 1.0, "pixel_rbm_s": 1.0},
  }


def test_table_shows_exact_and_ais_likelihoods_with_their_intervals():
  nan = float("nan")
  exact = {"log_likelihood": -9.5, "lower": -9.5, "upper": -9.5, "log_z": 12.0, "method": "exact",
           "reverse_log_likelihood": nan, "gap": 0.0, "ess": nan, "reverse_ess": nan,
           "warnings": []}
  ais = {"log_likelihood": -700.0, "lower": -701.5, "upper": float("inf"), "log_z": 580.0,
         "method": "ais", "reverse_log_likelihood": -712.5, "gap": 12.5, "ess": 3.2,
         "reverse_ess": 40.0, "warnings": ["AIS: the log Z interval is open; raise n_betas"]}
  text = report.experiment_report(configs.make_config("faces", quick=True), _metrics(exact, ais))
  assert "| log Z (method) | 12 (exact) | 580 (ais) |" in text
  assert ("| held-out mean -F(v) - log Z (nats, own space) | -9.5 (exact) | -700 [-701.5, inf] "
          "(AIS; reverse -712.5, gap 12.5; ESS 3) **see warnings** |") in text
  assert "- **pixel RBM**: AIS: the log Z interval is open; raise n_betas" in text
  assert "**0.01230**" in text and "(predicting the mean training image: 0.50000)" in text
  assert "| weights | 128 | 128 |" in text


def test_table_without_likelihoods_shows_dashes():
  text = report.experiment_report(configs.make_config("faces", quick=True), _metrics(None, None))
  assert "| log Z (method) | - | - |" in text


def test_quality_table_shows_only_the_metrics_that_order_the_known_cases():
  from aerbm_jax import calibration
  from aerbm_jax.report import quality_table

  cases = {c: {"kid": i, "kid_stderr": 0.1, "mmd2": 0.5, "precision": 1.0, "recall": 1 - i / 5,
               "nn_distance_ratio": 1.0} for i, c in enumerate(calibration.CASES)}
  q = {"cases": cases, "order": calibration.check_order(cases), "n_fake": 25, "k": 3,
       "models": {"ae_rbm": dict(cases["blurred"], kid=1.5, kid_stderr=0.25)},
       "time_s": {"ae_rbm": 12.0}}
  q["validated"] = [m for m, r in q["order"].items() if r["ordered"]]
  assert q["validated"] == ["kid", "recall"]  # MMD^2 and precision are flat here
  table = quality_table(q, {"ae_rbm": "AE + RBM"})
  head = table.splitlines()[0]
  assert "KID" in head and "recall" in head and "MMD" not in head and "precision" not in head
  assert "| AE + RBM | 1.500 ± 0.250 | 0.600 | 1.00 | 12 |" in table
  assert "*uniform noise*" in table and "misorder the known cases: mmd2" in table
