"""Synthetic multitrack data: instrument voices, score helpers and the bundled demo song."""
