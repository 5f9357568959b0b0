"""Tiny datasets the project generates itself, for demos and tests (import the submodules)."""
