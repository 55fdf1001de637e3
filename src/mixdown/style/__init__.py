"""Mixing like a reference song (issue 14; after Diff-MST, Vanka et al. 2024).

A reference is any finished stereo song, of another song, at any rate and length; it is
analysed, never mixed in. Its *style* (`features`: per-band balance and spectrum,
dynamics, floor as a reverb proxy, per-band width) steers the console settings two ways:

* **learned** (`conditioned`): the estimator's prediction corrected by a reference
  encoder, trained as Diff-MST is (two segments of one song mixed with the same
  settings: one segment's mix is the reference, the other's stems go in);
* **optimised** (`optimise`): gradient descent through the console's gains, pans and
  reverb on the style distance (`loss`), started from the learned prediction, within a
  time budget.

`reference` loads and checks reference files; `mixdown.mixers.style.StyleMixer` is the
method (``mixdown mix STEMS -o mix.wav --method style --reference REF.wav``).
"""
