"""`hubmirror report --format html` at cluster scale, looked at in Debian's headless Chromium (selenium): 3,000 rows
from three nodes, two devices and two runs. Nothing overflows the window, no two plot labels overlap (measured by
the browser's own text layout), the latency chart's names are inside the picture, the environment of each device is
summarised, two devices are compared, and the table sorts and filters."""

from __future__ import annotations

import json
import random
import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from hubmirror.catalog import Catalog
from tests.conftest import Cli
from tests.test_web_browser import browser  # noqa: F401 - the fixture


def cluster_rows(count: int) -> list[dict]:
    """Rows as a cluster run writes them: families of models of several sizes, CPU and GPU nodes, two runs."""
    rng = random.Random(7)
    rows = []
    models = count // 3
    sizes = [int(10 ** rng.uniform(5, 9)) for _ in range(models)]
    names = [f"{rng.choice(['resnet', 'vit', 'convnext', 'efficientnet', 'mobilenetv3'])}_{m}.a_very_long_tag_in1k"
             for m in range(models)]
    for i in range(count):
        m, device = i % models, ("cpu", "cuda", "cuda")[i // models % 3]  # each model on the CPU once, GPUs twice
        params = sizes[m]
        throughput = 10 ** rng.uniform(0, 4) * (8 if device == "cuda" else 1)
        env = {"node": f"gpu-node-{i % 2}/10.0.0.{i % 2 + 2}" if device == "cuda" else "cpu-node/10.0.0.9",
               "run": ("a" * 32) if i < count // 2 else ("b" * 32), "torch": "2.14.1", "python": "3.11.7",
               "device_name": "NVIDIA H100 80GB HBM3" if device == "cuda" else "x86_64",
               "driver": "580.65" if device == "cuda" else None, "cuda": "12.8" if device == "cuda" else None,
               "versions": {"hubmirror": "0.1.0", "torch": "2.14.1"}, "wall_seconds": 3.0, "measure_seconds": 2.0}
        name = names[m]
        rows.append({"model_key": f"timm:{name}" if m % 7 else f"hf:some-organisation/{name}",
                     "commit_id": "c" * 40, "status": "ok" if i % 50 else "timeout", "device": device, "dtype": "fp32",
                     "batch_size": 1, "latency_p50_ms": 1000 / throughput, "latency_p90_ms": 1100 / throughput,
                     "latency_p99_ms": 1200 / throughput, "throughput": throughput, "peak_memory_bytes": params * 4,
                     "parameters": params, "environment": json.dumps(env)})
    return rows


@pytest.fixture
def report_page(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    catalog = Catalog(root / "catalog.db")
    rows = cluster_rows(3000)
    for row in rows:
        catalog.record_benchmark(row)
    catalog.close()
    out = tmp_path / "report.html"
    result = Cli(root)("report", "--format", "html", "--history", "--compare", "cpu,cuda", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_the_html_report_at_cluster_scale_in_chromium(report_page, browser, tmp_path):  # noqa: F811
    driver = browser
    driver.set_window_size(1300, 1000)
    driver.get(report_page.as_uri())
    shot = tmp_path / "report.png"  # the page as a person first sees it
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    assert driver.execute_script("return document.documentElement.scrollWidth") <= \
        driver.execute_script("return window.innerWidth")  # nothing wider than the window
    overlaps = driver.execute_script("""
        const boxes = Array.from(document.querySelectorAll('svg text.label')).map(t => t.getBoundingClientRect());
        let n = 0;
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
          const a = boxes[i], b = boxes[j];
          if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) n++;
        }
        return [boxes.length, n];""")
    assert overlaps[0] > 3 and overlaps[1] == 0, overlaps
    cut = driver.execute_script("""
        const svgs = document.querySelectorAll('svg');
        const latency = svgs[svgs.length - 1], frame = latency.getBoundingClientRect();
        return Array.from(latency.querySelectorAll('text')).filter(t => {
          const r = t.getBoundingClientRect();
          return r.left < frame.left - 0.5 || r.right > frame.right + 0.5; }).length;""")
    assert cut == 0  # every name and value inside the latency chart
    ticks = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "svg text")]
    assert "1M" in ticks and "100M" in ticks and "milliseconds" in ticks
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "NVIDIA H100 80GB HBM3" in body and "580.65" in body
    compared = re.search(r"cuda vs cpu: (\d+) models measured on both, throughput ratio ([\d.]+)x", body)
    assert compared and 900 < int(compared[1]) <= 1000 and 4 < float(compared[2]) < 16  # the rows' 8x, both ok
    assert "By task" in body and "By model family" in body
    shown = driver.find_element(By.ID, "shown")
    assert shown.text == "3000 of 3000 rows"
    Select(driver.find_element(By.CSS_SELECTOR, "select[data-col='1']")).select_by_visible_text("timeout")
    assert shown.text == "60 of 3000 rows"
    driver.find_element(By.ID, "filter").send_keys("convnext")
    visible = [r for r in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr") if r.is_displayed()]
    assert 0 < len(visible) < 60 and all("convnext" in r.text for r in visible)
    driver.find_element(By.ID, "filter").clear()
    Select(driver.find_element(By.CSS_SELECTOR, "select[data-col='1']")).select_by_visible_text("all")
    header = driver.find_element(By.XPATH, "//table[@id='results']//th[text()='samples/s']")
    header.click()
    header.click()  # descending
    column = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "#results thead th")].index("samples/s")
    first = driver.execute_script(
        f"return Array.from(document.querySelectorAll('#results tbody tr')).slice(0, 50)"
        f".map(r => parseFloat(r.cells[{column}].textContent))")
    assert first == sorted(first, reverse=True)
    assert first[0] == max(round(r["throughput"], 3) for r in cluster_rows(3000))
