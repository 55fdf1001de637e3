"""Exports of a mix's console settings for other tools.

* `mixdown.export.reaper`: a REAPER project (``.RPP``) with one track per stem, faders,
  pans, ReaEQ and ReaComp set from the settings, the reverb bus on ReaVerb with the
  console's impulse response and ReaLimit on the master (``mixdown export reaper``).
* `mixdown.export.rpp`: reading such a project back into settings (the studio opens it).
* `mixdown.export.mixsheet`: every setting as a CSV table or an aligned text sheet
  (``mixdown export sheet``).
"""
