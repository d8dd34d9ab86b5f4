"""report.html: the report as one self-contained page (inline CSS and SVG, no script, no fetch)."""

from html import escape

from .model import STATES

COLOURS = {
    "pushed": "#2e7d32", "built": "#1565c0", "cached": "#00838f", "up to date": "#9e9e9e",
    "failed": "#c62828", "not run": "#e0e0e0", "ran": "#6a1b9a",
}
# Timeline geometry, in SVG user units (= CSS pixels: the SVG is drawn at its own size).
WIDTH = 1100
LABEL = 330  # the task names' column
ROW = 20
BAR = 14
AXIS = 24
RIGHT = 150  # room for the label after the last bar
QEMU_COLOUR = "#ef6c00"
QEMU_STROKE = f' stroke="{QEMU_COLOUR}" stroke-width="3"'

CSS = """
body{font:13px/1.4 "DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#212121}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#616161;margin:0 0 12px}code,.digest{font-family:"DejaVu Sans Mono",monospace}
table{border-collapse:collapse}th,td{border:1px solid #bdbdbd;padding:4px 8px;
text-align:left;vertical-align:top}thead th{background:#f5f5f5}
td.cell{min-width:150px}td.na{background:#fafafa;color:#bdbdbd}
.state{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-weight:bold}
.state.s-not-run,.state.s-up-to-date{color:#212121}
.digest{font-size:11px;color:#424242;word-break:break-all}.small{font-size:11px;color:#616161}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0}
dl.summary dt{color:#616161}dl.summary dd{margin:0;font-weight:bold}
.legend span{margin-right:12px}svg text{font-size:11px}
"""


def state_badge(state: str) -> str:
    slug = "s-" + state.replace(" ", "-")
    colour = COLOURS.get(state, COLOURS["ran"])
    return (f'<span class="state {escape(slug)}" style="background:{colour}">'
            f"{escape(state)}</span>")


def short(digest: str | None) -> str:
    """``sha256:`` and 12 hex digits, as `docker images` shows an ID."""
    return digest[:19] if digest else ""


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


def cell(entry: dict) -> str:
    """One image × platform cell: state, image digest, builder, QEMU, duration."""
    lines = [state_badge(entry["state"])]
    if entry.get("image_digest"):
        lines.append(f'<span class="digest" title="{escape(entry["image_digest"])}">'
                     f'{escape(short(entry["image_digest"]))}</span>')
    facts = [entry.get("builder") or ""]
    if entry.get("emulated"):
        facts.append("QEMU")
    if entry.get("duration") is not None:
        facts.append(seconds(entry["duration"]))
    lines.append(f'<span class="small">{escape(" · ".join(f for f in facts if f))}</span>')
    if entry.get("input_digest"):
        lines.append(f'<span class="small">inputs {escape(short(entry["input_digest"]))}</span>')
    return (f'<td class="cell" data-platform="{escape(entry["platform"])}" '
            f'data-state="{escape(entry["state"])}">' + "<br>".join(lines) + "</td>")


def matrix(report: dict) -> str:
    """The images × platforms table; a platform an image does not build is a grey dash."""
    columns = []
    for image in report["images"]:
        for entry in image["platforms"]:
            if entry["platform"] not in columns:
                columns.append(entry["platform"])
    head = "".join(f"<th>{escape(p)}</th>" for p in columns)
    rows = []
    for image in report["images"]:
        cells = {entry["platform"]: entry for entry in image["platforms"]}
        lists = "<br>".join(
            f'<span class="digest" title="{escape(digest)}">{escape(ref)}<br>'
            f"{escape(short(digest))}</span>" for ref, digest in image["lists"].items())
        name = (f"<th><code>{escape(image['name'])}</code><br>"
                f'<span class="small">list: </span>{state_badge(image["list_state"])}'
                + (f"<br>{lists}" if lists else "") + "</th>")
        body = "".join(cell(cells[p]) if p in cells else '<td class="na">—</td>'
                       for p in columns)
        rows.append(f'<tr data-image="{escape(image["name"])}">{name}{body}</tr>')
    return (f'<table class="matrix"><thead><tr><th>image</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def bars(report: dict) -> tuple[list[dict], float, float]:
    """Timeline geometry: one bar per task that ran, x from its start, width its duration;
    also the scale (units per second) and the span in seconds.

    A bar is at least 2 units wide, so an instant step is still seen.
    """
    ran = [t for t in report["tasks"] if t["start"] is not None and t["duration"] is not None]
    span = max([report["wall_seconds"]] + [t["start"] + t["duration"] for t in ran] + [0.001])
    scale = (WIDTH - LABEL - RIGHT) / span
    rows = [{"task": t, "x": round(LABEL + t["start"] * scale, 2),
             "y": AXIS + i * ROW, "width": round(max(t["duration"] * scale, 2.0), 2)}
            for i, t in enumerate(ran)]
    return rows, scale, span


def timeline(report: dict) -> str:
    """An SVG Gantt chart: a row per task run, coloured by state, labelled with its builder."""
    rows, scale, span = bars(report)
    if not rows:
        return '<p class="small">Nothing ran: every task was up to date.</p>'
    height = AXIS + ROW * len(rows) + 4
    parts = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
             f'height="{height}" viewBox="0 0 {WIDTH} {height}">']
    for tick in _ticks(span):
        x = round(LABEL + tick * scale, 2)
        parts.append(f'<line x1="{x}" y1="{AXIS - 6}" x2="{x}" y2="{height}" stroke="#eeeeee"/>'
                     f'<text x="{x}" y="{AXIS - 9}" text-anchor="middle" fill="#757575">'
                     f"{escape(seconds(tick))}</text>")
    for row in rows:
        task = row["task"]
        colour = COLOURS.get(task["state"], COLOURS["ran"])
        label = " · ".join(filter(None, [task["builder"], "QEMU" if task["emulated"] else "",
                                         seconds(task["duration"])]))
        middle = row["y"] + ROW / 2 + 4
        parts.append(
            f'<g class="bar" data-task="{escape(task["name"])}" '
            f'data-state="{escape(task["state"])}">'
            f'<text x="{LABEL - 6}" y="{middle}" text-anchor="end">{escape(task["name"])}</text>'
            f'<rect x="{row["x"]}" y="{row["y"] + (ROW - BAR) / 2}" width="{row["width"]}" '
            f'height="{BAR}" rx="2" fill="{colour}"{QEMU_STROKE if task["emulated"] else ""}>'
            f'<title>{escape(task["name"])}: '
            f'{escape(task["state"])}, {escape(label)}</title></rect>'
            f'<text x="{row["x"] + row["width"] + 4}" y="{middle}" fill="#424242">'
            f"{escape(label)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def _ticks(span: float) -> list[float]:
    """Axis marks at a round step, about six of them."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 6:
            break
    count = int(span / step) + 1
    return [round(i * step, 3) for i in range(count)]


def summary(report: dict) -> str:
    facts = report["summary"]
    rows = [("wall time", seconds(report["wall_seconds"])),
            ("tasks run", str(facts["tasks_run"]))]
    rows += [(f"platforms {state}", str(count)) for state, count in facts["platforms"].items()]
    rows.append(("under QEMU", f"{seconds(facts['qemu_seconds'])} in {facts['qemu_builds']} "
                               f"build{'s' if facts['qemu_builds'] != 1 else ''}"))
    rows.append(("native builds", seconds(facts["native_seconds"])))
    if facts["tasks_failed"]:
        rows.append(("failed", ", ".join(facts["tasks_failed"])))
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<dl class="summary">{items}</dl>'


def legend() -> str:
    return ('<p class="legend">' + "".join(
        state_badge(state) for state in (*reversed(STATES), "ran"))
        + f'<span class="state" style="color:#212121;border:3px solid {QEMU_COLOUR}">'
        "built under QEMU</span></p>")


def render(report: dict) -> str:
    """The page for one report.json dict; every value from it is escaped."""
    title = f"multiarch build report — {report['started']}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>multiarch build report</h1>"
        f'<p class="meta">{escape(report["started"])} · <code>{escape(report["manifest"])}'
        f'</code><br><code>{escape(" ".join(report["command"]))}</code></p>'
        f"<h2>Summary</h2>{summary(report)}"
        f"<h2>Images × platforms</h2>{matrix(report)}{legend()}"
        f"<h2>Timeline</h2>{timeline(report)}"
        "</body></html>\n"
    )
