"""`gan-report`: the HTML pages of a real tiny sweep (a plain run and a population), read back
as text and in headless Chromium (no console errors, no request leaving the machine)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import numpy as np
import pytest
from conftest import TINY, gan_train, metrics_rows

from gan_jax import report, rundir, score
from gan_jax.report import reading, svg

SWEEP = ["-m", "train.num_seeds=1,2", *TINY, "train.sample_every=10"]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A real Hydra multirun of two jobs: job 0 a plain run, job 1 a population of two."""
    directory = tmp_path_factory.mktemp("sweep")
    result = gan_train([*SWEEP, f"hydra.sweep.dir={directory}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return directory


def _jobs(sweep_dir: Path) -> list[Path]:
    jobs = sorted(p.parent for p in sweep_dir.glob("*/summary.json"))
    assert len(jobs) == 2, jobs
    return jobs


@pytest.fixture(scope="module")
def plain_run(sweep_dir) -> Path:
    return _jobs(sweep_dir)[0]


@pytest.fixture(scope="module")
def population(sweep_dir) -> Path:
    return _jobs(sweep_dir)[1]


def _copy_run(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to, ignore=shutil.ignore_patterns("checkpoints", report.REPORT_FILE))
    return to


def _no_remote_references(text: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert "http://" not in text and "https://" not in text  # nothing of ours names a remote address at all


def _titles(text: str, kind: str) -> list[str]:
    """The hover titles of the SVG elements of `kind` (path, circle)."""
    return re.findall(rf'<{kind} class="[a-z]+"[^>]*><title>([^<]*)</title>', text)


# --- the run page ----------------------------------------------------------------------


def test_run_page_shows_d_outputs_losses_evaluation_grids_config_and_provenance(plain_run):
    page = report.write_run_report(plain_run)
    assert page == plain_run / "report.html"
    text = page.read_text()
    _no_remote_references(text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    # The headline: d_real and d_fake against step, and the dashed 0.5 line at y = 0.5 of [0, 1].
    assert re.search(r'<line class="equilibrium"[^>]*stroke-dasharray="6 4"', text)
    assert "0.5: the equilibrium" in text
    paths = _titles(text, "path")
    assert {"d_real, seed 0", "d_fake, seed 0", "d_loss, seed 0", "g_loss, seed 0"} <= set(paths)
    d_real = re.search(r'<path class="series" d="([^"]+)"[^>]*><title>d_real, seed 0</title>', text)
    assert d_real is not None and d_real.group(1).count("L") == 4 - 1  # steps 5, 10, 15, 20
    # Every evaluation key of metrics.jsonl has its curve, titled with its direction.
    eval_keys = {k for r in metrics_rows(plain_run) if "d_loss" not in r for k in r if k not in ("step", "seed")}
    assert eval_keys >= {"jsd", "sample_mean"}
    for key in eval_keys:
        assert f"{key}, seed 0" in paths, key
    assert "jsd (lower is better)" in text
    # The sample grids behind the slider: one image per samples/step_*.png, the last shown.
    grids = sorted((plain_run / "samples").glob("step_*.png"))
    assert len(grids) == 2
    frames = re.findall(
        r'<figure data-step="(\d+)"( hidden)?><img class="grid-image" src="data:image/png;base64,', text
    )
    assert frames == [("10", " hidden"), ("20", "")]
    assert base64.b64encode(grids[-1].read_bytes()).decode() in text
    assert '<input type="range" min="0" max="1" value="1"' in text
    # The run's own figures, its config and its provenance.
    assert "discriminator_outputs.png" in text and "figure1.png" in text
    assert "steps: 20" in text and "train.num_seeds=1" in text
    assert ">backend</th><td>cpu<" in text and ">finished<" in text


def test_population_page_has_one_curve_per_member(population):
    text = report.write_run_report(population).read_text()
    paths = _titles(text, "path")
    for seed in (0, 1):
        for key in ("d_real", "d_fake", "d_loss", "jsd"):
            assert f"{key}, seed {seed}" in paths, (key, seed)
    assert "a population of 2 (seeds 0, 1)" in text
    assert "D(x) on real (2 members)" in text
    start = text.index('<section id="final">')
    final = text[start : text.index("</section>", start)]
    assert final.count("<tr>") == 1 + 2  # the header and one row per member


def test_run_page_of_a_run_in_progress_or_damaged_says_what_is_missing(plain_run, tmp_path):
    """What the loop may leave at an evaluation: no summary, no grids, no figures, a torn row."""
    run = _copy_run(plain_run, tmp_path / "partial")
    for name in ("summary.json", "samples", "eval.json", *(p.name for p in run.glob("*.png"))):
        target = run / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    metrics = run / rundir.METRICS_FILE
    metrics.write_text(metrics.read_text() + '{"step": 25, "seed": 0, "d_lo')  # a row being written
    text = report.write_run_report(run).read_text()
    assert 'class="badge running"' in text and "no summary.json yet" in text
    assert "no sample grids yet" in text and "none yet" in text
    assert "d_real, seed 0" in _titles(text, "path")

    (run / "eval.json").write_text("{not json")
    shutil.rmtree(run / ".hydra")
    metrics.write_text('{"step": 5}\nnot a row\n{"step": 10}\n')  # damaged: changed outside gan-train
    text = report.write_run_report(run).read_text()
    assert "eval.json: not JSON" in text and "is not a JSON row" in text
    assert "no .hydra/config.yaml" in text

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / rundir.METRICS_FILE).write_text("")
    assert "no values yet" in report.write_run_report(empty).read_text()
    assert report.refresh_run_report(tmp_path / "gone") is None  # the loop's call: logged, never raised


def test_logger_report_refreshes_the_page_at_each_evaluation_and_once_at_the_end(tmp_path, monkeypatch):
    """The training loop's hook (logger.report=true): the page a run in progress shows, then its final one."""
    from conftest import compose_config

    from gan_jax import loop

    refresh, statuses = report.refresh_run_report, []

    def counted(run_dir: Path) -> Path | None:
        written = refresh(run_dir)
        assert written is not None
        shown = re.search(r'<span class="badge ([a-z_]+)">', written.read_text())
        statuses.append(shown.group(1) if shown else None)
        return written

    monkeypatch.setattr(report, "refresh_run_report", counted)
    run_dir = tmp_path / "run"
    loop.run(compose_config([*TINY, "logger.report=true"]), run_dir)
    evaluated = {r["step"] for r in metrics_rows(run_dir) if "d_loss" not in r}
    assert evaluated >= {10, 20}  # eval.every=10 of 20 steps (and an early one)
    assert statuses == ["running"] * len(evaluated) + ["finished"]  # no summary.json until the end
    text = (run_dir / report.REPORT_FILE).read_text()
    assert 'class="badge finished"' in text and "d_real, seed 0" in _titles(text, "path")


def test_gan_eval_scores_are_points_on_the_curves_and_a_table(plain_run, tmp_path):
    run = _copy_run(plain_run, tmp_path / "scored")
    entry = {
        "checkpoint": "latest",
        "step": 20,
        "num_samples": 1000,
        "scored_at": time.time(),
        "replicas": [{"seed": 0, "jsd": 0.123, "sample_mean": 3.9}],
        "provenance": None,
    }
    score.record(run, entry)
    text = report.write_run_report(run).read_text()
    assert "gan-eval, N=1000" in text and "jsd, gan-eval N=1000" in _titles(text, "circle")
    assert "latest@20/n1000" in text and ">0.123<" in text


def test_text_from_the_run_directory_is_escaped(plain_run, tmp_path):
    run = _copy_run(plain_run, tmp_path / "hostile")
    config = run / ".hydra" / "config.yaml"
    config.write_text(config.read_text() + "note: <script>alert(1)</script> & <img src=x>\n")
    (run / ".hydra" / "overrides.yaml").write_text('- "+note=<b>bold</b>"\n')
    text = report.write_run_report(run).read_text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in text
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "<img src=x>" not in text


# --- the sweep page --------------------------------------------------------------------


def test_sweep_page_tables_runs_box_plots_groups_and_links_every_run(sweep_dir):
    page = report.write_sweep_report(sweep_dir)
    text = page.read_text()
    _no_remote_references(text)
    jobs = _jobs(sweep_dir)
    for job in jobs:
        assert (job / "report.html").is_file()
        assert f'href="{quote(job.name)}/report.html"' in text
        assert 'href="../report.html"' in (job / "report.html").read_text()  # and back up
    body = text[text.index("<tbody>") : text.index("</tbody>")]
    assert body.count("<tr>") == 3  # the plain run and the population's two replicas, as gan-compare counts
    assert '<table class="sortable">' in text and "train.num_seeds" in text
    assert "2 jobs, 3 runs (a population's replicas each) in 2 groups (by train.num_seeds)" in text
    # One box plot per final metric, one box per group, as gan-compare groups them.
    finals = {m for p in sweep_dir.glob("*/summary.json") for m in _final_metrics(p)}
    assert finals >= {"jsd", "d_real_last_tenth"}
    for metric in finals:
        assert re.search(rf"<figcaption>{re.escape(metric)}( \(|\s*<span)", text), metric
    assert text.count('<rect class="box"') == 2 * len(finals)
    assert ">train.num_seeds=1<" in text and ">train.num_seeds=2<" in text


def test_sweep_page_counts_a_diverged_job_out_of_the_boxes_and_lists_one_still_running(sweep_dir, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "*.html"))
    plain, population = _jobs(copy)
    rows = metrics_rows(plain)
    for row in rows:
        if row["step"] == 10 and "d_loss" in row:
            row["d_real"] = None  # as the loop writes a NaN
    (plain / rundir.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    written = json.loads((plain / "summary.json").read_text())
    written.update(status="diverged", diverged=True, diverged_step=10, error="training diverged at step 10")
    rundir.write_summary(plain, written)
    running = copy / "2_still_running"
    running.mkdir()
    shutil.copy(population / rundir.METRICS_FILE, running / rundir.METRICS_FILE)

    text = report.write_sweep_report(copy).read_text()
    body = text[text.index("<tbody>") : text.index("</tbody>")]
    assert body.count("<tr>") == 4 and body.count('class="badge running"') == 1
    assert body.count('class="badge diverged"') == 1 and 'href="2_still_running/report.html"' in body
    jsd = text[text.index("<figcaption>jsd") :]
    jsd = jsd[: jsd.index("</figure>")]
    assert jsd.count('<circle class="value"') == 2  # the population's two replicas; not the diverged run
    assert "no finished run" in jsd  # the diverged run's group
    run_page = (plain / "report.html").read_text()
    assert 'class="badge diverged"' in run_page and "training diverged at step 10" in run_page
    d_real = re.search(r'<path class="series" d="([^"]+)"[^>]*><title>d_real, seed 0</title>', run_page)
    assert d_real is not None and d_real.group(1).count("M") == 2  # the null breaks the curve


def _final_metrics(summary_path: Path) -> set[str]:
    from gan_jax import summary

    return {m for r in summary.replicas(json.loads(summary_path.read_text())) for m in summary.final_metrics(r)}


def test_cli_writes_a_run_or_a_sweep_and_refuses_anything_else(sweep_dir, plain_run, tmp_path, capsys):
    assert report.main([str(plain_run)]) == 0
    assert capsys.readouterr().out.strip() == str(plain_run / "report.html")
    assert report.main([str(sweep_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(sweep_dir / "report.html")

    neither = tmp_path / "neither"
    (neither / "sub").mkdir(parents=True)
    assert report.main([str(neither)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(neither) in error and "metrics.jsonl or summary.json" in error
    assert not list(neither.rglob("*.html"))
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()

    script = Path(sys.executable).with_name("gan-report")  # pyproject's [project.scripts]
    result = subprocess.run([str(script), str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "gan-report:" in result.stderr


# --- the pieces ------------------------------------------------------------------------


def test_ticks_boxes_and_thinning():
    assert svg.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.nice_ticks(3.0, 3.0) == [3.0]
    values = [1.0, 2.0, 2.5, 3.0, 4.0, 40.0]
    stats = svg.box_stats(values)
    assert (stats.q1, stats.median, stats.q3) == tuple(np.percentile(values, [25, 50, 75]))
    assert stats.outliers == [40.0] and stats.high == 4.0
    assert reading.thin(list(range(100)), 5) == [0, 25, 50, 74, 99]
    assert reading.thin([1, 2], 5) == [1, 2]
    assert svg.number(float("nan")) is None and svg.number(True) is None and svg.number(3) == 3.0
    chart = svg.line_chart("t", [svg.Series([(0, 1.0), (1, None), (2, 2.0), (3, 3.0)], "#000", "x", "x")])
    assert 'd="M58.0,' in chart and chart.count("M") == 2  # a null value breaks the line


# --- in a browser ----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is absent: apt-get install chromium")

# Maps two pipe ends onto fds 3 and 4 (--remote-debugging-pipe's) in a fresh process, then execs Chromium.
LAUNCH = (
    "import fcntl, os, sys\n"
    "a, b = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])\n"
    "os.dup2(a, 3); os.dup2(b, 4); os.close(a); os.close(b)\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)
LOCAL_SCHEMES = ("file", "data", "about")


class Chromium:
    """Headless Chromium spoken to over the DevTools protocol on a pipe (NUL-separated JSON):
    no port, no websocket client. `open(url)` loads a page in a fresh tab and returns its
    session; console errors, uncaught exceptions and requests that are not file:/data: are
    collected per session."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 1000):
        self.width, self.height = width, height
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()
        args = [
            CHROMIUM,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
            "about:blank",
        ]
        self._log = open(profile.with_suffix(".stderr"), "w")  # noqa: SIM115  (closed in close())
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(commands_r), str(replies_w), *args],
            pass_fds=(commands_r, replies_w),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(commands_r)
        os.close(replies_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise EOFError(f"Chromium closed its pipe (see {self._log.name})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(line)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 30) -> dict:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._message(max(deadline - time.monotonic(), 0.01))
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def open(self, url: str, height: int | None = None) -> str:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable", session=session)
        metrics = {"width": self.width, "height": height or self.height, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session)
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        self.evaluate(session, "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        return session

    def evaluate(self, session: str, expression: str):
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, session)["data"])

    def errors(self, session: str) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (CSP violations among them)."""
        found = []
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", "")[:500])
        return found

    def remote_requests(self, session: str) -> list[str]:
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("sessionId") == session
            and event.get("method") == "Network.requestWillBeSent"
            and urlparse(event["params"]["request"]["url"]).scheme not in LOCAL_SCHEMES
        ]

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.send("Browser.close", timeout=10)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._commands, self._replies):
            os.close(fd)
        self._log.close()


def _not_blank(png: bytes) -> int:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16)
    return len(colours) if colours is not None else 1 << 16


@needs_chromium
def test_pages_in_headless_chromium_render_without_errors_or_network(sweep_dir, plain_run, tmp_path):
    report.write_sweep_report(sweep_dir)
    with Chromium(tmp_path / "profile") as browser:
        run = browser.open((plain_run / "report.html").as_uri())
        assert browser.errors(run) == [] and browser.remote_requests(run) == []
        assert _not_blank(browser.screenshot(run)) > 50
        # The slider shows one grid at a time; moving it shows that step's.
        shown = "[...document.querySelectorAll('.slider figure')].filter(f => !f.hidden).map(f => f.dataset.step)"
        assert browser.evaluate(run, shown) == ["20"]
        move = "const s = document.querySelector('.slider input'); s.value = 0; s.dispatchEvent(new Event('input'));"
        browser.evaluate(run, move + shown)
        assert browser.evaluate(run, shown) == ["10"]
        assert browser.evaluate(run, "document.querySelector('.slider output').textContent") == "10"
        assert browser.evaluate(run, "document.querySelectorAll('svg.plot path.series').length") >= 6

        sweep = browser.open((sweep_dir / "report.html").as_uri())
        assert browser.errors(sweep) == [] and browser.remote_requests(sweep) == []
        assert _not_blank(browser.screenshot(sweep)) > 50
        links = browser.evaluate(sweep, "[...document.querySelectorAll('tbody a')].map(a => a.href)")
        assert {Path(unquote(urlparse(link).path)) for link in links} == {j / "report.html" for j in _jobs(sweep_dir)}
        # Clicking a header sorts the rows by it; clicking again reverses them.
        column = "[...document.querySelectorAll('th')].findIndex(th => th.textContent === 'seed')"
        seeds = f"[...document.querySelectorAll('tbody tr')].map(r => r.cells[{column}].textContent)"
        click = f"document.querySelectorAll('th')[{column}].click();"
        assert browser.evaluate(sweep, click + seeds) == ["0", "0", "1"]
        assert browser.evaluate(sweep, click + seeds) == ["1", "0", "0"]
        assert browser.errors(sweep) == []


@pytest.mark.slow  # the image path: a DCGAN run's grids; the toy sweep above covers the rest
@needs_chromium
def test_image_run_page_shows_its_grids(fashion_mnist_dir, tmp_path):
    from conftest import TINY_DCGAN, compose_config

    from gan_jax import loop

    run_dir = tmp_path / "dcgan"
    loop.run(compose_config([*TINY_DCGAN, f"dataset.data_dir={fashion_mnist_dir}"]), run_dir)
    text = report.write_run_report(run_dir).read_text()
    assert len(re.findall(r'<figure data-step="\d+"', text)) == len(list((run_dir / "samples").glob("step_*.png")))
    with Chromium(tmp_path / "profile") as browser:
        session = browser.open((run_dir / "report.html").as_uri())
        assert browser.errors(session) == [] and browser.remote_requests(session) == []
        width = browser.evaluate(session, "document.querySelector('.slider figure:not([hidden]) img').naturalWidth")
        assert width > 28 * 8  # a grid, 8 images wide
