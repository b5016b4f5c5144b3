"""How a training step executes: autocast precision, fp16 loss scaling, torch.compile, memory layout.

None of these change *what* is computed, only in which number format and by which kernels:

* precision "fp32" | "bf16" | "fp16": the network's forward runs under `torch.autocast` with
  that dtype (fp32: no autocast). Losses, contrastive distances, the canonical-frame maths
  (`float32_math`) and the metrics stay float32. fp16 has 5 exponent bits, so small
  gradients underflow: its backward runs on a scaled loss (`grad_scaler`, torch.amp.GradScaler),
  which skips the update of a step whose gradients overflowed and lowers the scale.
* compile "off" | "inductor" | "aot_eager": `torch.compile` of the network (`compile_module`).
  "inductor" generates fused kernels (C++ on CPU, Triton on CUDA); "aot_eager" only traces the
  graph (dynamo + AOTAutograd) and runs it with eager kernels: the cheap check that a model
  compiles. Where compiling fails (no C++ compiler, an unsupported Python), the step falls
  back to eager with one line on stderr.
* channels_last: the network's weights and its image input in NHWC memory layout
  (`to_channels_last`), the layout fast convolution kernels (cuDNN tensor cores, oneDNN) want.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch

from hcdg.pipeline.errors import HcdgError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
CompileBackend = Literal["off", "inductor", "aot_eager"]
COMPILE_BACKENDS: tuple[str, ...] = ("off", "inductor", "aot_eager")

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of `precision` (None for fp32: no autocast)."""
    return _DTYPES.get(precision)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward's autocast context on `device` (a no-op context for fp32)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def float32_math(like: torch.Tensor) -> Iterator[None]:
    """Autocast off on `like`'s device: maths inside runs in the dtype of its inputs (give it float32)."""
    if not torch.is_autocast_enabled(like.device.type):
        yield
        return
    with torch.autocast(like.device.type, enabled=False):
        yield


def check_supported(precision: str, device: torch.device) -> None:
    """HcdgError (one line, naming --precision) when this torch cannot run `precision` on `device`."""
    if precision not in PRECISIONS:
        raise HcdgError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = autocast_dtype(precision)
    if dtype is None:
        return
    if not torch.amp.autocast_mode.is_autocast_available(device.type):
        raise HcdgError(f"--precision {precision}: torch {torch.__version__} has no autocast on {device.type}")
    try:
        with torch.autocast(device.type, dtype=dtype):  # older torch warns and disables instead of failing
            got = (torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)).dtype
        if precision == "fp16":
            torch.amp.GradScaler(device.type)
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise HcdgError(f"--precision {precision}: not supported on {device.type} by torch "
                        f"{torch.__version__} ({str(exc).splitlines()[0]}); use fp32 or bf16") from None
    if got != dtype:
        raise HcdgError(f"--precision {precision}: torch {torch.__version__} does not autocast to {dtype} on "
                        f"{device.type}; use fp32" + ("" if precision == "bf16" else " or bf16"))


#: First fp16 loss scale. torch's default 2**16 presumes a loss of order 1; hcdg's Eq. 1 with the
#: sum reductions (per-sample ||.||^2) starts near 400 at the test size, and from 2**16 the scaler
#: skipped the first 8 of 20 steps, backing off to 2**8 (measured, tests/test_train_precision.py).
#: The scaler still doubles it every 2,000 clean steps and halves it on overflow.
FP16_INIT_SCALE = 2.0**8


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """The loss scaler of the step: active for fp16 (from `FP16_INIT_SCALE`), a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, init_scale=FP16_INIT_SCALE, enabled=precision == "fp16")


def to_channels_last(x: Any, enabled: bool) -> Any:
    """`x` (a module, or a (B,C,H,W) tensor) in channels-last memory layout when `enabled`; else `x`."""
    if not enabled:
        return x
    if isinstance(x, torch.nn.Module):
        return x.to(memory_format=torch.channels_last)
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _is_compile_failure(exc: BaseException) -> bool:
    import torch._dynamo.exc as dynamo_exc  # torch's public-by-use exception module

    return isinstance(exc, dynamo_exc.TorchDynamoException)


class CompiledModule:
    """Calls `torch.compile(module, backend=...)`; when the first call fails to compile, says so
    in one line (`warn`) and calls `module` eagerly from then on (`self.compiled` is then False).

    Only compile failures fall back: any other error of the first call (bad input shapes, ...)
    is raised as it is. Attribute access (`.cfg`, `.predict`, ...) goes to the eager module.
    """

    def __init__(self, module: torch.nn.Module, backend: str, warn: Callable[[str], None]) -> None:
        self.module, self.backend, self.warn = module, backend, warn
        self.compiled: bool | None = None  # None until the first call decides
        try:
            self.fn: Callable[..., Any] = torch.compile(module, backend=backend)
        except (RuntimeError, NotImplementedError) as exc:  # e.g. an unsupported Python version
            self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> None:
        self.compiled, self.fn = False, self.module
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        self.warn(f"note: --compile {self.backend}: torch.compile is not supported here ({first}); "
                  "training eagerly")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            try:
                out = self.fn(*args, **kwargs)
            except Exception as exc:
                if not _is_compile_failure(exc):
                    raise
                self._fall_back(exc)
                return self.module(*args, **kwargs)
            self.compiled = True
            return out
        return self.fn(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def compile_module(module: torch.nn.Module, backend: str,
                   warn: Callable[[str], None] | None = None) -> Any:
    """`module` itself for backend "off", else a `CompiledModule` around it (same call signature)."""
    if backend == "off":
        return module
    if backend not in COMPILE_BACKENDS:
        raise HcdgError(f"--compile: expected one of {', '.join(COMPILE_BACKENDS)}, got {backend!r}")
    return CompiledModule(module, backend, warn or (lambda line: print(line, file=sys.stderr)))
