"""Loaders that map a dataset's native upstream files to :class:`~clarifylab.data.schema.Example`.

Each loader checks its input and raises ``DataFormatError`` (naming file, record and field) or
``DataNotFoundError`` (naming the path and the options that set it); none writes anywhere.
Conversation-level splits and subsets live in :mod:`clarifylab.data.splits`.
"""

from clarifylab.data.loaders.abg_coqa import load_abg_coqa
from clarifylab.data.loaders.pacific import load_pacific

__all__ = ["load_abg_coqa", "load_pacific"]
