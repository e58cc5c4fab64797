import os
import tempfile

# Tests never touch the user's tuner cache.
os.environ.setdefault("FASTCONV_CACHE_DIR", tempfile.mkdtemp(prefix="fastconv-test-cache-"))
# Deterministic method choice in tests (the tuner tests switch measuring on themselves).
os.environ.setdefault("FASTCONV_TUNE", "model")
# Deterministic bits: a first call would otherwise run FFT or the direct kernel depending
# on whether a background compile has finished (tests/test_firstcall.py turns it on).
os.environ.setdefault("FASTCONV_FIRST_CALL", "compile")

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
