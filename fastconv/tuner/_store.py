"""The only module that touches disk: one versioned JSON file per machine fingerprint.

Layout of ``<cache dir>/tuning-<fingerprint id>.json``::

    {"header": {fingerprint: schema, versions, CPU, ISA, cores, threading layer},
     "entries": {key: {"times": {method: median seconds}, "choice": method,
                       "params": {...}, "tuning_s": seconds spent}},
     "model": {method: {"constants": ...}}}

Reads are lazy (first use) and kept in memory: the hot path is one dict lookup. Writes
re-read the file under a file lock, merge, write a temporary file and ``os.replace`` it,
so readers never see a half-written file and concurrent processes never lose each
other's entries. A corrupt, truncated, foreign or unwritable file never breaks a call: it
warns once and the tuner carries on in memory (a corrupt file is rebuilt on next write).
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings

from ._key import SCHEMA, fingerprint, fingerprint_id

_warned: set = set()


def _warn_once(tag: str, message: str) -> None:
    if tag not in _warned:
        _warned.add(tag)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def cache_dir() -> str:
    from .. import _config
    configured = _config.get().cache_dir
    if configured:
        return configured
    import platformdirs
    return platformdirs.user_cache_dir("fastconv", appauthor=False)


class Store:
    """In-memory view of one cache file, with locked, atomic merges back to disk."""

    def __init__(self, directory: str | None = None):
        self.directory = directory or cache_dir()
        self.path = os.path.join(self.directory, f"tuning-{fingerprint_id()}.json")
        self._lock = threading.RLock()
        self._entries: dict | None = None
        self._model: dict = {}

    # -- reading ---------------------------------------------------------------------
    def _read_file(self) -> tuple[dict, dict]:
        """(entries, model) from disk; empty on any problem (with one warning)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            _warn_once("corrupt:" + self.path,
                       f"fastconv: ignoring unreadable tuning cache {self.path} ({exc}); "
                       f"it will be rebuilt")
            return {}, {}
        if not self._header_ok(data):
            return {}, {}
        entries = data.get("entries", {})
        model = data.get("model", {})
        if not isinstance(entries, dict) or not isinstance(model, dict):
            _warn_once("corrupt:" + self.path,
                       f"fastconv: ignoring malformed tuning cache {self.path}")
            return {}, {}
        return {k: v for k, v in entries.items() if _entry_ok(v)}, model

    def _header_ok(self, data) -> bool:
        header = data.get("header") if isinstance(data, dict) else None
        if not isinstance(header, dict) or header.get("schema") != SCHEMA:
            _warn_once("foreign:" + self.path,
                       f"fastconv: ignoring tuning cache {self.path} of another schema")
            return False
        if header != fingerprint():
            _warn_once("foreign:" + self.path,
                       f"fastconv: ignoring tuning cache {self.path} written by another "
                       f"machine or version")
            return False
        return True

    def _load(self) -> dict:
        if self._entries is None:
            with self._lock:
                if self._entries is None:
                    self._entries, self._model = self._read_file()
        return self._entries

    # -- the API -----------------------------------------------------------------------
    def get(self, key: str):
        return self._load().get(key)

    def entries(self) -> dict:
        return dict(self._load())

    def model(self) -> dict:
        self._load()
        return dict(self._model)

    def put(self, key: str, entry: dict) -> None:
        with self._lock:
            self._load()[key] = entry
        self._write({key: entry}, None)

    def put_many(self, entries: dict) -> None:
        with self._lock:
            self._load().update(entries)
        self._write(entries, None)

    def put_model(self, model: dict) -> None:
        with self._lock:
            self._load()
            self._model = dict(model)
        self._write({}, model)

    def clear(self) -> int:
        """Delete this machine's cache file; returns the number of entries dropped."""
        with self._lock:
            n = len(self._load())
            self._entries, self._model = {}, {}
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                _warn_once("write:" + self.path, f"fastconv: cannot remove {self.path}: {exc}")
        return n

    def _write(self, new_entries: dict, new_model: dict | None) -> None:
        try:
            import filelock
            os.makedirs(self.directory, exist_ok=True)
            with filelock.FileLock(self.path + ".lock", timeout=10):
                entries, model = self._read_file()    # merge with other processes' work
                entries.update(new_entries)
                if new_model is not None:
                    model = new_model
                data = {"header": fingerprint(), "entries": entries, "model": model}
                fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tuning-",
                                           suffix=".tmp")
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as f:
                        json.dump(data, f, indent=0, sort_keys=True)
                    os.replace(tmp, self.path)
                except BaseException:
                    try:
                        os.remove(tmp)
                    except OSError:
                        pass
                    raise
            with self._lock:
                merged = self._load()
                for k, v in entries.items():
                    merged.setdefault(k, v)
        except Exception as exc:   # unwritable dir, lock timeout, full disk...
            _warn_once("write:" + self.path,
                       f"fastconv: cannot write the tuning cache in {self.directory} "
                       f"({exc}); tuning results are kept in memory only")

    # -- moving results between machines ----------------------------------------------------
    def export(self, path: str) -> int:
        entries = self.entries()
        data = {"header": fingerprint(), "entries": entries, "model": self.model()}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        return len(entries)

    def import_(self, path: str) -> dict:
        """Merge a file exported by :meth:`export`; returns what was accepted/rejected."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        header = data.get("header") if isinstance(data, dict) else None
        report = {"accepted": 0, "rejected": 0, "reasons": []}
        entries = data.get("entries", {}) if isinstance(data, dict) else {}
        if header != fingerprint():
            report["rejected"] = len(entries) if isinstance(entries, dict) else 0
            diff = sorted(k for k in set(fingerprint()) | set(header or {})
                          if (header or {}).get(k) != fingerprint().get(k))
            report["reasons"].append("fingerprint differs in: " + ", ".join(diff))
            return report
        good = {}
        for k, v in entries.items():
            if isinstance(k, str) and _entry_ok(v):
                good[k] = v
            else:
                report["rejected"] += 1
        if good:
            self.put_many(good)
        if isinstance(data.get("model"), dict) and data["model"]:
            self.put_model(data["model"])
        report["accepted"] = len(good)
        if report["rejected"]:
            report["reasons"].append("malformed entries")
        return report


def _entry_ok(v) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("choice"), str)
            and isinstance(v.get("times", {}), dict))


_STORE: Store | None = None
_STORE_LOCK = threading.Lock()


def store() -> Store:
    """The process-wide store for the configured cache directory."""
    global _STORE
    directory = cache_dir()
    if _STORE is None or _STORE.directory != directory:
        with _STORE_LOCK:
            if _STORE is None or _STORE.directory != directory:
                _STORE = Store(directory)
    return _STORE
