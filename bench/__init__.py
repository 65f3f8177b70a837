"""Benchmarks of the stack on the local lab: ``make bench`` (``python -m bench``)."""
