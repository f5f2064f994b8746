"""Client for the Model Version Registry's REST API: the `mvr` command is built on `Registry`.

from mvr import Registry

registry = Registry("https://registry.example.com", token="mvr_...")   # or REGISTRY_URL / REGISTRY_TOKEN
registry.push("image_classifier", "v3", "model.onnx", metrics={"accuracy": 0.93})
registry.deploy("image_classifier", "v3", "staging")
registry.pull("image_classifier@production", "model.onnx")
"""

__version__ = "0.1.0"

from mvr.client import Capabilities, Evaluation, PushResult, Registry  # noqa: E402
from mvr.errors import (  # noqa: E402
    ApiError,
    ChecksumMismatch,
    Conflict,
    MvrError,
    NotAllowed,
    NotFound,
    PolicyRefused,
    TransportError,
    UnsupportedByServer,
    UsageError,
    VersionMismatch,
)
from mvr.transfer import Download  # noqa: E402

__all__ = [
    "ApiError",
    "Capabilities",
    "ChecksumMismatch",
    "Conflict",
    "Download",
    "Evaluation",
    "MvrError",
    "NotAllowed",
    "NotFound",
    "PolicyRefused",
    "PushResult",
    "Registry",
    "TransportError",
    "UnsupportedByServer",
    "UsageError",
    "VersionMismatch",
]
