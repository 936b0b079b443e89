"""One thread per process for the data side: a data worker is one of many processes, and
torch, OpenCV and the BLAS under numpy / librosa otherwise each start a pool per core, which
spin against each other (a step ran ~4x slower so)."""

from __future__ import annotations


def one_thread() -> None:
    import cv2
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    threadpool_limits(1)
