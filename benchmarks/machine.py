"""What machine a benchmark ran on (featx's own record of it: :mod:`featx.backbones.cpu`)."""

from featx.backbones.cpu import SPEED_FLAGS, cpu_info

__all__ = ["SPEED_FLAGS", "cpu_info"]
