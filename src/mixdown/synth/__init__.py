"""The synthesizer: synthetic multitracks with known console settings, no downloads.

* `voice`: notes (``Event``, ``Pattern``) and what every voice shares (fades, mixing a
  note into a buffer, argument checks);
* `score`: the parts of a song (drum grooves, chord progressions, bass, comping, melody,
  arpeggios);
* `drums`, `pitched`: the voices that render them (kit pieces with overhead and room
  microphones; FM bass, electric piano, plucked string, lead synth);
* `samples`: the same scores played by sample libraries (Hydrogen drumkits, SoundFonts);
* `demo`: composing and rendering a song into stems, and the bundled demo multitrack;
* `targets`: engineer-like console settings drawn around the class rules
  (`mixdown.class_rules`), the ground truth of synthetic mixes;
* `synthetic`: datasets of such songs in the folder layout (`mixdown.data.folder`).
"""
