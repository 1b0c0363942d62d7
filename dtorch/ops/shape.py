"""Shape and data-movement ops. Those that are views in PyTorch (view, reshape when possible,
squeeze, unsqueeze, transpose, permute, expand, narrow, split, chunk, unbind) return NumPy/CuPy
views sharing storage; the others (cat, flip, roll, repeat, gather...) always return new memory."""

import builtins
import math

import numpy as np

from .. import _backend, return_types
from ..amp.autocast_mode import autocast_op
from ..autograd.function import Primitive
from . import register
from ._util import tensor_cls, wrap_dim


def _is_view_of(out, a):
    root = a if a.base is None else a.base
    return out is not a and out.base is not None and (out.base is root or out.base is a)


def _infer_shape(shape, numel):
    shape = list(shape)
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = math.prod(s for s in shape if s != -1)
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[neg[0]] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
    return tuple(shape)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


class Reshape(Primitive):
    """reshape: a view when the strides allow it, else a copy (as PyTorch)."""

    backward_name = "ViewBackward0"

    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        out = a.reshape(shape)
        ctx.is_view = _is_view_of(out, a)
        return out

    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


class View(Reshape):
    is_view = True

    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        out = a.view()
        try:
            out.shape = shape
        except AttributeError:
            raise RuntimeError(
                "view size is not compatible with input tensor's size and stride (at least one "
                "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
            ) from None
        return out


class Squeeze(Reshape):
    backward_name = "SqueezeBackward0"
    is_view = True

    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return a.reshape(shape)


class Unsqueeze(Squeeze):
    backward_name = "UnsqueezeBackward0"


@register()
def view(input, *shape):
    """A view with another shape (one dim may be -1); the storage must allow it. With a dtype,
    ``view(dtype)`` is not supported."""
    shape = _infer_shape(_shape_arg(shape), input._data.size)
    return View.apply(input, shape)


@register()
def reshape(input, *shape):
    """Another shape with the same elements: a view when possible, else a copy."""
    shape = _infer_shape(_shape_arg(shape), input._data.size)
    return Reshape.apply(input, shape)


@register()
def view_as(input, other):
    return view(input, other.shape)


@register()
def reshape_as(input, other):
    return reshape(input, other.shape)


@register()
def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one."""
    nd = input.ndim
    if nd == 0:
        return reshape(input, (1,))
    s, e = wrap_dim(start_dim, nd), wrap_dim(end_dim, nd)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = input.shape
    return reshape(input, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


@register()
def unflatten(input, dim, sizes):
    """Split dim ``dim`` into ``sizes`` (one may be -1)."""
    d = wrap_dim(dim, input.ndim)
    shape = input.shape
    sizes = tuple(sizes)
    if -1 not in sizes and math.prod(sizes) != shape[d]:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({shape[d]}) in the input tensor")
    sizes = _infer_shape(sizes, shape[d])
    return view(input, shape[:d] + sizes + shape[d + 1:])


@register()
def squeeze(input, dim=None):
    """Remove dims of size 1 (all, or those in ``dim``)."""
    shape = input.shape
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = {wrap_dim(d, input.ndim) for d in (dim if isinstance(dim, (tuple, list))
                                                   else (dim,))}
        new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
    return Squeeze.apply(input, new)


@register()
def unsqueeze(input, dim):
    """Insert a dim of size 1 at ``dim``."""
    d = wrap_dim(dim, input.ndim + 1)
    shape = input.shape
    return Unsqueeze.apply(input, shape[:d] + (1,) + shape[d:])


class Permute(Primitive):
    is_view = True

    def forward(ctx, a, dims):
        ctx.dims = dims
        return a.transpose(dims)

    def backward(ctx, g):
        return g.transpose(np.argsort(ctx.dims))


class Transpose(Permute):
    pass


@register()
def permute(input, *dims):
    """A view with the dims reordered."""
    dims = _shape_arg(dims)
    if len(dims) != input.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {input.ndim} is not equal to len(dims) = {len(dims)}")
    dims = tuple(wrap_dim(d, input.ndim) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return Permute.apply(input, dims)


@register()
def transpose(input, dim0, dim1):
    """A view with dims ``dim0`` and ``dim1`` swapped."""
    nd = input.ndim
    if nd == 0:
        return view(input, ())
    perm = list(range(nd))
    d0, d1 = wrap_dim(dim0, nd), wrap_dim(dim1, nd)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return Transpose.apply(input, tuple(perm))


swapaxes = register("swapaxes")(transpose)
swapdims = register("swapdims")(transpose)


@register()
def t(input):
    """Transpose of a matrix (a 0-d or 1-d tensor is returned as is)."""
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{input.ndim}D")
    return transpose(input, 0, 1) if input.ndim == 2 else view(input, input.shape)


@register()
def movedim(input, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    nd = input.ndim
    src = [wrap_dim(d, nd) for d in src]
    dst = [wrap_dim(d, nd) for d in dst]
    order = [d for d in range(nd) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(input, order)


moveaxis = register("moveaxis")(movedim)


class Expand(Primitive):
    is_view = True

    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return ctx.xp.broadcast_to(a, shape)

    def backward(ctx, g):
        from ._util import unbroadcast

        return unbroadcast(g, ctx.in_shape)


@register()
def expand(input, *sizes):
    """A broadcast view of ``input`` with ``sizes`` (-1 keeps a dim)."""
    sizes = _shape_arg(sizes)
    shape = input.shape
    if len(sizes) < len(shape):
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({len(shape)})")
    lead = len(sizes) - len(shape)
    out = []
    for i, s in enumerate(sizes):
        cur = shape[i - lead] if i >= lead else None
        if s == -1:
            if cur is None:
                raise RuntimeError("expand: -1 is not allowed in a leading, non-existing "
                                   "dimension")
            s = cur
        if cur is not None and cur != 1 and cur != s:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({cur}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(shape)}")
        out.append(s)
    return Expand.apply(input, tuple(out))


@register()
def expand_as(input, other):
    return expand(input, other.shape)


@register()
def broadcast_to(input, shape):
    return expand(input, shape)


class Repeat(Primitive):
    def forward(ctx, a, reps):
        ctx.meta = (a.shape, reps)
        return ctx.xp.tile(a, reps)

    def backward(ctx, g):
        shape, reps = ctx.meta
        shape = (1,) * (len(reps) - len(shape)) + tuple(shape)
        split = []
        for r, s in zip(reps, shape):
            split += [r, s]
        grad = g.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return grad.reshape(ctx.meta[0])


@register()
def repeat(input, *sizes):
    """Tile ``input`` ``sizes[i]`` times along each dim (new memory)."""
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    return Repeat.apply(input, sizes)


@register()
def tile(input, dims):
    dims = tuple(dims)
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


class Cat(Primitive):
    def forward(ctx, *arrays, dim):
        ctx.meta = (dim, [a.shape[dim] for a in arrays])
        return ctx.xp.concatenate(arrays, axis=dim)

    def backward(ctx, g):
        dim, sizes = ctx.meta
        idx = np.cumsum(sizes)[:-1]
        return tuple(ctx.xp.split(g, idx, axis=dim))


@register(method=False)
def cat(tensors, dim=0):
    """Concatenate along an existing dim (1-d empty tensors are skipped, as in PyTorch)."""
    tensors = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or list(tensors)[:1]
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    from ._util import result_dtype

    dt = result_dtype(*tensors)
    tensors = [t if t._data.dtype == dt.np else t._to(None, dt) for t in tensors]
    d = wrap_dim(dim, tensors[0].ndim)
    ref = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.ndim != len(ref):
            raise RuntimeError(f"Tensors must have same number of dimensions: got {len(ref)} "
                               f"and {t.ndim}")
        for j, (a, b) in enumerate(zip(ref, t.shape)):
            if j != d and a != b:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size {a} "
                    f"but got size {b} for tensor number {i} in the list.")
    return Cat.apply(*tensors, dim=d)


concat = register("concat", method=False)(cat)
concatenate = register("concatenate", method=False)(cat)


@register(method=False)
def stack(tensors, dim=0):
    """Stack tensors of equal shape along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at "
                               f"entry {i}")
    d = wrap_dim(dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


@register(method=False)
def hstack(tensors):
    tensors = list(tensors)
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


@register(method=False)
def vstack(tensors):
    return cat([t if t.ndim > 1 else unsqueeze(t, 0) for t in tensors], 0)


class Split(Primitive):
    """Split into pieces along ``dim``; each piece is a view. Pieces that receive no gradient
    contribute zeros."""

    def forward(ctx, a, sizes, dim):
        ctx.meta = (a.shape, sizes, dim)
        idx = np.cumsum(sizes)[:-1]
        return tuple(ctx.xp.split(a, idx, axis=dim))

    def backward(ctx, *grads):
        shape, sizes, dim = ctx.meta
        xp = ctx.xp
        parts = []
        for g, s in zip(grads, sizes):
            if g is None:
                piece = list(shape)
                piece[dim] = s
                g = xp.zeros(piece, dtype=next(x for x in grads if x is not None).dtype)
            parts.append(g)
        return xp.concatenate(parts, axis=dim)


@register()
def split(tensor, split_size_or_sections, dim=0):
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes."""
    d = wrap_dim(dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0 and n:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                               f"dimension size of {n}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if size else [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got split_sizes="
                               f"{sizes}")
    return Split.apply(tensor, tuple(sizes), d)


@register()
def chunk(input, chunks, dim=0):
    """Split into ``chunks`` pieces of equal size (the last may be smaller)."""
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    n = input.shape[wrap_dim(dim, input.ndim)]
    return split(input, builtins.max(1, -(-n // chunks)), dim)


@register()
def tensor_split(input, indices_or_sections, dim=0):
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        sizes = [n // k + 1] * (n % k) + [n // k] * (k - n % k)
    else:
        bounds = [0] + list(indices_or_sections) + [n]
        sizes = [builtins.max(0, b - a) for a, b in zip(bounds, bounds[1:])]
    return Split.apply(input, tuple(sizes), d)


@register()
def unbind(input, dim=0):
    """The slices along ``dim``, as a tuple."""
    d = wrap_dim(dim, input.ndim)
    return tuple(squeeze(p, d) for p in split(input, 1, d))


class Narrow(Primitive):
    is_view = True

    def forward(ctx, a, dim, start, length):
        ctx.meta = (a.shape, dim, start, length)
        idx = (slice(None),) * dim + (slice(start, start + length),)
        return a[idx]

    def backward(ctx, g):
        shape, dim, start, length = ctx.meta
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        out[(slice(None),) * dim + (slice(start, start + length),)] = g
        return out


@register()
def narrow(input, dim, start, length):
    """A view of ``length`` elements along ``dim`` starting at ``start``."""
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    start = int(start)
    if start < 0:
        start += n
    if not (0 <= start <= n and 0 <= length and start + length <= n):
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return Narrow.apply(input, d, start, int(length))


class Flip(Primitive):
    def forward(ctx, a, dims):
        ctx.dims = dims
        return ctx.xp.flip(a, dims).copy()

    def backward(ctx, g):
        return ctx.xp.flip(g, ctx.dims)


@register()
def flip(input, dims):
    """Reverse the order of elements along ``dims`` (new memory, as in PyTorch)."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return Flip.apply(input, tuple(wrap_dim(d, input.ndim) for d in dims))


@register()
def fliplr(input):
    return flip(input, (1,))


@register()
def flipud(input):
    return flip(input, (0,))


class Roll(Primitive):
    def forward(ctx, a, shifts, dims):
        ctx.meta = (shifts, dims)
        if dims is None:
            return ctx.xp.roll(a.reshape(-1), shifts).reshape(a.shape)
        return ctx.xp.roll(a, shifts, dims)

    def backward(ctx, g):
        shifts, dims = ctx.meta
        neg = tuple(-s for s in shifts) if isinstance(shifts, tuple) else -shifts
        if dims is None:
            return ctx.xp.roll(g.reshape(-1), neg).reshape(g.shape)
        return ctx.xp.roll(g, neg, dims)


@register()
def roll(input, shifts, dims=None):
    """Shift elements cyclically along ``dims`` (flattened if None)."""
    if dims is not None:
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
        if len(shifts) != len(dims):
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               f"dims:{len(dims)}")
        dims = tuple(wrap_dim(d, input.ndim) for d in dims)
    elif not isinstance(shifts, int):
        shifts = tuple(shifts)
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               "dims:0")
        shifts = shifts[0]
    return Roll.apply(input, shifts, dims)


def _index_array(index, name):
    T = tensor_cls()
    arr = index._data if isinstance(index, T) else np.asarray(index)
    if arr.dtype.kind not in "iu":
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")
    return arr


def _check_along_index(name, input, dim, index, src=None):
    """PyTorch's shape checks for gather/scatter: same ndim, and the index no larger than
    ``input`` (and ``src``) in every dim but ``dim``."""
    if index.ndim != input.ndim and index.size:
        raise RuntimeError("Index tensor must have the same number of dimensions as "
                           f"{'input' if name == 'gather' else 'self'} tensor")
    for d, n in enumerate(index.shape):
        if d != dim and n > input.shape[d]:
            raise RuntimeError(f"Size does not match at dimension {d} expected index "
                               f"{list(index.shape)} to be no larger than self "
                               f"{list(input.shape)} apart from dimension {dim}")
        if src is not None and n > src.shape[d]:
            raise RuntimeError(f"Expected index {list(index.shape)} to be no larger than self "
                               f"{list(input.shape)} apart from dimension {dim} and to be no "
                               f"larger size than src {list(src.shape)}")


def _out_of_bounds(exc):
    """NumPy's IndexError for an out-of-range index, as PyTorch's RuntimeError."""
    return RuntimeError(str(exc).replace(" axis ", " dimension "))


class Gather(Primitive):
    def forward(ctx, a, dim, index):
        ctx.meta = (a.shape, dim, index)
        return a[_along_index(ctx.xp, dim, index)]

    def backward(ctx, g):
        shape, dim, index = ctx.meta
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        _scatter_add_along(ctx.xp, out, dim, index, g)
        return out


def _along_index(xp, dim, index):
    """Fancy-index tuple addressing ``out[..., index[i,j,k], ...]`` along ``dim``."""
    grids = list(xp.ogrid[tuple(slice(0, s) for s in index.shape)])
    grids[dim] = index
    return tuple(grids)


def _scatter_add_along(xp, out, dim, index, values):
    _backend.scatter_add_at(out, _along_index(xp, dim, index), values)


@register()
def gather(input, dim, index, *, sparse_grad=False):
    """``out[i][j] = input[index[i][j]][j]`` for ``dim=0`` (and so on)."""
    d = wrap_dim(dim, input.ndim)
    idx = _index_array(index, "gather")
    _check_along_index("gather", input, d, idx)
    try:
        return Gather.apply(input, d, idx)
    except IndexError as exc:
        raise _out_of_bounds(exc) from None


class Scatter(Primitive):
    def forward(ctx, a, src, dim, index, reduce):
        xp = ctx.xp
        out = a.copy()
        sel = _along_index(xp, dim, index)
        vals = src[tuple(slice(0, s) for s in index.shape)] if hasattr(src, "shape") and \
            src.ndim else src
        if reduce == "add":
            _backend.scatter_add_at(out, sel, vals)
        elif reduce == "multiply":
            xp.multiply.at(out, sel, vals)
        else:
            out[sel] = vals
        ctx.meta = (dim, index, reduce, getattr(src, "shape", None))
        return out

    def backward(ctx, g):
        dim, index, reduce, src_shape = ctx.meta
        xp = ctx.xp
        sel = _along_index(xp, dim, index)
        ga = gs = None
        na, ns = ctx.needs_input_grad[:2]
        if na:
            ga = g.copy()
            if reduce is None:
                ga[sel] = 0
        if ns and src_shape is not None:
            gs = xp.zeros(src_shape, dtype=g.dtype)
            gs[tuple(slice(0, s) for s in index.shape)] = g[sel]
        return ga, gs


@register(inplace=True)
def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """Write ``src`` (or ``value``) into ``input`` at ``index`` along ``dim``."""
    if src is None:
        src = value
    d = wrap_dim(dim, input.ndim)
    T = tensor_cls()
    idx = _index_array(index, "scatter")
    if isinstance(src, T):
        _check_along_index("scatter", input, d, idx, src)
        if src._data.dtype != input._data.dtype:
            src = src._to(None, input.dtype)
    else:
        _check_along_index("scatter", input, d, idx)
    if reduce not in (None, "add", "multiply"):
        raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
    if reduce == "multiply" and (input.requires_grad or isinstance(src, T) and
                                 src.requires_grad):
        raise RuntimeError("scatter(): the derivative for reduce='multiply' is not "
                           "implemented; use scatter_reduce or compute it without grad")
    try:
        return Scatter.apply(input, src, d, idx, reduce)
    except IndexError as exc:
        raise _out_of_bounds(exc) from None


@register(inplace=True)
@autocast_op
def scatter_add(input, dim, index, src):
    """Add ``src`` into ``input`` at ``index`` along ``dim`` (repeated indices accumulate)."""
    return scatter(input, dim, index, src, reduce="add")


class IndexSelect(Primitive):
    def forward(ctx, a, dim, index):
        ctx.meta = (a.shape, dim, index)
        return ctx.xp.take(a, index, axis=dim)

    def backward(ctx, g):
        shape, dim, index = ctx.meta
        xp = ctx.xp
        out = xp.zeros(shape, dtype=g.dtype)
        sel = (slice(None),) * dim + (index,)
        _backend.scatter_add_at(out, sel, g)
        return out


@register()
def index_select(input, dim, index):
    """The entries of ``input`` at ``index`` (1-d) along ``dim``."""
    idx = _index_array(index, "index_select")
    if idx.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    try:
        return IndexSelect.apply(input, wrap_dim(dim, input.ndim), idx.reshape(-1))
    except IndexError:
        raise IndexError("index out of range in self") from None


class MaskedFill(Primitive):
    def forward(ctx, a, mask, value):
        ctx.save_for_backward(mask)
        ctx.shape = a.shape
        return ctx.xp.where(mask, ctx.xp.asarray(value, dtype=a.dtype), a)

    def backward(ctx, g):
        from ._util import unbroadcast

        (mask,) = ctx.saved_tensors
        ga = ctx.xp.where(mask, g.dtype.type(0), g)
        gv = None
        if ctx.needs_input_grad[2]:
            gv = ctx.xp.where(mask, g, g.dtype.type(0)).sum()
        return unbroadcast(ga, ctx.shape), None, gv


@register(inplace=True)
def masked_fill(input, mask, value):
    """``value`` where ``mask`` (bool, broadcastable) is True, else ``input``."""
    T = tensor_cls()
    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{mask.dtype}")
    if isinstance(value, T):
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but "
                               f"got tensor with {value.ndim} dimension(s).")
        if not value._requires_grad:
            value = value.item()
    return MaskedFill.apply(input, mask, value)


class Triangle(Primitive):
    def forward(ctx, a, diagonal, upper):
        ctx.meta = (diagonal, upper)
        xp = ctx.xp
        return xp.triu(a, diagonal) if upper else xp.tril(a, diagonal)

    def backward(ctx, g):
        diagonal, upper = ctx.meta
        xp = ctx.xp
        return xp.triu(g, diagonal) if upper else xp.tril(g, diagonal)


class Tril(Triangle):
    pass


class Triu(Triangle):
    pass


@register(inplace=True)
def tril(input, diagonal=0):
    """Lower triangle (the rest zero) of the last two dims."""
    return Tril.apply(input, diagonal, False)


@register(inplace=True)
def triu(input, diagonal=0):
    """Upper triangle (the rest zero) of the last two dims."""
    return Triu.apply(input, diagonal, True)


class Sort(Primitive):
    def forward(ctx, a, dim, descending, stable):
        xp = ctx.xp
        key = -a if descending and a.dtype.kind != "b" else a
        if descending and a.dtype.kind == "b":
            key = ~a
        idx = xp.argsort(key, axis=dim, kind="stable")
        values = xp.take_along_axis(a, idx, axis=dim)
        ctx.meta = (a.shape, dim, idx)
        ctx.mark_non_differentiable(idx)
        return values, idx.astype(np.int64, copy=False)

    def backward(ctx, g, _gi):
        shape, dim, idx = ctx.meta
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        ctx.xp.put_along_axis(out, idx, g, axis=dim)
        return out


@register()
def sort(input, dim=-1, descending=False, stable=False):
    """``(values, indices)`` sorted along ``dim`` (stable)."""
    d = wrap_dim(dim, input.ndim)
    if input.ndim == 0:
        values, indices = Sort.apply(input.reshape(1), 0, descending, stable)
        return return_types.sort(values.reshape(()), indices.reshape(()))
    values, indices = Sort.apply(input, d, descending, stable)
    return return_types.sort(values, indices)


@register()
def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending, stable).indices


@register()
def msort(input):
    return sort(input, 0).values


@register()
def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices."""
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d] if input.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range (k={k}, size={n})")
    values, indices = sort(input, d, descending=largest)
    return return_types.topk(narrow(values, d, 0, k), narrow(indices, d, 0, k))


class ViewScatter(Primitive):
    """The base of a view after an in-place write through the view: ``base`` with the view's
    region replaced by ``value``. ``chain`` re-creates the view from the base (see
    ``Tensor._rebase_view``); forward returns the already-updated base array."""

    backward_name = "CopySlices"

    def forward(ctx, base, value, chain):
        ctx.chain = chain
        return base

    def backward(ctx, g):
        gb = g.copy()
        _apply_chain(gb, ctx.chain)[...] = 0
        return gb, _apply_chain(g, ctx.chain).copy()


def _apply_chain(array, chain):
    for cls, args, kwargs in chain:
        array = cls._view_of(array, args, kwargs)
    return array


class RepeatInterleave(Primitive):
    def forward(ctx, a, repeats, dim):
        ctx.meta = (a.shape, repeats, dim)
        return ctx.xp.repeat(a, repeats, axis=dim)

    def backward(ctx, g):
        shape, repeats, dim = ctx.meta
        xp = ctx.xp
        owner = xp.repeat(xp.arange(shape[dim]), repeats)
        out = xp.zeros(shape, dtype=g.dtype)
        _backend.scatter_add_at(xp.moveaxis(out, dim, 0), owner, xp.moveaxis(g, dim, 0))
        return out


@register()
def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Repeat each element ``repeats`` times (an int or one count per element) along ``dim``
    (of the flattened input if None). ``repeat_interleave(counts)`` repeats ``arange(n)``."""
    T = tensor_cls()
    if repeats is None:
        counts = input
        input = T._wrap(_backend.get_array_module(counts._data).arange(counts.shape[0]))
        repeats, dim = counts, 0
    if dim is None:
        input, dim = reshape(input, (-1,)), 0
    d = wrap_dim(dim, input.ndim)
    if isinstance(repeats, T):
        reps = repeats._data
        if reps.ndim == 0:
            reps = int(reps)
        elif reps.shape != (input.shape[d],):
            raise RuntimeError(f"repeats must have the same size as input along dim, but got "
                               f"repeats.size(0) = {reps.shape[0]} and input.size({d}) = "
                               f"{input.shape[d]}")
        elif (reps < 0).any():
            raise RuntimeError("repeats can not be negative")
    else:
        if repeats < 0:
            raise RuntimeError("repeats can not be negative")
        reps = int(repeats)
    return RepeatInterleave.apply(input, reps, d)


class Unique(Primitive):
    differentiable = False

    def forward(ctx, a, dim, return_inverse, return_counts):
        xp = ctx.xp
        src = a.reshape(-1) if dim is None else a
        values, inverse, counts = xp.unique(src, return_inverse=True, return_counts=True,
                                            axis=dim)
        if dim is None:
            inverse = inverse.reshape(a.shape)
        out = (values,)
        if return_inverse:
            out += (inverse.astype(np.int64),)
        if return_counts:
            out += (counts.astype(np.int64),)
        return out


@register()
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The distinct elements (sorted), and optionally the index of each input element into them
    and the count of each (not differentiable)."""
    d = None if dim is None else wrap_dim(dim, input.ndim)
    out = Unique.apply(input, d, return_inverse, return_counts)
    return out[0] if len(out) == 1 else out
