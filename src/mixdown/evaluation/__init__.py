"""Evaluation reports: the per-song results table, its summary, plots and the HTML page.

`mixdown.evaluate` runs methods over a dataset and fills these in:

* `results`: the per song x method CSV (``metrics.csv``), appended atomically so a run resumes;
* `summary`: medians and quartiles per method and metric, as CSV, markdown tables and HTML;
* `analysis`: long-term average spectrum and panning per band of one mix (numpy);
* `plots`: box plots per metric and the spectrum / panning figures (matplotlib, Agg);
* `html`: ``report.html``, the tables with the plots and audio players.
"""
