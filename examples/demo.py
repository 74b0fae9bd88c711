"""A few functions for phi-lsp to fill: `phi-lsp complete examples/demo.py --all`."""


def add(a, b):
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    """


def is_even(n):
    """Return True if n is even.

    >>> is_even(4)
    True
    >>> is_even(7)
    False
    """
