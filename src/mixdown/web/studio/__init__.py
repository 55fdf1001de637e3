"""The mixing studio (``mixdown serve``): upload stems, mix, edit the console, listen, export.

`service.Studio` is the API (sessions, mixing jobs, edits, renders), `app.create_app` its
FastAPI front, `engine.MixEngine` the incremental renderer, `store.SessionStore` the SQLite
persistence; ``static/`` holds the page (plain HTML, CSS and ES modules, no build step).
"""
