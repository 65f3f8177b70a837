"""Canvas builders: signatures only, so callers decide how (and whether) to send them."""

from __future__ import annotations

from celery import chain, chord, group
from celery.canvas import Signature

from .tasks import add, multiply, square, tsum


def add_then_multiply(x: int = 2, y: int = 2, factor: int = 4) -> Signature:
    """``add(x, y) | multiply(factor)``: the parent's result becomes multiply's first argument."""
    return chain(add.s(x, y), multiply.s(factor))


def squares(n: int) -> Signature:
    return group(square.s(i) for i in range(n))


def sum_of_squares(n: int) -> Signature:
    """A chord: the squares run in parallel, tsum runs once with all of their results."""
    return chord((square.s(i) for i in range(n)), tsum.s())
