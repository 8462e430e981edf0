"""A user's own model class, as the source of a .py file the tests write: two outputs of different shapes."""

SHAPE = (1, 3, 16, 16)
NET = '''
import torch
from torch import nn


class TwoHeads(nn.Module):
    """A class score and a box map: two outputs of different shapes."""

    def __init__(self, width=8, classes=5):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.cls = nn.Linear(width, classes)
        self.box = nn.Conv2d(width, 4, 1)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h.mean((2, 3))), self.box(h)
'''
