"""``dtorch.utils``: data loading (``data``) and array interchange (``dlpack``)."""

from . import data, dlpack
