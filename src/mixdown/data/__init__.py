"""Multitrack datasets: the folder layout, ENST-Drums, MedleyDB and MUSDB18, song checks, splits,
lazy segments and batching (the synthesizer that makes synthetic datasets is `mixdown.synth`)."""
