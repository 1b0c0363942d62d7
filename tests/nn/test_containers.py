"""Containers: Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict, Flatten."""

from collections import OrderedDict

import pytest

import dtorch
import dtorch.nn as nn


def test_sequential_indexing_slicing_append():
    a, b, c = nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1)
    s = nn.Sequential(a, b, c)
    assert s[0] is a and s[-1] is c and len(s) == 3
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert list(sub._modules) == ["1", "2"]
    assert s(dtorch.randn(4, 2)).shape == (4, 1)
    s.append(nn.Identity())
    assert len(s) == 4
    del s[1]
    assert list(s._modules) == ["0", "1", "2"] and s[1] is c
    s.insert(1, b)
    assert list(s) == [a, b, c, s[3]]
    with pytest.raises(IndexError, match="index 7 is out of range"):
        s[7]
    assert len(s + nn.Sequential(nn.Identity())) == 5


def test_sequential_ordered_dict_and_state_dict_names():
    s = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("fc", nn.Flatten())]))
    assert s.conv is s[0]
    assert list(s.state_dict()) == ["conv.weight", "conv.bias"]
    assert repr(s) == ("Sequential(\n  (conv): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))"
                       "\n  (fc): Flatten(start_dim=1, end_dim=-1)\n)")
    assert list(nn.Sequential(nn.Linear(1, 1)).state_dict()) == ["0.weight", "0.bias"]


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    ml.append(nn.ReLU() if hasattr(nn, "ReLU") else nn.Identity())
    assert len(ml) == 4 and len(list(ml.parameters())) == 6
    ml.insert(0, nn.Identity())
    assert isinstance(ml[0], nn.Identity) and len(ml) == 5
    assert isinstance(ml[1:3], nn.ModuleList)
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2", "3"]
    ml += [nn.Identity()]
    assert len(ml) == 5
    text = repr(nn.ModuleList([nn.Linear(2, 2) for _ in range(3)]))
    assert text == ("ModuleList(\n  (0-2): 3 x Linear(in_features=2, out_features=2, "
                    "bias=True)\n)")
    assert repr(nn.ModuleList()) == "ModuleList()"


def test_module_dict():
    md = nn.ModuleDict({"b": nn.Linear(1, 1), "a": nn.Identity()})
    assert list(md.keys()) == ["b", "a"] and "a" in md and len(md) == 2
    md["c"] = nn.Linear(2, 2)
    assert [k for k, _ in md.named_parameters()] == ["b.weight", "b.bias", "c.weight",
                                                     "c.bias"]
    md.pop("b")
    assert list(md) == ["a", "c"]
    md.update([("d", nn.Identity())])
    assert list(md.values())[-1] is md["d"]


def test_parameter_list_and_dict():
    pl = nn.ParameterList([nn.Parameter(dtorch.zeros(2)), dtorch.ones(3)])
    assert isinstance(pl[1], nn.Parameter) and len(pl) == 2
    pl.append(nn.Parameter(dtorch.zeros(1)))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert repr(pl).startswith("ParameterList(\n    (0): Parameter containing: "
                               "[dtorch.float32 of size 2]")
    pd = nn.ParameterDict({"w": nn.Parameter(dtorch.zeros(2))})
    pd["b"] = dtorch.ones(1)
    assert isinstance(pd["b"], nn.Parameter) and list(pd.keys()) == ["w", "b"]
    assert [n for n, _ in pd.named_parameters()] == ["w", "b"]
    assert "b" in pd and pd.get("zz") is None
    del pd["w"]
    assert list(pd) == ["b"]

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.ps = pl

    assert list(Holder().state_dict()) == ["ps.0", "ps.1", "ps.2"]


def test_flatten_unflatten_identity():
    x = dtorch.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Identity(54, unused="x")(x) is x
