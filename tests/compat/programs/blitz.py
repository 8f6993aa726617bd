"""The 60-minute blitz: tensors, autograd, a small network, and an image classifier."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim


def tensors_tour():
    """Tensor basics; returns what the tour prints, as plain Python values."""
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    np_array = np.array(data)
    x_np = torch.from_numpy(np_array)
    x_ones = torch.ones_like(x_data)
    x_zeros = torch.zeros_like(x_data, dtype=torch.float)
    shape = (2, 3)
    ones, zeros = torch.ones(shape), torch.zeros(shape)
    tensor = torch.ones(4, 4)
    tensor[:, 1] = 0
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    y3 = torch.ones_like(tensor)
    torch.matmul(tensor, tensor.T, out=y3)
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    agg = tensor.sum()
    agg_item = agg.item()
    tensor.add_(5)
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)  # the array shares the tensor's memory
    n2 = np.ones(5)
    t2 = torch.from_numpy(n2)
    np.add(n2, 1, out=n2)  # and the tensor shares the array's
    return {
        "x_data": x_data.tolist(),
        "x_np": x_np.tolist(),
        "x_ones": x_ones.tolist(),
        "x_zeros": x_zeros.tolist(),
        "ones_zeros": (ones.sum().item(), zeros.sum().item(), list(ones.shape)),
        "attributes": (tensor.dtype == torch.float32, str(tensor.device), tuple(tensor.shape)),
        "t1": t1.shape[1],
        "products": (y1.tolist(), y2.tolist(), y3.tolist(), z1.tolist(), z2.tolist()),
        "agg": (agg_item, type(agg_item).__name__),
        "tensor": tensor.tolist(),
        "bridge": (n.tolist(), t2.tolist()),
    }


def autograd_tour():
    a = torch.tensor([2.0, 3.0], requires_grad=True)
    b = torch.tensor([6.0, 4.0], requires_grad=True)
    Q = 3 * a**3 - b**2
    external_grad = torch.tensor([1.0, 1.0])
    Q.backward(gradient=external_grad)
    x = torch.rand(5, 5)
    y = torch.rand(5, 5)
    z = torch.rand((5, 5), requires_grad=True)
    return {
        "grads": (a.grad.tolist(), b.grad.tolist()),
        "checks": ((9 * a**2 == a.grad).all().item(), (-2 * b == b.grad).all().item()),
        "requires_grad": ((x + y).requires_grad, (x + z).requires_grad),
    }


class Net(nn.Module):
    def __init__(self, in_channels=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, input):
        c1 = F.relu(self.conv1(input))
        s2 = F.max_pool2d(c1, (2, 2))
        c3 = F.relu(self.conv2(s2))
        s4 = F.max_pool2d(c3, 2)
        s4 = torch.flatten(s4, 1)
        f5 = F.relu(self.fc1(s4))
        f6 = F.relu(self.fc2(f5))
        output = self.fc3(f6)
        return output


def make_model(in_channels=1):
    return Net(in_channels)


def network_tour(net, data):
    """One input, the MSE loss, the manual update, then optim.SGD; returns the losses."""
    params = list(net.parameters())
    assert len(params) == 10 and tuple(params[0].size()) == (6, 1, 5, 5)
    input = torch.from_numpy(data["images"][:1]).float().unsqueeze(0) / 255
    input = torch.nn.functional.pad(input, (2, 2, 2, 2))
    target = torch.arange(10, dtype=torch.float).view(1, -1) / 10
    criterion = nn.MSELoss()
    losses = []
    output = net(input)
    loss = criterion(output, target)
    losses.append(loss.item())
    print(loss.grad_fn, loss.grad_fn.next_functions[0][0])
    net.zero_grad()
    print("conv1.bias.grad before backward", net.conv1.bias.grad)
    loss.backward()
    learning_rate = 0.01
    for f in net.parameters():
        f.data.sub_(f.grad.data * learning_rate)
    optimizer = optim.SGD(net.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        output = net(input)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train(net, data, epochs=2, path=None):
    """The image classifier: CrossEntropyLoss, SGD with momentum, save and reload the weights."""
    images = torch.tensor(data["images"], dtype=torch.float32).unsqueeze(1).div(255)
    images = (F.pad(images, (2, 2, 2, 2)) - 0.5) / 0.5
    labels = torch.tensor(data["labels"])
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    losses = []
    for epoch in range(epochs):
        running_loss = 0.0
        for i in range(0, len(images), 4):
            inputs, targets = images[i : i + 4], labels[i : i + 4]
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            losses.append(loss.item())
        print(f"[{epoch + 1}] loss: {running_loss / (len(images) / 4):.3f}")
    if path is not None:
        torch.save(net.state_dict(), path)
        net = Net()
        net.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():
        _, predicted = torch.max(net(images), 1)
        correct = (predicted == labels).sum().item()
    losses.append(correct / len(labels))
    return losses
