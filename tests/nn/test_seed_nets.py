"""The seed tutorials' networks run unchanged with ``import dtorch as torch``: LeNet's printed
form and parameter shapes, numbers equal to PyTorch's for the same weights (values pasted from
torch 2.13), the CIFAR-10 CNN, and a few training steps that lower the loss."""

import numpy as np

import dtorch as torch
import dtorch.nn as nn
import dtorch.nn.functional as F
import dtorch.optim as optim


class Net(nn.Module):  # seed 002 (and 001's LeNet)
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, self.num_flat_features(x))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x

    def num_flat_features(self, x):
        size = x.size()[1:]
        num_features = 1
        for s in size:
            num_features *= s
        return num_features


class CifarNet(nn.Module):  # seed 001, CIFAR-10 classifier
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


LENET_REPR = """Net(
  (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (fc1): Linear(in_features=400, out_features=120, bias=True)
  (fc2): Linear(in_features=120, out_features=84, bias=True)
  (fc3): Linear(in_features=84, out_features=10, bias=True)
)"""


def test_lenet_print_and_parameter_shapes():
    net = Net()
    assert repr(net) == LENET_REPR
    params = list(net.parameters())
    assert len(params) == 10
    assert [list(p.size()) for p in params] == [[6, 1, 5, 5], [6], [16, 6, 5, 5], [16],
                                                [120, 400], [120], [84, 120], [84], [10, 84],
                                                [10]]
    out = net(torch.randn(1, 1, 32, 32))
    assert out.shape == (1, 10) and out.grad_fn.name() == "AddmmBackward0"
    net.zero_grad()
    out.backward(torch.randn(1, 10))
    assert net.conv1.bias.grad.shape == (6,)


def test_lenet_matches_pytorch_numbers():
    net = Net().double()
    with torch.no_grad():
        for i, (_, p) in enumerate(net.named_parameters()):
            p.copy_((torch.sin(torch.arange(p.numel(), dtype=torch.float64) * 0.37 + i)
                     * 0.2).reshape(p.shape))
    x = torch.cos(torch.arange(2 * 32 * 32, dtype=torch.float64) * 0.11).reshape(2, 1, 32, 32)
    out = net(x)
    expected = [[-1.82842248903, -1.729327723505, -1.437170347016, -0.982891930092,
                 -0.415755145685, 0.201957436805, 0.801754659374, 1.316517220522,
                 1.688010149477, 1.873486242966],
                [-1.731805871109, -1.666910769932, -1.415930613096, -1.005203793452,
                 -0.479124375964, 0.104614849376, 0.6813205866, 1.18645491806,
                 1.562859207241, 1.767237212733]]
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-10)
    loss = F.mse_loss(out, torch.zeros(2, 10))
    loss.backward()
    assert abs(loss.item() - 1.739265277038216) < 1e-10
    np.testing.assert_allclose(net.conv1.bias.grad.numpy(),
                               [-0.21076457658855702, 0.05328703450745813, 0.10581414502795797,
                                -0.26169120427497, 0.1285408271588568, -0.641264691527414],
                               atol=1e-10)


def test_cifar_net_trains(device):
    torch.manual_seed(0)
    net = CifarNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    inputs = torch.randn(8, 3, 32, 32, device=device)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7], device=device)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    _, predicted = torch.max(net(inputs), 1)
    assert predicted.shape == (8,)
    sd = net.state_dict()
    fresh = CifarNet().to(device)
    fresh.load_state_dict(sd)
    np.testing.assert_allclose(fresh(inputs).detach().cpu().numpy(),
                               net(inputs).detach().cpu().numpy(), rtol=1e-6)


def test_seed_sequential_mlp():
    model = torch.nn.Sequential(torch.nn.Linear(784, 50), torch.nn.ReLU(),
                                torch.nn.Linear(50, 10))
    assert repr(model) == ("Sequential(\n  (0): Linear(in_features=784, out_features=50, "
                           "bias=True)\n  (1): ReLU()\n  (2): Linear(in_features=50, "
                           "out_features=10, bias=True)\n)")
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(16, 784), torch.randint(0, 10, (16,))
    first = None
    for _ in range(5):
        loss = loss_fn(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
