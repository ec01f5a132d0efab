"""One unit for sizes and durations, as people read them.

Data (JSON, CSV, the run database) keeps bytes and seconds as numbers;
these are for what a person reads: a table, a progress line.
"""


def size(n):
    """``n`` bytes as 512 B, 1.5 MiB, 2.0 GiB; None stays None."""
    if n is None:
        return None
    value = float(n)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if abs(value) < 1024:
            return f'{value:.0f} {unit}' if unit == 'B' else (
                f'{value:.1f} {unit}')
        value /= 1024.0
    return f'{value:.1f} TiB'


def seconds(s):
    """A duration in seconds with two decimals; None stays None."""
    return None if s is None else f'{s:.2f}s'
