"""Config dataclasses: unknown keys refused, types coerced, overrides merged."""

from dataclasses import dataclass, field

import pytest

from hcdg.pipeline.config import ConfigError, from_dict, merge, to_dict


@dataclass(frozen=True)
class Inner:
    sigma_px: float = 10.0
    sizes: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    ratio: float = 0.6
    mode: str = "ie+te"
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None


def test_unknown_key_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"unknown key 'ratoi'"):
        from_dict(Outer, {"ratoi": 0.5})
    with pytest.raises(ConfigError, match=r"config\.inner: unknown key 'sigma'"):
        from_dict(Outer, {"inner": {"sigma": 2}})


def test_coercion_and_round_trip():
    cfg = from_dict(Outer, {"ratio": 1, "inner": {"sizes": [3, 4, 5]}, "limit": 7})
    assert cfg.ratio == 1.0 and isinstance(cfg.ratio, float)
    assert cfg.inner.sizes == (3, 4, 5)
    assert from_dict(Outer, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match=r"config\.name: expected str"):
        from_dict(Outer, {"name": 3})
    with pytest.raises(ConfigError, match=r"config\.inner\.sizes\[1\]: expected int"):
        from_dict(Outer, {"inner": {"sizes": [1, "a"]}})


def test_merge_ignores_unset_flags_and_merges_tables():
    base = {"ratio": 0.9, "inner": {"sigma_px": 25.0, "sizes": [1]}}
    out = merge(base, {"ratio": None, "mode": "te", "inner": {"sigma_px": 5.0}})
    assert out == {"ratio": 0.9, "mode": "te", "inner": {"sigma_px": 5.0, "sizes": [1]}}
