"""MUSHRA-style listening tests (ITU-R BS.1534-3): build, run, analyse.

The pipeline::

    CONFIG.yaml -> config.load_config -> build.build_test -> test folder (manifest + excerpts)
    test folder -> mixdown.web.listen (participants rate; store.ResponseStore, SQLite)
    test folder -> results.write_results -> CSV, box plots, markdown report

Modules: `config` (YAML -> dataclasses), `stimuli` (excerpts, anchors, loudness
matching), `build` (conditions from files or mixing methods -> test folder),
`manifest` (the test folder's layout), `randomise` (per-participant order), `store`
(SQLite responses), `screening` (BS.1534-3 post-screening), `statistics` (means,
confidence intervals, Wilcoxon + Holm), `analysis`, `plots`, `report` and `results`.
"""
