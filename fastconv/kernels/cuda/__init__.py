"""CUDA twins of the CPU kernels (numba-cuda, through ``_backend`` only).

Imported only when a call runs on device ``"cuda"``; ``import fastconv`` never loads it.
"""
