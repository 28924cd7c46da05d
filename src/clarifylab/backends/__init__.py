"""Chat backends: one interface (:class:`ChatBackend`) for every role that calls an LLM.

``TransformersBackend`` is imported lazily from its module (it pulls in torch/transformers at call time).
"""

from clarifylab.backends.base import ChatBackend, Message, SamplingParams

__all__ = ["ChatBackend", "Message", "SamplingParams"]

# HTTP backend, call cache, usage accounting and the config factory (light imports: openai loads on first call).
from clarifylab.backends.accounting import UsageMeter  # noqa: E402
from clarifylab.backends.cache import CachedBackend  # noqa: E402
from clarifylab.backends.factory import build_backend  # noqa: E402
from clarifylab.backends.openai_backend import BackendCallError, OpenAIBackend  # noqa: E402

__all__ += ["BackendCallError", "CachedBackend", "OpenAIBackend", "UsageMeter", "build_backend"]
