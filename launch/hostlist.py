"""SLURM host lists: ``node[01-03,7],gpu-a[1-2]-x`` -> ``node01 node02 node03 node07 ...``.

SLURM writes node lists (``SLURM_JOB_NODELIST``, ``SLURM_STEP_NODELIST``) in a compressed form:
comma-separated items, each a name with zero or more bracketed range lists. A range keeps the
zero padding of its start (``[08-10]`` -> ``08 09 10``), and several bracket groups in one
item expand as a cartesian product (``r[1-2]n[1-2]`` -> ``r1n1 r1n2 r2n1 r2n2``), in SLURM's
order. This is what ``scontrol show hostnames`` prints, without needing ``scontrol``.
"""

from __future__ import annotations

__all__ = ["expand_hostlist"]


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"host list {text!r}: nested '[' at position {i}")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"host list {text!r}: unmatched ']' at position {i}")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"host list {text!r}: unclosed '['")
    items.append(text[start:])
    return [s.strip() for s in items if s.strip()]


def _expand_ranges(spec: str, whole: str) -> list[str]:
    out = []
    for part in spec.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        step = 1
        if ":" in hi:
            hi, _, s = hi.partition(":")
            step = int(s) if s.isdigit() and int(s) > 0 else 0
        if not lo.isdigit() or (sep and not hi.isdigit()) or step == 0:
            raise ValueError(f"host list {whole!r}: bad range {part!r} in [{spec}]")
        if not sep:
            out.append(lo)
            continue
        a, b = int(lo), int(hi)
        if b < a:
            raise ValueError(f"host list {whole!r}: range {part!r} runs backwards")
        width = len(lo) if lo.startswith("0") else 0
        out.extend(str(n).zfill(width) for n in range(a, b + 1, step))
    return out


def _expand_item(item: str, whole: str) -> list[str]:
    open_at = item.find("[")
    if open_at < 0:
        return [item]
    close_at = item.index("]", open_at)
    head, spec, tail = item[:open_at], item[open_at + 1:close_at], item[close_at + 1:]
    rests = _expand_item(tail, whole)
    return [head + n + rest for n in _expand_ranges(spec, whole) for rest in rests]


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand a SLURM host list into host names, in order (duplicates kept, as SLURM does).

    Args:
        hostlist (str): e.g. ``"node[01-03,7]"``, ``"a1,b[2-3]"``, ``"c[1-2]-ib"``.

    Raises:
        ValueError: for an unbalanced bracket or a malformed range, naming it.

    Example::

        >>> expand_hostlist("node[01-03,7],login")
        ['node01', 'node02', 'node03', 'node7', 'login']
    """
    if not isinstance(hostlist, str):
        raise TypeError(f"expand_hostlist expects a str, got {type(hostlist).__name__}")
    hosts = []
    for item in _split_top(hostlist):
        hosts.extend(_expand_item(item, hostlist))
    return hosts
