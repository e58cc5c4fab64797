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
A file that is valid JSON with wrong values loses only its bad parts (``_valid_parts``:
each entry and each model constant is checked against what the tuner writes), with one
warning that says which and why; ``import_`` reports every rejected part with its reason.
A failed write warns with the file's path and the error (once per cause); a failed
``clear`` raises its OSError.
"""
from __future__ import annotations

import json
import math
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
        entries, model, problems = _valid_parts(data)
        if problems:
            _warn_once("malformed:" + self.path,
                       f"fastconv: dropped {len(problems)} malformed part(s) of the tuning "
                       f"cache {self.path}, kept the rest: {_summary(problems)}")
        return entries, model

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
        """Delete this machine's cache file; returns the number of entries dropped.
        Raises the OSError when the file exists and cannot be removed (the entries then
        stay, on disk and in memory)."""
        with self._lock:
            n = len(self._load())
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self._entries, self._model = {}, {}
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
            # One warning per path and cause: a new kind of failure is reported too.
            _warn_once(f"write:{self.path}:{type(exc).__name__}:{getattr(exc, 'errno', '')}",
                       f"fastconv: cannot write the tuning cache {self.path} "
                       f"({type(exc).__name__}: {exc}); tuning results are kept in memory "
                       f"only")

    # -- moving results between machines ----------------------------------------------------
    def export(self, path: str) -> int:
        entries = self.entries()
        data = {"header": fingerprint(), "entries": entries, "model": self.model()}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        return len(entries)

    def import_(self, path: str) -> dict:
        """Merge a file exported by :meth:`export`; returns what was accepted/rejected:
        ``{"accepted": n, "rejected": n, "model_accepted": n, "model_rejected": n,
        "reasons": [...]}`` (one reason per rejected part). Raises OSError or ValueError
        when ``path`` cannot be read as JSON."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        report = {"accepted": 0, "rejected": 0, "model_accepted": 0, "model_rejected": 0,
                  "reasons": []}
        if not isinstance(data, dict):
            report["reasons"].append(f"the file holds a JSON {type(data).__name__}, not "
                                     f"an exported tuning cache")
            return report
        header = data.get("header")
        if header != fingerprint():
            entries = data.get("entries")
            report["rejected"] = len(entries) if isinstance(entries, dict) else 0
            header = header if isinstance(header, dict) else {}
            diff = sorted(k for k in set(fingerprint()) | set(header)
                          if header.get(k) != fingerprint().get(k))
            report["reasons"].append("fingerprint differs in: " + ", ".join(diff))
            return report
        entries, model, problems = _valid_parts(data)
        for where, why in problems:
            report["model_rejected" if where.startswith("model") else "rejected"] += 1
            report["reasons"].append(f"{where}: {why}")
        if entries:
            self.put_many(entries)
        if model:
            self.put_model(model)
        report["accepted"] = len(entries)
        report["model_accepted"] = len(model)
        return report


# -- the schema -------------------------------------------------------------------------------

def _seconds(v) -> bool:
    """A finite, non-negative JSON number (bool is not a number here)."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and v >= 0)


def _entry_problem(v) -> str | None:
    """Why ``v`` is not a usable tuning entry (what ``tuner._measure`` stores and the
    tuner reads back), or None: ``times`` a non-empty object of method -> seconds,
    ``choice`` one of its methods, ``tuning_s`` seconds and ``params`` an object when
    present."""
    if not isinstance(v, dict):
        return f"is {type(v).__name__}, not an object"
    times = v.get("times")
    if not isinstance(times, dict) or not times:
        return f"times = {_short(times)} is not a non-empty object of method: seconds"
    for m, t in times.items():
        if not _seconds(t):
            return f"times[{m!r}] = {_short(t)} is not a finite number of seconds >= 0"
    if v.get("choice") not in times:
        return f"choice = {_short(v.get('choice'))} is not one of the timed methods"
    if "tuning_s" in v and not _seconds(v["tuning_s"]):
        return f"tuning_s = {_short(v['tuning_s'])} is not a finite number of seconds >= 0"
    if "params" in v and not isinstance(v["params"], dict):
        return f"params = {_short(v['params'])} is not an object"
    return None


def _valid_parts(data: dict):
    """(entries, model, problems) of a cache file's content: the usable entries and model
    constants, and a (where, why) pair for every part left out."""
    from ._model import constants_problem
    problems = []
    entries, model = {}, {}
    raw = data.get("entries", {})
    if isinstance(raw, dict):
        for k, v in raw.items():
            why = _entry_problem(v)
            if why is None:
                entries[k] = v
            else:
                problems.append((f"entry {_short(k)}", why))
    else:
        problems.append(("entries", f"is {type(raw).__name__}, not an object"))
    raw = data.get("model", {})
    if isinstance(raw, dict):
        for k, v in raw.items():
            why = constants_problem(k, v)
            if why is None:
                model[k] = v
            else:
                problems.append(("model", why))
    else:
        problems.append(("model", f"is {type(raw).__name__}, not an object"))
    return entries, model, problems


def _short(v, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _summary(problems, limit: int = 3) -> str:
    text = "; ".join(f"{where}: {why}" for where, why in problems[:limit])
    return text + (f"; and {len(problems) - limit} more" if len(problems) > limit else "")


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
