"""String helpers with doctested docstrings: `phi-lsp complete examples/strings_demo.py --all`."""


def reverse_words(sentence: str) -> str:
    """Return the words of sentence in reverse order.

    >>> reverse_words("hello big world")
    'world big hello'
    """


def count_vowels(text: str) -> int:
    """Count the vowels (a, e, i, o, u) in text, ignoring case.

    >>> count_vowels("Hello World")
    3
    """
    ...


def is_palindrome(s: str) -> bool:
    """Return True if s reads the same forwards and backwards.

    >>> is_palindrome("racecar")
    True
    >>> is_palindrome("abc")
    False
    """
    pass


def capitalize_all(words: list[str]) -> list[str]:
    """Capitalize every word in the list.

    Example: capitalize_all(["a", "bc"]) == ["A", "Bc"]
    """
    raise NotImplementedError
