"""``report.html``: an evaluation's tables, plots and audio on one self-standing page.

Files are linked by paths relative to the page (plots and WAVs stay beside it); every
text is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from mixdown.evaluation.summary import Table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; background: #eef6ee; }
figure { display: inline-block; margin: 0.5em; }
img { max-width: 100%; }
"""


def _table(table: Table) -> list[str]:
    lines = [f"<h3>{escape(table.title)}</h3>", "<table>",
             "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.header) + "</tr>"]
    for row in table.rows:
        lines.append("<tr>" + "".join(f'<td class="best">{escape(c.text)}</td>' if c.best else
                                      f"<td>{escape(c.text)}</td>" for c in row) + "</tr>")
    lines.append("</table>")
    return lines


def report_html(title: str, notes: Sequence[str], tables: Sequence[Table], plots: Sequence[tuple[str, str]],
                audio: Sequence[tuple[str, str]]) -> str:
    """The page as HTML text.

    Args:
        title: Page title.
        notes: Paragraphs under the title (plain text).
        tables: From `mixdown.evaluation.summary.summary_tables`.
        plots: ``(caption, PNG path relative to the page)``, in order.
        audio: ``(caption, WAV path relative to the page)`` for the listening excerpts.

    Returns:
        A complete HTML document.
    """
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{escape(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
             f"<h1>{escape(title)}</h1>"]
    lines += [f"<p>{escape(note)}</p>" for note in notes]
    lines.append("<h2>Summary: median [q25, q75] over songs</h2>")
    for table in tables:
        lines += _table(table)
    if audio:
        lines.append("<h2>Listening</h2>")
        lines += [f'<p>{escape(caption)}<br><audio controls preload="none" src="{escape(src)}"></audio></p>'
                  for caption, src in audio]
    if plots:
        lines.append("<h2>Plots</h2>")
        lines += [f'<figure><img src="{escape(src)}" alt="{escape(caption)}">'
                  f"<figcaption>{escape(caption)}</figcaption></figure>" for caption, src in plots]
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)
