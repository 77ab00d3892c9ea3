"""Error types. Every error carries a one-line, user-facing reason.

The CLI prints ``str(err)`` on one line and exits non-zero; nothing else is needed to
tell the user what went wrong and what to do about it.
"""

from __future__ import annotations


class HwlatError(Exception):
    """Base class: a one-line reason naming the thing and what to do."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ConfigError(HwlatError):
    """Bad devices.toml, bad option value, unknown device name."""


class DeviceError(HwlatError):
    """A device cannot be reached or cannot run what was asked."""

    exit_code = 3


class HostKeyError(DeviceError):
    """Unknown or changed SSH host key."""


class AgentError(DeviceError):
    """The device agent died, misbehaved or sent malformed output."""


class ModelFileError(HwlatError):
    """Missing, unreadable, truncated or unsupported model file."""


class UnsupportedOperatorError(HwlatError):
    """Decomposition met operators it cannot map to kernels."""

    def __init__(self, message: str, operators: list[str] | None = None) -> None:
        super().__init__(message)
        self.operators = list(operators or [])


class UnsupportedOperatorWarning(UserWarning):
    """A model was predicted although some of its operators have no kernel: their time is missing."""


class StoreError(HwlatError):
    """Corrupt profile file, schema from another version, disk full."""


class EncodingError(HwlatError):
    """An architecture encoding that does not fit its search space; names the field."""


class PredictorError(HwlatError):
    """Missing, incompatible or mismatched predictor artifact."""
