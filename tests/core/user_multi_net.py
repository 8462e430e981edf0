"""A user's own model class with three inputs, as the source of a .py file the tests write: an image, a float state
vector and an int64 step that indexes an embedding (so it must arrive as an integer)."""

NET = '''
import torch
from torch import nn


class Tracker(nn.Module):
    """A class score and the next state, from an image, the current state and the step count."""

    def __init__(self, width=6, steps=5):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.mix = nn.Conv2d(width, width, 3, padding=1)
        self.state = nn.Linear(4, width)
        self.step = nn.Embedding(steps, width)
        self.head = nn.Linear(width, 3)

    def forward(self, image, state, step):
        h = torch.relu(self.mix(torch.relu(self.conv(image)))).mean((2, 3))
        h = h + self.state(state) + self.step(step)
        return self.head(h), state * 0.5 + h[:, :4]
'''
NAMES = ["image", "state", "step"]
SHAPES = ["image=1,3,16,16", "state=1,4", "step=1:int64"]
