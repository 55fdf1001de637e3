"""Limits on what mixdown accepts: sample rates, counts, settings-file sizes.

One place for the numbers that the command line, the settings file, the audio loader
and the dataset checks share, so that what one accepts the others accept too (a rate
that ``mix`` writes into a settings file is one that ``render`` takes). Importing this
module costs nothing (no third-party imports): the CLI checks its arguments with these
numbers before it loads anything heavy.
"""

from __future__ import annotations

MIN_SAMPLE_RATE_HZ = 8000
"""Lowest rate mixdown mixes at (stems, settings files, ``--sample-rate``)."""

MAX_SAMPLE_RATE_HZ = 192000
"""Highest rate mixdown mixes at; files at higher rates are resampled with ``--sample-rate``."""

MIN_FILE_RATE_HZ = 1000
"""Lowest rate an audio file may have to be read at all (it is then resampled)."""

MAX_FILE_RATE_HZ = 768000
"""Highest rate an audio file may have to be read at all (it is then resampled)."""

DEFAULT_MAX_STEMS = 32
"""Default of ``--max-stems``."""

MAX_STEMS = 256
"""Most stems any command or settings file takes (``--max-stems`` at most this; channels of a settings file)."""

MAX_SEED = 2**32 - 1
"""Largest seed (numpy's legacy generators take 32-bit seeds)."""

MAX_WORKERS = 256
"""Most parallel worker processes."""

MAX_SETTINGS_BYTES = 16 * 2**20
"""Largest settings / configuration file read (JSON or YAML)."""

MAX_NESTING = 32
"""Deepest nesting of lists and objects in a settings / configuration file (the settings file needs 4)."""

MAX_YAML_ALIASES = 1000
"""Most YAML aliases (``*name``) in a configuration file (guards against alias bombs)."""
