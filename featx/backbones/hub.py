"""The Hugging Face Hub, reached or not: on a machine without network, say so at once instead of letting
``huggingface_hub`` retry for a minute before the loader's own message.

:func:`offline_unless_reachable` opens one TCP connection to the hub's host (2 s at most). When it fails, and the
user has not chosen already (``HF_HUB_OFFLINE`` set either way), Hugging Face's offline mode is switched on for
this process: weights in the local cache load as usual, missing ones fail at once with featx's message naming
what to fetch.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from urllib.parse import urlparse

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0


@functools.cache
def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hugging Face endpoint (``HF_ENDPOINT``) opens within ``timeout`` seconds."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def offline_unless_reachable() -> bool:
    """Switch Hugging Face to offline mode when the hub cannot be reached (and the user set nothing); returns
    whether downloads are off."""
    if os.environ.get("HF_HUB_OFFLINE") not in (None, ""):
        return os.environ["HF_HUB_OFFLINE"].lower() in ("1", "true", "yes", "on")
    if hub_reachable():
        return False
    log.info("the Hugging Face Hub cannot be reached: using the local cache only (HF_HUB_OFFLINE=1)")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:  # huggingface_hub reads the variable when first imported: tell an imported one too
        import huggingface_hub.constants as constants

        constants.HF_HUB_OFFLINE = True
    except ImportError:
        pass
    return True
