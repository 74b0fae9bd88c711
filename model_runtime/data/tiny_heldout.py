# ruff: noqa: SIM110, B905  (textbook-style loops, as in the training corpus)
"""Held-out functions for the ``tiny`` model: NOT trained on.

Same style as ``tiny_corpus.py``, with doctests that pass. The tiny model memorises
its training corpus; on these it writes plausible bodies, some right and some wrong,
which is what tests of verification (a wrong first candidate, a later right one) need.
"""


def triple(x):
    """Return x times three.

    >>> triple(4)
    12
    """
    return x * 3


def add_three(a, b, c):
    """Return the sum of a, b and c.

    >>> add_three(1, 2, 3)
    6
    """
    return a + b + c


def is_divisible(a, b):
    """Return True if a is divisible by b.

    >>> is_divisible(10, 5)
    True
    >>> is_divisible(10, 3)
    False
    """
    return a % b == 0


def count_odd(xs):
    """Return how many numbers in xs are odd.

    >>> count_odd([1, 2, 3, 5])
    3
    """
    return sum(1 for x in xs if x % 2 == 1)


def filter_odd(xs):
    """Return the odd numbers of xs.

    >>> filter_odd([1, 2, 3, 4])
    [1, 3]
    """
    return [x for x in xs if x % 2 == 1]


def negate_all(xs):
    """Return a list with every number in xs negated.

    >>> negate_all([1, -2, 3])
    [-1, 2, -3]
    """
    return [-x for x in xs]


def sum_even(xs):
    """Return the sum of the even numbers in xs.

    >>> sum_even([1, 2, 3, 4])
    6
    """
    return sum(x for x in xs if x % 2 == 0)


def last_two(xs):
    """Return the last two items of xs.

    >>> last_two([1, 2, 3, 4])
    [3, 4]
    """
    return xs[-2:]


def is_long(s):
    """Return True if s has more than five characters.

    >>> is_long('banana')
    True
    >>> is_long('fig')
    False
    """
    return len(s) > 5


def whisper(s):
    """Return s in lower case with three dots.

    >>> whisper('HI')
    'hi...'
    """
    return s.lower() + "..."


def count_spaces(s):
    """Return the number of spaces in s.

    >>> count_spaces('a b c')
    2
    """
    return s.count(" ")


def ends_with_z(s):
    """Return True if s ends with the letter z.

    >>> ends_with_z('quiz')
    True
    >>> ends_with_z('quip')
    False
    """
    return s.endswith("z")


def max_of_three(a, b, c):
    """Return the largest of a, b and c.

    >>> max_of_three(3, 9, 4)
    9
    """
    return max(a, b, c)


def kilometers_to_meters(km):
    """Convert kilometers to meters.

    >>> kilometers_to_meters(3)
    3000
    """
    return km * 1000


def double(x):
    """Return x times two.

    >>> double(21)
    42
    """
    return x * 2


def is_upper(s):
    """Return True if s is in upper case.

    >>> is_upper('ABC')
    True
    >>> is_upper('Abc')
    False
    """
    return s.isupper()


def count_words_longer(s, n):
    """Return how many words in s are longer than n characters.

    >>> count_words_longer('a quick brown fox', 3)
    2
    """
    return sum(1 for w in s.split() if len(w) > n)


def sum_of_cubes(n):
    """Return the sum of the cubes of 1 to n.

    >>> sum_of_cubes(3)
    36
    """
    return sum(i * i * i for i in range(1, n + 1))


def second(xs):
    """Return the second item of xs.

    >>> second([7, 8, 9])
    8
    """
    return xs[1]


def odds_up_to(n):
    """Return the odd numbers from 1 to n.

    >>> odds_up_to(7)
    [1, 3, 5, 7]
    """
    return list(range(1, n + 1, 2))
