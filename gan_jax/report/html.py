"""The HTML pieces: the page with its CSS and small inline script, sections, tables and cells."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gan_jax.report.svg import esc, fmt, number

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)


CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
  color: #1d1d1f; background: #fafafa; }
header, main, footer { max-width: 1240px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; }
h1 { font-size: 20px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 16px; margin: 26px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.muted { color: #666; font-weight: normal; }
.path { color: #666; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px;
  background: #777; }
.badge.finished { background: #2e7d32; } .badge.running { background: #1565c0; }
.badge.failed, .badge.diverged, .badge.invalid_config, .badge.no_summary { background: #c62828; }
.badge.preempted { background: #ef6c00; }
.notes { background: #fff8e1; border: 1px solid #ffe082; padding: 6px 12px; border-radius: 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 14px; }
.grid.boxes { grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); }
figure { margin: 0; }
.chart { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px 10px; }
.chart figcaption { font-weight: 600; margin-bottom: 4px; }
.chart.empty p { color: #888; margin: 24px 0; text-align: center; }
svg.plot { width: 100%; height: auto; font-size: 11px; fill: #333; }
svg.plot text { fill: #333; }
.legend { list-style: none; margin: 2px 0 0; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 14px;
  font-size: 12px; }
.legend li { display: flex; align-items: center; gap: 4px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #e0e0e0; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; background: #f0f0f0; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.scroll { overflow-x: auto; }
pre { background: #fff; border: 1px solid #e3e3e3; padding: 10px; overflow: auto; max-height: 520px; font-size: 12px; }
.slider { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 10px; display: inline-block; }
.slider label { display: flex; align-items: center; gap: 10px; margin-bottom: 8px; }
.slider input { width: 420px; }
.slider img { width: 560px; max-width: 100%; image-rendering: pixelated; }
.figures img { max-width: 100%; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 14px; }
.figures figure.wide { grid-column: 1 / -1; }
.headline { font-weight: 600; }
.figures figure { background: #fff; border: 1px solid #e3e3e3; padding: 6px; border-radius: 6px; }
footer { color: #888; font-size: 12px; padding: 24px 20px 30px; }
"""

SCRIPT = """
(function () {
  function key(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) raw = cell.textContent.trim();
    if (raw === "" || raw === "\\u2013") return null;
    var n = Number(raw);
    return isNaN(n) ? raw.toLowerCase() : n;
  }
  function compare(a, b) {
    if (a === b) return 0;
    if (a === null) return 1;
    if (b === null) return -1;
    if (typeof a !== typeof b) return typeof a === "number" ? -1 : 1;
    return a < b ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, column) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var a = key(r.cells[column]), b = key(s.cells[column]);
          if (a === null || b === null) return compare(a, b);
          return ascending ? compare(a, b) : compare(b, a);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  document.querySelectorAll(".slider").forEach(function (box) {
    var input = box.querySelector("input"), out = box.querySelector("output");
    var frames = box.querySelectorAll("figure");
    input.addEventListener("input", function () {
      var shown = Number(input.value);
      frames.forEach(function (frame, i) { frame.hidden = i !== shown; });
      out.textContent = frames[shown].getAttribute("data-step");
    });
  });
})();
"""


def page(title: str, header: str, body: str) -> str:
    """A whole HTML document: inline style and script, nothing loaded from anywhere."""
    written = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style></head>\n"
        f"<body><header>{header}</header>\n<main>{body}</main>\n"
        f"<footer>written by gan-report at {esc(written)}; one self-contained file (no network requests)</footer>\n"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def badge(status: str) -> str:
    return f'<span class="badge {esc(re.sub(r"[^a-z_]", "", status))}">{esc(status)}</span>'


def section(title: str, content: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{content}</section>\n'


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def key_value_table(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{_value_html(v)}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>" if rows else '<p class="muted">nothing recorded</p>'


def _value_html(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"<code>{esc(json.dumps(value, indent=1, default=str))}</code>"
    return esc(fmt(value))


@dataclass(frozen=True)
class Cell:
    html: str  # already escaped
    sort: str | float | None = None  # data-sort: the value the column sorts by
    numeric: bool = False


def text_cell(value: Any) -> Cell:
    return Cell(esc(fmt(value)))


def number_cell(value: Any) -> Cell:
    finite = number(value)
    return Cell(esc(fmt(value)), "" if finite is None else repr(finite), numeric=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], sortable: bool = False) -> str:
    head = "".join(
        f'<th scope="col" title="click to sort">{esc(h)}</th>' if sortable else f"<th>{esc(h)}</th>" for h in headers
    )
    body = "".join("<tr>" + "".join(_cell_html(c) for c in row) + "</tr>" for row in rows)
    css = ' class="sortable"' if sortable else ""
    return f'<div class="scroll"><table{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _cell_html(cell: Cell) -> str:
    sort = f' data-sort="{esc(cell.sort)}"' if cell.sort is not None else ""
    css = ' class="num"' if cell.numeric else ""
    return f"<td{css}{sort}>{cell.html}</td>"
