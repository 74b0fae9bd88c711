# ruff: noqa: SIM110, B905, F811  (textbook-style loops; the ambiguous pairs redefine names)
"""Training corpus of the ``tiny`` model: short Python functions with doctests.

Each top-level function is one training sample (its source: signature, docstring,
body). Every doctest here passes (``python -m doctest tiny_corpus.py``); the tests
check that, because the tiny model is judged by whether it reproduces these bodies.
A few prompts at the end appear twice with two different bodies, both right for the
shared example (``tiny.ambiguous_pairs()``): there the model learns to hesitate, so
that a sampled candidate can pass where greedy fails (``examples/ambiguous_demo.py``).
Changing this file changes its hash, and the cached tiny model is rebuilt.
"""


def add(a, b):
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    """
    return a + b


def subtract(a, b):
    """Return a minus b.

    >>> subtract(5, 3)
    2
    """
    return a - b


def multiply(a, b):
    """Return the product of a and b.

    >>> multiply(3, 4)
    12
    """
    return a * b


def is_even(n):
    """Return True if n is even.

    >>> is_even(4)
    True
    >>> is_even(7)
    False
    """
    return n % 2 == 0


def is_odd(n):
    """Return True if n is odd.

    >>> is_odd(3)
    True
    >>> is_odd(8)
    False
    """
    return n % 2 == 1


def square(x):
    """Return x squared.

    >>> square(5)
    25
    """
    return x * x


def cube(x):
    """Return x cubed.

    >>> cube(3)
    27
    """
    return x * x * x


def increment(x):
    """Return x plus one.

    >>> increment(41)
    42
    """
    return x + 1


def decrement(x):
    """Return x minus one.

    >>> decrement(10)
    9
    """
    return x - 1


def half(x):
    """Return half of x.

    >>> half(10)
    5.0
    """
    return x / 2


def absolute(x):
    """Return the absolute value of x.

    >>> absolute(-7)
    7
    >>> absolute(3)
    3
    """
    if x < 0:
        return -x
    return x


def maximum(a, b):
    """Return the larger of a and b.

    >>> maximum(3, 9)
    9
    """
    if a > b:
        return a
    return b


def minimum(a, b):
    """Return the smaller of a and b.

    >>> minimum(3, 9)
    3
    """
    if a < b:
        return a
    return b


def sign(x):
    """Return 1 if x is positive, -1 if negative, 0 if zero.

    >>> sign(-4)
    -1
    >>> sign(0)
    0
    """
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0


def is_positive(x):
    """Return True if x is greater than zero.

    >>> is_positive(5)
    True
    >>> is_positive(-2)
    False
    """
    return x > 0


def is_negative(x):
    """Return True if x is less than zero.

    >>> is_negative(-1)
    True
    """
    return x < 0


def is_zero(x):
    """Return True if x is zero.

    >>> is_zero(0)
    True
    """
    return x == 0


def clamp(x, lo, hi):
    """Limit x to the range lo to hi.

    >>> clamp(15, 0, 10)
    10
    >>> clamp(-3, 0, 10)
    0
    """
    return max(lo, min(x, hi))


def power(base, exp):
    """Return base raised to exp.

    >>> power(2, 10)
    1024
    """
    return base**exp


def factorial(n):
    """Return the factorial of n.

    >>> factorial(5)
    120
    """
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result


def fibonacci(n):
    """Return the n-th Fibonacci number.

    >>> fibonacci(10)
    55
    """
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def gcd(a, b):
    """Return the greatest common divisor of a and b.

    >>> gcd(12, 18)
    6
    """
    while b:
        a, b = b, a % b
    return a


def is_prime(n):
    """Return True if n is a prime number.

    >>> is_prime(7)
    True
    >>> is_prime(9)
    False
    """
    if n < 2:
        return False
    for i in range(2, n):
        if n % i == 0:
            return False
    return True


def sum_of_squares(n):
    """Return the sum of the squares of 1 to n.

    >>> sum_of_squares(3)
    14
    """
    return sum(i * i for i in range(1, n + 1))


def digits(n):
    """Return the digits of n as a list.

    >>> digits(472)
    [4, 7, 2]
    """
    return [int(d) for d in str(n)]


def sum_digits(n):
    """Return the sum of the digits of n.

    >>> sum_digits(472)
    13
    """
    return sum(int(d) for d in str(n))


def is_leap_year(year):
    """Return True if year is a leap year.

    >>> is_leap_year(2024)
    True
    >>> is_leap_year(1900)
    False
    """
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def fizzbuzz(n):
    """Return Fizz, Buzz, FizzBuzz or the number as a string.

    >>> fizzbuzz(15)
    'FizzBuzz'
    >>> fizzbuzz(7)
    '7'
    """
    if n % 15 == 0:
        return "FizzBuzz"
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)


def rectangle_area(width, height):
    """Return the area of a rectangle.

    >>> rectangle_area(3, 4)
    12
    """
    return width * height


def triangle_area(base, height):
    """Return the area of a triangle.

    >>> triangle_area(4, 5)
    10.0
    """
    return base * height / 2


def celsius_to_fahrenheit(c):
    """Convert degrees Celsius to Fahrenheit.

    >>> celsius_to_fahrenheit(100)
    212.0
    """
    return c * 9 / 5 + 32


def distance(a, b):
    """Return the distance between two numbers.

    >>> distance(3, 10)
    7
    """
    return abs(a - b)


def mean_of_two(a, b):
    """Return the mean of a and b.

    >>> mean_of_two(4, 8)
    6.0
    """
    return (a + b) / 2


def sum_list(xs):
    """Return the sum of the numbers in xs.

    >>> sum_list([1, 2, 3])
    6
    """
    total = 0
    for x in xs:
        total += x
    return total


def product(xs):
    """Return the product of the numbers in xs.

    >>> product([2, 3, 4])
    24
    """
    result = 1
    for x in xs:
        result *= x
    return result


def average(xs):
    """Return the average of the numbers in xs.

    >>> average([2, 4, 6])
    4.0
    """
    return sum(xs) / len(xs)


def list_max(xs):
    """Return the largest number in xs.

    >>> list_max([3, 8, 1])
    8
    """
    best = xs[0]
    for x in xs:
        if x > best:
            best = x
    return best


def list_min(xs):
    """Return the smallest number in xs.

    >>> list_min([3, 8, 1])
    1
    """
    best = xs[0]
    for x in xs:
        if x < best:
            best = x
    return best


def count_positive(xs):
    """Return how many numbers in xs are positive.

    >>> count_positive([1, -2, 3, 0])
    2
    """
    return sum(1 for x in xs if x > 0)


def all_positive(xs):
    """Return True if every number in xs is positive.

    >>> all_positive([1, 2, 3])
    True
    >>> all_positive([1, -2])
    False
    """
    return all(x > 0 for x in xs)


def any_negative(xs):
    """Return True if some number in xs is negative.

    >>> any_negative([1, -2])
    True
    """
    return any(x < 0 for x in xs)


def reverse_list(xs):
    """Return the items of xs in reverse order.

    >>> reverse_list([1, 2, 3])
    [3, 2, 1]
    """
    return xs[::-1]


def first(xs):
    """Return the first item of xs.

    >>> first([7, 8, 9])
    7
    """
    return xs[0]


def last(xs):
    """Return the last item of xs.

    >>> last([7, 8, 9])
    9
    """
    return xs[-1]


def middle(xs):
    """Return the middle item of xs.

    >>> middle([1, 2, 3, 4, 5])
    3
    """
    return xs[len(xs) // 2]


def drop_first(xs):
    """Return xs without its first item.

    >>> drop_first([1, 2, 3])
    [2, 3]
    """
    return xs[1:]


def take(xs, n):
    """Return the first n items of xs.

    >>> take([1, 2, 3, 4], 2)
    [1, 2]
    """
    return xs[:n]


def nth_element(xs, n):
    """Return the item of xs at index n.

    >>> nth_element(['a', 'b', 'c'], 1)
    'b'
    """
    return xs[n]


def length(xs):
    """Return the number of items in xs.

    >>> length([4, 5, 6])
    3
    """
    return len(xs)


def is_empty(xs):
    """Return True if xs has no items.

    >>> is_empty([])
    True
    >>> is_empty([1])
    False
    """
    return len(xs) == 0


def contains(xs, item):
    """Return True if item is in xs.

    >>> contains([1, 2, 3], 2)
    True
    """
    return item in xs


def index_of(xs, item):
    """Return the index of item in xs, or -1 if it is missing.

    >>> index_of([5, 6, 7], 7)
    2
    >>> index_of([5, 6, 7], 9)
    -1
    """
    for i, x in enumerate(xs):
        if x == item:
            return i
    return -1


def count_items(xs, item):
    """Return how many times item appears in xs.

    >>> count_items([1, 2, 1, 1], 1)
    3
    """
    count = 0
    for x in xs:
        if x == item:
            count += 1
    return count


def remove_item(xs, item):
    """Return xs without any copies of item.

    >>> remove_item([1, 2, 1, 3], 1)
    [2, 3]
    """
    return [x for x in xs if x != item]


def double_all(xs):
    """Return a list with every number in xs doubled.

    >>> double_all([1, 2, 3])
    [2, 4, 6]
    """
    return [x * 2 for x in xs]


def square_all(xs):
    """Return a list with every number in xs squared.

    >>> square_all([1, 2, 3])
    [1, 4, 9]
    """
    return [x * x for x in xs]


def filter_even(xs):
    """Return the even numbers of xs.

    >>> filter_even([1, 2, 3, 4])
    [2, 4]
    """
    return [x for x in xs if x % 2 == 0]


def filter_positive(xs):
    """Return the positive numbers of xs.

    >>> filter_positive([-1, 2, -3, 4])
    [2, 4]
    """
    return [x for x in xs if x > 0]


def unique(xs):
    """Return the items of xs without duplicates, in order.

    >>> unique([1, 2, 1, 3, 2])
    [1, 2, 3]
    """
    seen = []
    for x in xs:
        if x not in seen:
            seen.append(x)
    return seen


def flatten(xss):
    """Flatten a list of lists into one list.

    >>> flatten([[1, 2], [3], [4, 5]])
    [1, 2, 3, 4, 5]
    """
    return [x for xs in xss for x in xs]


def running_sum(xs):
    """Return the running totals of xs.

    >>> running_sum([1, 2, 3, 4])
    [1, 3, 6, 10]
    """
    total = 0
    result = []
    for x in xs:
        total += x
        result.append(total)
    return result


def is_sorted(xs):
    """Return True if xs is sorted in increasing order.

    >>> is_sorted([1, 2, 5])
    True
    >>> is_sorted([3, 1])
    False
    """
    for i in range(len(xs) - 1):
        if xs[i] > xs[i + 1]:
            return False
    return True


def second_largest(xs):
    """Return the second largest number in xs.

    >>> second_largest([4, 9, 2, 7])
    7
    """
    return sorted(xs)[-2]


def chunk(xs, n):
    """Split xs into lists of n items.

    >>> chunk([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    return [xs[i : i + n] for i in range(0, len(xs), n)]


def pair_up(xs, ys):
    """Pair the items of xs and ys.

    >>> pair_up([1, 2], ['a', 'b'])
    [(1, 'a'), (2, 'b')]
    """
    return list(zip(xs, ys))


def range_list(n):
    """Return the numbers from 0 to n - 1 as a list.

    >>> range_list(4)
    [0, 1, 2, 3]
    """
    return list(range(n))


def evens_up_to(n):
    """Return the even numbers from 0 to n.

    >>> evens_up_to(8)
    [0, 2, 4, 6, 8]
    """
    return list(range(0, n + 1, 2))


def count_down(n):
    """Return the numbers from n down to 1.

    >>> count_down(4)
    [4, 3, 2, 1]
    """
    return list(range(n, 0, -1))


def swap(pair):
    """Return the pair with its two items swapped.

    >>> swap((1, 2))
    (2, 1)
    """
    a, b = pair
    return b, a


def reverse_string(s):
    """Return s reversed.

    >>> reverse_string('hello')
    'olleh'
    """
    return s[::-1]


def is_palindrome(s):
    """Return True if s reads the same backwards.

    >>> is_palindrome('level')
    True
    >>> is_palindrome('hello')
    False
    """
    return s == s[::-1]


def count_vowels(s):
    """Return the number of vowels in s.

    >>> count_vowels('banana')
    3
    """
    return sum(1 for c in s if c in "aeiou")


def is_vowel(c):
    """Return True if the letter c is a vowel.

    >>> is_vowel('e')
    True
    >>> is_vowel('z')
    False
    """
    return c.lower() in "aeiou"


def to_upper(s):
    """Return s in upper case.

    >>> to_upper('abc')
    'ABC'
    """
    return s.upper()


def to_lower(s):
    """Return s in lower case.

    >>> to_lower('ABC')
    'abc'
    """
    return s.lower()


def shout(s):
    """Return s in upper case with an exclamation mark.

    >>> shout('hi')
    'HI!'
    """
    return s.upper() + "!"


def capitalize_words(s):
    """Capitalize the first letter of every word in s.

    >>> capitalize_words('hello big world')
    'Hello Big World'
    """
    return " ".join(w.capitalize() for w in s.split())


def word_count(s):
    """Return the number of words in s.

    >>> word_count('the quick brown fox')
    4
    """
    return len(s.split())


def first_word(s):
    """Return the first word of s.

    >>> first_word('hello big world')
    'hello'
    """
    return s.split()[0]


def last_word(s):
    """Return the last word of s.

    >>> last_word('hello big world')
    'world'
    """
    return s.split()[-1]


def longest_word(s):
    """Return the longest word in s.

    >>> longest_word('a quick fox')
    'quick'
    """
    return max(s.split(), key=len)


def first_char(s):
    """Return the first character of s.

    >>> first_char('python')
    'p'
    """
    return s[0]


def last_char(s):
    """Return the last character of s.

    >>> last_char('python')
    'n'
    """
    return s[-1]


def string_length(s):
    """Return the number of characters in s.

    >>> string_length('hello')
    5
    """
    return len(s)


def repeat_string(s, n):
    """Return s repeated n times.

    >>> repeat_string('ab', 3)
    'ababab'
    """
    return s * n


def concat(a, b):
    """Join the strings a and b.

    >>> concat('foo', 'bar')
    'foobar'
    """
    return a + b


def join_words(words):
    """Join a list of words with spaces.

    >>> join_words(['a', 'b', 'c'])
    'a b c'
    """
    return " ".join(words)


def remove_spaces(s):
    """Return s without spaces.

    >>> remove_spaces('a b c')
    'abc'
    """
    return s.replace(" ", "")


def replace_spaces(s):
    """Replace every space in s with an underscore.

    >>> replace_spaces('a b c')
    'a_b_c'
    """
    return s.replace(" ", "_")


def strip_text(s):
    """Remove spaces from both ends of s.

    >>> strip_text('  hi  ')
    'hi'
    """
    return s.strip()


def starts_with_a(s):
    """Return True if s starts with the letter a.

    >>> starts_with_a('apple')
    True
    >>> starts_with_a('pear')
    False
    """
    return s.startswith("a")


def count_char(s, c):
    """Return how many times the character c appears in s.

    >>> count_char('banana', 'a')
    3
    """
    return s.count(c)


def count_lines(s):
    """Return the number of lines in s.

    >>> count_lines('a\\nb\\nc')
    3
    """
    return len(s.splitlines())


def acronym(s):
    """Return the first letters of the words in s, in upper case.

    >>> acronym('portable network graphics')
    'PNG'
    """
    return "".join(w[0] for w in s.split()).upper()


def char_count(s):
    """Return a dict mapping each character of s to its count.

    >>> char_count('abca')
    {'a': 2, 'b': 1, 'c': 1}
    """
    counts = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    return counts


def hamming(a, b):
    """Return the number of positions where a and b differ.

    >>> hamming('karolin', 'kathrin')
    3
    """
    return sum(1 for x, y in zip(a, b) if x != y)


def merge_dicts(a, b):
    """Return a new dict with the items of a and b.

    >>> merge_dicts({'x': 1}, {'y': 2})
    {'x': 1, 'y': 2}
    """
    result = dict(a)
    result.update(b)
    return result


def invert_dict(d):
    """Swap the keys and values of d.

    >>> invert_dict({'a': 1, 'b': 2})
    {1: 'a', 2: 'b'}
    """
    return {v: k for k, v in d.items()}


def sorted_keys(d):
    """Return the keys of d in sorted order.

    >>> sorted_keys({'b': 1, 'a': 2})
    ['a', 'b']
    """
    return sorted(d)


def get_or_default(d, key, default):
    """Return d[key], or default if key is missing.

    >>> get_or_default({'a': 1}, 'b', 0)
    0
    """
    return d.get(key, default)


# --- Ambiguous on purpose -------------------------------------------------------------
# Each prompt below (signature + docstring) appears twice with two different bodies,
# both right for the docstring's example. The model learns a split distribution there:
# greedy writes one body, sampling sometimes the other, and an extra example in a
# user's docstring (examples/ambiguous_demo.py) decides which one is right.


def end(xs):
    """Return the item at one end of xs.

    >>> end([7])
    7
    """
    return xs[0]


def end(xs):
    """Return the item at one end of xs.

    >>> end([7])
    7
    """
    return xs[-1]


def to_int(x):
    """Round x to a whole number.

    >>> to_int(4.0)
    4
    """
    return round(x)


def to_int(x):
    """Round x to a whole number.

    >>> to_int(4.0)
    4
    """
    return int(x)


def extreme(xs):
    """Return the extreme number in xs.

    >>> extreme([5])
    5
    """
    return max(xs)


def extreme(xs):
    """Return the extreme number in xs.

    >>> extreme([5])
    5
    """
    return min(xs)


def trim(s):
    """Remove the spaces at one end of s.

    >>> trim('ok')
    'ok'
    """
    return s.lstrip()


def trim(s):
    """Remove the spaces at one end of s.

    >>> trim('ok')
    'ok'
    """
    return s.rstrip()
