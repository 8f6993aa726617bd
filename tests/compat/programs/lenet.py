"""LeNet-5 with sigmoid activations and average pooling, as in a textbook's chapter 6."""

import torch
from torch import nn


def make_model():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )  # fmt: skip


def layer_shapes(net):
    """The textbook's shape walk: each layer's output for one image."""
    X = torch.rand(size=(1, 1, 28, 28), dtype=torch.float32)
    shapes = []
    for layer in net:
        X = layer(X)
        shapes.append((layer.__class__.__name__, tuple(X.shape)))
    return shapes


def train(net, data, epochs=2, lr=0.9, batch_size=64):
    images = torch.tensor(data["images"]).unsqueeze(1).float().div(255)
    labels = torch.tensor(data["labels"], dtype=torch.long)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    losses = []
    for epoch in range(epochs):
        net.train()
        for i in range(0, len(images), batch_size):
            X, y = images[i : i + batch_size], labels[i : i + batch_size]
            optimizer.zero_grad()
            y_hat = net(X)
            batch_loss = loss(y_hat, y)
            batch_loss.backward()
            optimizer.step()
            losses.append(batch_loss.item())
        net.eval()
        with torch.no_grad():
            acc = (net(images).argmax(dim=1) == labels).float().mean()
        print(f"epoch {epoch + 1}: loss {losses[-1]:.3f}, train acc {acc:.3f}")
    return losses
