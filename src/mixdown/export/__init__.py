"""Exports of a mix's console settings for other tools.

* `mixdown.export.reaper`: a REAPER project (``.RPP``) with one track per stem, faders,
  pans, ReaEQ and ReaComp set from the settings (``mixdown export reaper``).
* `mixdown.export.mixsheet`: every setting as a CSV table or an aligned text sheet
  (``mixdown export sheet``).
"""
