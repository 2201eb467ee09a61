"""What a failure on a device means: out of memory, the device lost, or this input's error.

Shared by the engine (which halves a batch on ``"oom"``, stops on ``"fatal"``,
skips the frame on ``"error"``) and the models that compile their encoder (a
compiled size that ran out of memory is dropped). torch is imported only
when an error is classified.
"""

from __future__ import annotations

#: messages of allocation failures that cuBLAS / cuDNN / the runtime raise as plain RuntimeError
_ALLOC_FAILED = (
    "out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUFFT_ALLOC_FAILED",
    "CUSOLVER_STATUS_ALLOC_FAILED",
)
#: messages of CUDA errors after which the CUDA context is unusable
_STICKY = (
    "illegal memory access",
    "illegal instruction",
    "device-side assert",
    "unspecified launch failure",
    "misaligned address",
    "uncorrectable ECC error",
    "launch timed out",
    "CUDA error: an illegal",
    "hardware stack error",
)


def classify_error(exc: BaseException) -> str:
    """``"oom"`` (retry smaller, lower the batch size), ``"fatal"`` (the device is
    gone: stop the job) or ``"error"`` (this input failed: retry in halves, skip).

    >>> classify_error(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    'oom'
    >>> classify_error(RuntimeError("NaN in attention"))
    'error'
    """
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, oom_type):
        return "oom"
    text = str(exc)
    if isinstance(exc, RuntimeError) and any(m in text for m in _ALLOC_FAILED):
        return "oom"
    accel = getattr(torch, "AcceleratorError", None)
    if accel is not None and isinstance(exc, accel):
        return "fatal"
    if isinstance(exc, RuntimeError) and any(m in text for m in _STICKY):
        return "fatal"
    return "error"
