"""Listening tests: MUSHRA (ITU-R BS.1534-3), BS.1116-3, AB and ABX; build, run, analyse.

The pipeline::

    CONFIG.yaml -> config.load_config -> build.build_test -> test folder (manifest + excerpts)
    test folder -> mixdown.web.listen (participants answer; store.ResponseStore, SQLite)
    test folder -> results.write_results -> CSV, box plots, markdown report

Modules: `config` (YAML -> dataclasses, the test types), `stimuli` (excerpts, anchors,
loudness matching), `build` (conditions from files or mixing methods -> test folder),
`manifest` (the test folder's layout), `randomise` (per-participant trials of each type),
`store` (SQLite answers and the rules of submitting them), `screening` (BS.1534-3's two
post-screening rules), `statistics` (means, clipped confidence intervals, Wilcoxon + Holm,
binomial tests), `analysis`, `plots`, `report` (MUSHRA), `paired` (BS.1116, AB, ABX) and
`results`.
"""
