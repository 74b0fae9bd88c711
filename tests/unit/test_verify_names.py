"""Which functions `phi-lsp verify` reports, and under which names: pytest's doctest items
(functions, methods, static/class methods, property getters, nested classes; one item
per name, the definition the module ends up with; docstrings given after the def)."""

from __future__ import annotations

import ast

from phi_lsp.verify import _assigned_docs, _functions

SOURCE = '''
def f():
    """old"""


def f():
    """new"""


class Shape:
    @property
    def area(self):
        """getter"""

    @area.setter
    def area(self, value):
        pass

    @area.deleter
    def area(self):
        pass

    @staticmethod
    def make():
        pass

    @classmethod
    def unit(cls):
        pass

    class Meta:
        def kind(self):
            pass


def g():
    pass


if sys.version_info >= (3, 9):
    def versioned():
        pass
else:
    def versioned():
        pass

try:
    from _speedups import fast
except ImportError:
    def fast():
        pass

if __name__ == "__main__":
    def main():
        pass

if TYPE_CHECKING:
    def typing_only():
        pass


g.__doc__ = """
>>> g()
"""
h = g
Shape.make.__doc__ = f.__doc__
'''


def test_names_and_definitions_are_pytests() -> None:
    tree = ast.parse(SOURCE)
    found = _functions(tree)
    names = [q for q, _ in found]
    assert names == [
        "f", "Shape.area", "Shape.make", "Shape.unit", "Shape.Meta.kind", "g", "versioned", "fast",
    ]  # fmt: skip
    assert dict(found)["versioned"].lineno > SOURCE.splitlines().index("else:")  # the last
    f = dict(found)["f"]
    assert ast.get_docstring(f) == "new"  # the later definition
    assert ast.get_docstring(dict(found)["Shape.area"]) == "getter"  # not the setter


def test_docstrings_assigned_after_the_def() -> None:
    tree = ast.parse(SOURCE)
    docs = _assigned_docs(tree, dict(_functions(tree)))
    assert docs["g"].text.strip() == ">>> g()"
    assert docs["g"].line == SOURCE.splitlines().index('g.__doc__ = """') + 1
    assert docs["Shape.make"].text == "new"  # f.__doc__: f's own docstring
    assert set(docs) == {"g", "Shape.make"}
