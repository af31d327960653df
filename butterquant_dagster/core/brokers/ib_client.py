"""The one place that decides which IB API client speaks to TWS / IB Gateway.

``ib_insync`` is the client this project was specified with; its last release is 0.9.86
(2023-07) and it is no longer maintained. ``ib_async`` is the maintained fork under the same API
names (``IB``, ``Contract``, ``ComboLeg``, ``LimitOrder``, ``util``, ``wrapper.RequestError``
...), so the broker and the market source take whichever module :func:`load` returns and call
the same names on it. ``BUTTERQUANT_IB_CLIENT`` chooses:

- ``auto`` (default): ``ib_async`` when it is installed, else ``ib_insync``;
- ``ib_async`` / ``ib_insync``: that one, or an :class:`IBClientUnavailable` naming the setting
  and the missing package - a forced client never silently becomes the other one.

The setting is read on every call, not at import, so a process (or a test) can change it
before it connects. Only a package that is *absent* counts as not installed: one that is
installed but fails to import raises its own error, in ``auto`` too, because falling back
would hide a broken installation behind the older client.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from butterquant_dagster.core.settings import env

SETTING = "BUTTERQUANT_IB_CLIENT"
CLIENTS = ("ib_async", "ib_insync")  # preference of ``auto``: the maintained fork first
CHOICES = ("auto", *CLIENTS)
# IB's "no value" of a double, ``util.UNSET_DOUBLE`` of both clients: a constant here, so code
# that only compares with it needs no client loaded.
UNSET_DOUBLE = sys.float_info.max


class IBClientUnavailable(ImportError):
    """The IB client the setting asks for (or any, under ``auto``) is not installed."""


def choice() -> str:
    """The setting's value, checked: ``auto``, ``ib_async`` or ``ib_insync``."""
    value = env(SETTING).lower()
    if value not in CHOICES:
        raise ValueError(f"{SETTING}={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def load() -> ModuleType:
    """The IB client module the setting selects (see the module docstring)."""
    wanted = choice()
    if wanted != "auto":
        module = _import(wanted)
        if module is None:
            raise IBClientUnavailable(
                f"{SETTING}={wanted} but the package {wanted} is not installed: install it "
                f"(pip install {wanted}) or set {SETTING}=auto to use whichever IB client is"
            )
        return module
    for name in CLIENTS:
        module = _import(name)
        if module is not None:
            return module
    raise IBClientUnavailable(
        f"no IB client is installed ({SETTING}=auto looks for {' then '.join(CLIENTS)}): "
        "install ib_async (pip install ib_async) to connect to TWS / IB Gateway"
    )


def describe(module: ModuleType) -> str:
    """``"ib_async 2.1.0"``: the client and its version, for logs and metadata."""
    return f"{module.__name__} {getattr(module, '__version__', '?')}"


def _import(name: str) -> ModuleType | None:
    """The module, or None when the package itself is absent (not when it fails inside)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
