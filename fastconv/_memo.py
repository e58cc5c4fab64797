"""Bounded, thread-safe memos for the per-signature state of the hot paths (specs,
decisions, kernel factors): a long-running process that sees many signatures keeps at
most ``size`` of each, the least recently used going first."""
from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict

__all__ = ["LRU"]


class LRU:
    """A bounded, thread-safe memo: the least recently used entry goes first."""

    def __init__(self, size: int):
        self.size = size
        self._d: OrderedDict = OrderedDict()
        # A lookup that leaves the order alone (a C call, no Python frame: for lookups
        # on calls of a few microseconds, where a hit's entry is kept by other means)
        self.peek = self._d.get
        self._lock = threading.Lock()
        self._followers: "weakref.WeakSet[LRU]" = weakref.WeakSet()
        _ALL.add(self)

    def get(self, key):
        # No lock on the hot path: OrderedDict's get and move_to_end are single C calls
        # under the GIL; an entry evicted in between is just a miss.
        v = self._d.get(key)
        if v is not None:
            try:
                self._d.move_to_end(key)
            except KeyError:
                pass
        return v

    def put(self, key, value):
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def reset_lock(self):
        """A fresh lock (in a forked child: the parent's may be held by a thread that
        does not exist there)."""
        self._lock = threading.Lock()

    def clear(self):
        with self._lock:
            self._d.clear()
        for memo in list(self._followers):
            memo.clear()

    def clears_with(self, other: "LRU"):
        """Clear this memo whenever ``other`` is cleared (a memo of results derived from
        ``other``'s entries must not outlive them)."""
        other._followers.add(self)

    def __len__(self):
        return len(self._d)


# Every memo, so that a forked child gets fresh locks for all of them (a lock held by
# another thread of the parent at fork time stays held forever in the child).
_ALL: "weakref.WeakSet[LRU]" = weakref.WeakSet()


def _after_fork_in_child():
    for memo in list(_ALL):
        memo.reset_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
