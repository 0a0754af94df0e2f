"""The HTML report as a browser renders it: headless Debian chromium, nothing fetched.

chromium is a system package (`apt-get install -y chromium`; .ci/run installs it).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from html import escape

from test_report import REVERSE_SOURCE, sample_report

from distill.report.schema import write_html

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


def _chromium(*arguments: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium")
    assert browser, "headless chromium is needed: apt-get install -y chromium"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_rendered_report_shows_program_graph_and_one_heatmap_per_head(tmp_path):
    report = sample_report(refuted=True)
    page = tmp_path / "report.html"
    write_html(report, page)

    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    html = dom.stdout
    for line in REVERSE_SOURCE.splitlines():
        assert escape(line, quote=False) in html
    assert html.count('<svg class="circuit"') == 1
    for node in report.circuit.nodes:
        assert f'data-component="{node.id}"' in html
    assert html.count('<svg class="heatmap"') == len(report.heads)
    for head in report.heads:
        assert f'<svg class="heatmap" data-component="{head.component}"' in html
    assert "refuted" in html and 'id="counterexamples"' in html

    screenshot = tmp_path / "report.png"
    shot = _chromium(f"--screenshot={screenshot}", page.as_uri())
    assert shot.returncode == 0, shot.stderr
    assert _png_size(screenshot) == (1280, 900)
