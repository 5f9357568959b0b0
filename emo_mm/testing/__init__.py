"""Literal, deliberately plain re-implementations of the specs, independent of the fast models.

The tests compare the backbones with them on identical random weights, and
``tools/benchmark.py`` times the backbones against them in the same run. They live in the package
(not in ``tests/``) so that both import them the same way, from a checkout or an install.
"""
