"""Numbers and a small class: `phi-lsp complete examples/numbers_demo.py --all`."""

import math


def square(x):
    """Return x squared.

    >>> square(3)
    9
    """


def factorial(n: int) -> int:
    """Return n! for n >= 0.

    >>> factorial(5)
    120
    >>> factorial(0)
    1
    """


def mean(values: list[float]) -> float:
    """Arithmetic mean of a non-empty list.

    >>> mean([1, 2, 3])
    2.0
    """


class Circle:
    """A circle of a given radius."""

    def __init__(self, radius: float) -> None:
        self.radius = radius

    def area(self) -> float:
        """The area of the circle.

        >>> round(Circle(1).area(), 2)
        3.14
        """

    def scale(self, factor: float) -> "Circle":
        """A new circle with the radius multiplied by factor.

        >>> Circle(2).scale(3).radius
        6
        """
