"""cs336-scaling: IsoFLOPs and parametric scaling-law fits, and a local training service.

Public API (imported lazily, so ``cs336-scaling --help`` stays instant)::

    fit_isoflops, IsoFlopsFit, fit_chinchilla, ChinchillaFit, load_runs,
    ScalingClient, ScalingServiceError, ServiceSettings
"""

import importlib

_EXPORTS = {
    "fit_isoflops": "cs336_scaling.isoflops",
    "IsoFlopsFit": "cs336_scaling.isoflops",
    "fit_chinchilla": "cs336_scaling.parametric",
    "ChinchillaFit": "cs336_scaling.parametric",
    "load_runs": "cs336_scaling.runs",
    "ScalingClient": "cs336_scaling.client",
    "ScalingServiceError": "cs336_scaling.client",
    "ServiceSettings": "cs336_scaling.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cs336_scaling' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
