"""Produce the gallery pictures by running the demo (called by .ci/run before Sphinx)."""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from fastconv.__main__ import main  # noqa: E402

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(__file__), "_static", "gallery")
    sys.exit(main(["demo", "--out", out, "--quick", "--full"]))
