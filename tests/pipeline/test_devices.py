"""`--device` parsing shared by every stage."""

import pytest
import torch

from hcdg.pipeline.devices import resolve_device
from hcdg.pipeline.errors import HcdgError


def test_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


def test_bad_specs_name_the_flag():
    with pytest.raises(HcdgError, match=r"--device gpu0: expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(HcdgError, match=r"--device cuda:1: CUDA is not available"):
            resolve_device("cuda:1")
