"""Softmax regression from scratch, then the concise version, as in a textbook's chapter 3."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class SoftmaxRegression(nn.Module):
    """Weights and bias as parameters; softmax and cross-entropy written by hand."""

    def __init__(self, num_inputs=784, num_outputs=10, sigma=0.01):
        super().__init__()
        self.W = nn.Parameter(torch.normal(0, sigma, size=(num_inputs, num_outputs)))
        self.b = nn.Parameter(torch.zeros(num_outputs))

    def forward(self, X):
        X = X.reshape((-1, self.W.shape[0]))
        return softmax(torch.matmul(X, self.W) + self.b)


def softmax(X):
    X_exp = torch.exp(X - X.max(dim=1, keepdim=True).values)
    partition = X_exp.sum(1, keepdims=True)
    return X_exp / partition


def cross_entropy(y_hat, y):
    return -torch.log(y_hat[list(range(len(y_hat))), y])


def accuracy(y_hat, y):
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def sgd(params, lr, batch_size):
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def make_model():
    return SoftmaxRegression()


def train(model, data, epochs=2, lr=0.1, batch_size=64):
    """The scratch loop; returns the mean loss of every batch."""
    X, y = torch.from_numpy(data["images"]).float() / 255, torch.from_numpy(data["labels"]).long()
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=False)
    losses = []
    for epoch in range(epochs):
        correct = 0.0
        for X_batch, y_batch in loader:
            y_hat = model(X_batch)
            loss = cross_entropy(y_hat, y_batch)
            loss.sum().backward()
            sgd([model.W, model.b], lr, X_batch.shape[0])
            losses.append(loss.mean().item())
            correct += accuracy(y_hat, y_batch)
        print(f"epoch {epoch + 1}, loss {losses[-1]:.4f}, train acc {correct / len(y):.3f}")
    return losses


def make_concise_model():
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    net.apply(init_weights)
    return net


def init_weights(m):
    if type(m) is nn.Linear:
        nn.init.normal_(m.weight, std=0.01)


def train_concise(net, data, epochs=2):
    X, y = torch.tensor(data["images"], dtype=torch.float32) / 255, torch.tensor(data["labels"])
    loader = DataLoader(TensorDataset(X, y), batch_size=64)
    loss = nn.CrossEntropyLoss(reduction="none")
    trainer = torch.optim.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(epochs):
        net.train()
        for X_batch, y_batch in loader:
            trainer.zero_grad()
            batch_loss = loss(net(X_batch), y_batch)
            batch_loss.mean().backward()
            trainer.step()
            losses.append(batch_loss.mean().item())
    return losses
