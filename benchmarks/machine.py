"""What machine a benchmark ran on (featx's own record of it: :mod:`featx.engines.cpu`)."""

from featx.engines.cpu import SPEED_FLAGS, cpu_info

__all__ = ["SPEED_FLAGS", "cpu_info"]
