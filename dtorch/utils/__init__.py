"""``dtorch.utils``: data loading (``data``), array interchange (``dlpack``) and activation
checkpointing (``checkpoint``)."""

from . import checkpoint, data, dlpack
