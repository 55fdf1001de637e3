"""Web apps of mixdown: the mixing studio and the listening test (FastAPI, no build step)."""
