"""An ambiguous docstring that an example settles: `phi-lsp complete
examples/ambiguous_demo.py --function extreme --verify --candidates 4 --model tiny`.

"The extreme number" could be the largest or the smallest. The tiny model learnt both
(its corpus has this prompt twice, once with ``max`` and once with ``min``); greedy
decoding writes ``max(xs)``, which the second example refutes, and a sampled candidate
writes ``min(xs)``, which passes. Without ``--verify`` you get the greedy body.
"""


def extreme(xs):
    """Return the extreme number in xs.

    >>> extreme([5])
    5
    >>> extreme([3, 9, 4])
    3
    """
