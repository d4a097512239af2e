"""The report as one self-contained HTML page: inline CSS and SVG charts, no scripts, no links.

:func:`report_sections` is the body the admin page reuses; :func:`render_page` wraps it.
Every value from the database is escaped: questions are user input.
"""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
main{padding:16px 24px;max-width:1100px}
section{background:#fff;border-radius:8px;padding:12px 18px;margin:0 0 16px;
  box-shadow:0 1px 2px #0001}
h2{font-size:16px;margin:4px 0 10px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:10px 16px;min-width:110px;
  box-shadow:0 1px 2px #0001}
.card b{display:block;font-size:24px}.muted{color:#667}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;font-size:14px;
  vertical-align:top}
button{cursor:pointer}form.inline{display:inline}
"""
COLOURS = {
    "answered": "#2e7d32",
    "refused": "#f9a825",
    "escalated": "#1565c0",
    "errors": "#c62828",
    "up": "#2e7d32",
    "down": "#c62828",
}


def bar_chart(
    items: list[tuple[str, float, str]], *, width: int = 520, label_width: int = 200
) -> str:
    """Horizontal bars as inline SVG: (label, value, colour) per bar."""
    if not items:
        return '<p class="muted">nothing yet</p>'
    top = max(value for _, value, _ in items) or 1
    row, bar_space = 26, width - label_width - 60
    parts = [
        f'<svg role="img" width="{width}" height="{row * len(items) + 4}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="13" font-family="system-ui,sans-serif">'
    ]
    for i, (label, value, colour) in enumerate(items):
        y = i * row + 4
        length = max(1.0, bar_space * value / top) if value else 0
        shown = label if len(label) <= 30 else label[:29] + "…"
        parts.append(
            f'<text x="0" y="{y + 15}">{escape(shown)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="18" '
            f'fill="{colour}" rx="3"/>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}">{_number(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _moment(iso: str) -> str:
    return iso[:16].replace("T", " ")


def report_sections(report: dict[str, Any]) -> str:
    ttft = report["time_to_first_token_ms"]
    cards = [
        ("questions", report["questions"]),
        ("answered", report["answered"]),
        ("refused", report["refused"]),
        ("escalated", report["escalated"]),
        ("errors", report["errors"]),
        ("helpful votes", report["feedback"]["up"]),
        ("unhelpful votes", report["feedback"]["down"]),
        ("first token p50 ms", ttft["median"]),
        ("first token p95 ms", ttft["p95"]),
    ]
    out = ['<section><h2>Overview</h2><div class="cards">']
    out += [f'<div class="card"><b>{_number(v)}</b>{escape(k)}</div>' for k, v in cards]
    window = report["window"]
    since = _moment(window["since"]) if window["since"] else "the beginning"
    out.append(
        f'</div><p class="muted">from {escape(since)} to {escape(_moment(window["until"]))} UTC'
        "</p></section>"
    )
    outcomes = [
        (k, float(report[k]), COLOURS[k]) for k in ("answered", "refused", "escalated", "errors")
    ]
    votes = [
        ("helpful", float(report["feedback"]["up"]), COLOURS["up"]),
        ("not helpful", float(report["feedback"]["down"]), COLOURS["down"]),
    ]
    out.append(
        f"<section><h2>Outcomes</h2>{bar_chart(outcomes)}<h2>Feedback</h2>{bar_chart(votes)}</section>"
    )
    out.append(f"<section><h2>Coverage gaps ({escape(report['gap_clustering'])})</h2>")
    gaps = report["coverage_gaps"]
    if gaps:
        out.append(
            "<table><tr><th>questions</th><th>gap</th><th>examples</th><th>nearest pages</th></tr>"
        )
        for gap in gaps:
            examples = "<br>".join(escape(q) for q in gap["questions"])
            pages = "<br>".join(escape(p) for p in gap.get("nearest_pages") or ()) or "—"
            out.append(
                f"<tr><td>{gap['count']}</td><td>{escape(gap['label'])}</td><td>{examples}</td>"
                f"<td>{pages}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append('<p class="muted">no unanswered questions</p>')
    out.append("</section>")
    docs = report["documents"]
    most = [(d["source"], float(d["citations"]), "#455a64") for d in docs["most_cited"]]
    out.append(f"<section><h2>Most cited documents</h2>{bar_chart(most, label_width=260)}")
    least = ", ".join(f"{escape(d['source'])} ({d['citations']})" for d in docs["least_cited"])
    out.append(f"<h2>Least cited</h2><p>{least or '–'}</p>")
    never = docs.get("never_cited")
    if never is not None:
        listed = ", ".join(escape(s) for s in never) or "none: every document was cited"
        out.append(f"<h2>Never cited ({len(never)})</h2><p>{listed}</p>")
    out.append("</section>")
    return "".join(out)


def render_page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><header><h1>{escape(title)}</h1></header><main>{body}</main></body></html>"
    )


def render_report(report: dict[str, Any]) -> str:
    return render_page("supportbot report", report_sections(report))
