"""The generic join context manager for uneven inputs, as ``torch.distributed.algorithms.join``.

Ranks that run out of data ("join") keep *shadowing* the collectives of the ranks that still
train, so that nobody waits for a collective that never comes. The protocol, per iteration:

* every active rank calls :meth:`Join.notify_join_context` before its own collectives: an
  all-reduce of 1 (and, with ``throw_on_early_termination``, a second all-reduce that tells
  whether some rank has joined);
* a joined rank, in :meth:`Join.__exit__`, all-reduces 0 in the matching place: the sum is the
  number of ranks still active. While it is non-zero the joined rank runs every
  :meth:`JoinHook.main_hook`, which issues the same collectives, in the same order, as one
  active iteration; once it is zero every rank runs :meth:`JoinHook.post_hook`.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import NamedTuple

from ..._creation import ones, zeros
from ..collectives import all_reduce
from ..process_group import get_rank

__all__ = ["Join", "JoinHook", "Joinable"]

_WARN_THRESHOLD = 1000


class JoinHook:
    """What a joined rank does for one :class:`Joinable`: ``main_hook()`` shadows one training
    iteration of the active ranks; ``post_hook(is_last_joiner)`` runs once all ranks joined.

    Subclass it and override either method; both do nothing by default.
    """

    def main_hook(self):
        """Shadow the collectives of one iteration (forward, backward, optimizer step)."""

    def post_hook(self, is_last_joiner):
        """Run after every rank has joined.

        Args:
            is_last_joiner (bool): True on the rank(s) that joined last.
        """


class _JoinConfig(NamedTuple):
    """What a :class:`Joinable` needs to know about the join context it is in."""

    enable: bool
    throw_on_early_termination: bool
    is_first_joinable: bool

    @staticmethod
    def construct_disabled_join_config():
        """The configuration outside any join context (join logic disabled)."""
        return _JoinConfig(enable=False, throw_on_early_termination=False,
                           is_first_joinable=False)


class Joinable(ABC):
    """A class that can take part in :class:`Join`: it provides a :meth:`join_hook`, the
    device and the process group of the join's own collectives, and calls
    :meth:`Join.notify_join_context` before its per-iteration collectives."""

    @abstractmethod
    def __init__(self):
        super().__init__()
        self._join_config = _JoinConfig.construct_disabled_join_config()

    @abstractmethod
    def join_hook(self, **kwargs):
        """The :class:`JoinHook` of this object; ``kwargs`` are those given to :class:`Join`."""

    @property
    @abstractmethod
    def join_device(self):
        """The device of the join context's collectives."""

    @property
    @abstractmethod
    def join_process_group(self):
        """The process group of the join context's collectives."""


class Join:
    """Context manager that lets ranks with fewer inputs join early without hanging the others.

    Wrap the training loop; each :class:`Joinable` (e.g. a
    :class:`~dtorch.nn.parallel.DistributedDataParallel` model) must call
    :meth:`notify_join_context` before its collectives in every iteration. A rank that leaves
    the loop shadows the active ranks' collectives through the joinables' hooks until all ranks
    have left it.

    Args:
        joinables (list[Joinable]): the participants; their hooks run in this order, and the
            first one performs the join's own collectives.
        enable (bool): False turns the whole mechanism off (inputs known to be even).
        throw_on_early_termination (bool): raise ``RuntimeError`` on every rank as soon as one
            rank has run out of inputs, instead of shadowing.
        **kwargs: passed to every ``joinable.join_hook(**kwargs)`` (e.g.
            ``divide_by_initial_world_size`` for DDP).

    Example::

        >>> model = DDP(net)
        >>> with Join([model]):
        ...     for x, y in loader:            # a different number of batches on each rank
        ...         loss_fn(model(x), y).backward()
        ...         opt.step()
    """

    def __init__(self, joinables, enable=True, throw_on_early_termination=False, **kwargs):
        if len(joinables) == 0:
            raise ValueError("The join context manager requires at least one joinable")
        for j in joinables:
            if not isinstance(j, Joinable):
                raise TypeError(f"Join: {type(j).__name__} is not a Joinable")
        self._joinables = list(joinables)
        self._join_hooks = [j.join_hook(**kwargs) for j in self._joinables]
        self._enable = enable
        self._throw_on_early_termination = throw_on_early_termination
        self._set_joinable_configs()
        self._extract_dist_info()

    def _set_joinable_configs(self):
        for i, joinable in enumerate(self._joinables):
            joinable._join_config = _JoinConfig(
                enable=self._enable, throw_on_early_termination=self._throw_on_early_termination,
                is_first_joinable=i == 0)

    def _extract_dist_info(self):
        process_group = device = None
        for i, joinable in enumerate(self._joinables):
            if i == 0:
                process_group = joinable.join_process_group
            elif joinable.join_process_group is not process_group:
                raise ValueError("Using join context manager with multiple process groups")
            if device is None:
                device = joinable.join_device
        self._process_group = process_group
        self._rank = get_rank(process_group)
        self._device = device

    def __enter__(self):
        pass

    def __exit__(self, type, value, traceback):  # noqa: A002 - the context-manager protocol
        """Shadow the active ranks until all have joined, then run the post-hooks.

        Raises:
            RuntimeError: with ``throw_on_early_termination=True``, on the rank that joined.
        """
        try:
            if not self._enable or type is not None:
                return  # an exception inside the block propagates unchanged
            is_last_joiner = True
            i = 0
            while self._get_num_nonjoined_procs() != 0:
                if i == _WARN_THRESHOLD:
                    warnings.warn(
                        f"Detected uneven input skew of greater than {_WARN_THRESHOLD}. This "
                        f"means that rank {self._rank} has at least {_WARN_THRESHOLD} fewer "
                        "inputs than other currently-active ranks. This level of skew could "
                        "lead to performance degradation during training.", stacklevel=2)
                if self._throw_on_early_termination:
                    self._notify_procs_to_terminate()
                for hook in self._join_hooks:
                    hook.main_hook()
                is_last_joiner = False
                i += 1
            for hook in self._join_hooks:
                hook.post_hook(is_last_joiner)
        finally:
            for joinable in self._joinables:
                joinable._join_config = _JoinConfig.construct_disabled_join_config()

    def _get_num_nonjoined_procs(self):
        """Shadow the active ranks' notification: the sum is the number of active ranks."""
        count = zeros(1, device=self._device)
        all_reduce(count, group=self._process_group)
        return int(count.item())

    def _notify_procs_to_terminate(self):
        """Tell the active ranks (their second notification all-reduce) to raise, and raise."""
        all_reduce(ones(1, device=self._device), group=self._process_group)
        raise RuntimeError(f"Rank {self._rank} exhausted all inputs.")

    @staticmethod
    def notify_join_context(joinable):
        """Tell the join context that this rank has not joined; call it before the joinable's
        per-iteration collectives. Only the first joinable of the context communicates.

        With ``throw_on_early_termination=True`` it raises ``RuntimeError`` on every active rank
        once some rank has joined.

        Returns:
            The :class:`~dtorch.distributed.Work` of the notification all-reduce for the first
            joinable, else None.
        """
        if not hasattr(joinable, "_join_config"):
            raise RuntimeError(f"Check that the {type(joinable)} constructor calls the "
                               "``Joinable`` constructor")
        config = joinable._join_config
        if not config.is_first_joinable or not config.enable:
            return None
        device, group = joinable.join_device, joinable.join_process_group
        work = all_reduce(ones(1, device=device), group=group, async_op=True)
        if config.throw_on_early_termination:
            flag = zeros(1, device=device)
            all_reduce(flag, group=group)
            if flag.item():
                work.wait()
                raise RuntimeError("Detected at least one rank that exhausted inputs. "
                                   "Throwing across all ranks.")
        return work
