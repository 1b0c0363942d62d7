"""``RemovableHandle``: what every ``register_*hook`` returns."""

import itertools
import weakref


class RemovableHandle:
    """Removes a registered hook from its container (a list or a dict) on ``remove()`` or at the
    end of a ``with`` block. Holds the container weakly where it can, so a handle never keeps a
    module or tensor alive."""

    _ids = itertools.count()

    def __init__(self, container, item, key=None):
        self.id = next(RemovableHandle._ids)
        self._item = item
        self._key = key
        try:
            self._ref = weakref.ref(container)
        except TypeError:  # lists and dicts cannot be weakly referenced
            self._ref = lambda: container

    def remove(self):
        container = self._ref()
        if container is None:
            return
        if isinstance(container, dict):
            container.pop(self._key, None)
        else:
            for i, item in enumerate(container):
                if item is self._item:
                    del container[i]
                    break

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
