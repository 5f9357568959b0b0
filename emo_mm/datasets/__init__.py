"""Tiny datasets the project generates, for demos and tests, and the dataset preflight check
(import the submodules)."""
