"""Random streams named by keys, so that every draw is a pure function of (seed, key).

A stream seeded from its name, not from draws made before it, does not shift when other
streams are added, dropped or consumed in another order (a backfill in any order, a
universe that grows). ``hash()`` would not do: Python salts it per process.

The hashing input ("|"-joined ``str`` of the parts), the byte order and the entropy layout
``[seed & 0xFFFFFFFF, stable_int(*key)]`` are frozen: changing any of them changes every
synthetic bar and every modelled chain ever stored.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_int(*parts: object) -> int:
    """The same 64-bit integer for the same parts in every process and on every platform."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def keyed_rng(seed: int, *key: object) -> np.random.Generator:
    """The stream named ``key`` under ``seed``. The seed is masked to 32 bits so that any
    int (negative, wide) is valid entropy and maps to one stream."""
    return np.random.default_rng([seed & 0xFFFFFFFF, stable_int(*key)])
