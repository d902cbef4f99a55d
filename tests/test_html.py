"""report.html in a real headless browser (Chromium from the system's packages, driven by
Selenium): it loads with no console errors, every picture decodes, it fits a phone's width,
and it needs nothing outside the file."""

import os
import re
import shutil

import pytest

from aerbm_jax import cli, html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# Under CI the browser is installed by the Makefile: its absence there is a failure, not a skip.
needs_browser = pytest.mark.skipif(
  not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
  reason="Chromium and ChromeDriver are not installed (`make test` installs them)")


def test_report_html_is_self_contained(mondrian_run):
  page = (mondrian_run / "report.html").read_text()
  assert "<script" not in page.lower()
  assert not re.search(r'(src|href)="(?!data:)', page), "a resource outside the page"
  pictures = re.findall(r'<img[^>]+src="data:image/png;base64,', page)
  assert len(pictures) == 9  # training images, reconstructions, 3 sample grids (AE-RBM, pixel
  # RBM, AE + Gaussian), 2 of hidden units, interpolations, curves
  assert "Samples side by side" in page and "<table>" in page
  md = (mondrian_run / "report.md").read_text()
  for heading in re.findall(r"^## (.+)$", md, re.M):
    assert heading in page, heading


def test_missing_picture_is_named_and_report_command_regenerates(mondrian_run, tmp_path, capsys):
  copy = tmp_path / "copy"
  shutil.copytree(mondrian_run, copy, ignore=shutil.ignore_patterns("checkpoints"))
  (copy / "interpolations.png").unlink()
  (copy / "report.html").unlink()
  _, missing = html.render(copy)
  assert missing == ["interpolations.png"]
  assert cli.main(["report", str(copy)]) == 0
  assert "picture interpolations.png is missing" in (copy / "report.html").read_text()
  with pytest.raises(FileNotFoundError, match="has no report.md"):
    html.render(tmp_path)


@needs_browser
@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])  # a laptop and a phone
def test_report_in_headless_chromium(mondrian_run, tmp_path, width, height):
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service

  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-dev-shm-usage", f"--window-size={width},{height}",
               f"--user-data-dir={tmp_path / 'profile'}"):
    options.add_argument(flag)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  try:
    driver.get((mondrian_run / "report.html").absolute().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    widths = driver.execute_script(
      "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 9 and all(w > 0 for w in widths), widths
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    overflow = driver.execute_script(
      "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the page is {overflow} px wider than a {width} px screen"
    shot = tmp_path / f"report-{width}.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
  finally:
    driver.quit()
