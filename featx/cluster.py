"""Connecting to Ray: one place for ``--ray`` of extract, fit and bench (``auto``, ``local`` or ``ray://head:10001``).

Ray is imported only here, only when ``--ray`` is given (fit and bench start without it).
"""

from __future__ import annotations

import logging

from featx.errors import FeatxError


def connect_ray(address: str):
    """The ``ray`` module, initialised for ``address``: ``local`` starts Ray on this machine, ``auto`` joins the
    running cluster (or ``$RAY_ADDRESS``), ``ray://host:port`` a remote one."""
    try:
        import ray
    except ImportError:
        raise FeatxError(
            "--ray needs Ray: pip install 'featx[ray]' (on this machine and every cluster node)."
        ) from None
    if not ray.is_initialized():
        target = None if address in ("", "local") else address
        try:
            ray.init(
                address=target,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise FeatxError(
                f"--ray {address}: cannot reach the Ray cluster ({exc}). Start it with 'ray start "
                "--head' and pass its address, or use --ray local."
            ) from None
    return ray


def register_ray_joblib(address: str) -> None:
    """Connect to ``address`` and register joblib's ``ray`` backend (``ray.util.joblib``)."""
    connect_ray(address)
    from ray.util.joblib import register_ray

    register_ray()
