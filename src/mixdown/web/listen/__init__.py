"""The MUSHRA listening-test web app (see `mixdown.web.listen.app`)."""
