"""Small raster drawing in numpy alone, for the envs' ``rgb_array`` renders (no image library needed).

Images are ``(height, width, 3)`` uint8 arrays, drawn in place; coordinates are pixels ``(y, x)``
with ``y`` down, and anything outside the image is clipped. Colours are RGB triples in ``0..255``.
Two pictures of a task are composed here: :func:`ring_of_states` (any tabular model: the default
render of every env) and :func:`arm_bars` (a bandit's arms).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["canvas", "fill_rect", "fill_disc", "draw_line", "diverging_colour", "ring_of_states", "arm_bars", "BACKGROUND", "AGENT", "HIGHLIGHT"]

Colour = Sequence[int]

#: The background of every render (dark grey).
BACKGROUND = (32, 32, 32)
#: The agent's mark (white).
AGENT = (255, 255, 255)
#: What the agent just did (amber).
HIGHLIGHT = (255, 191, 0)


def canvas(height: int, width: int, colour: Colour = BACKGROUND) -> np.ndarray:
    """A new ``(height, width, 3)`` uint8 image filled with ``colour``."""
    image = np.empty((int(height), int(width), 3), np.uint8)
    image[:] = np.asarray(colour, np.uint8)
    return image


def fill_rect(image: np.ndarray, y0: int, x0: int, y1: int, x1: int, colour: Colour) -> None:
    """Fill the pixels ``y0 <= y < y1``, ``x0 <= x < x1`` (clipped to the image)."""
    height, width = image.shape[:2]
    y0, y1 = max(0, int(y0)), min(height, int(y1))
    x0, x1 = max(0, int(x0)), min(width, int(x1))
    if y0 < y1 and x0 < x1:
        image[y0:y1, x0:x1] = np.asarray(colour, np.uint8)


def fill_disc(image: np.ndarray, cy: float, cx: float, radius: float, colour: Colour) -> None:
    """Fill the pixels whose centres lie within ``radius`` of ``(cy, cx)``."""
    height, width = image.shape[:2]
    y0, y1 = max(0, int(np.floor(cy - radius))), min(height, int(np.ceil(cy + radius)) + 1)
    x0, x1 = max(0, int(np.floor(cx - radius))), min(width, int(np.ceil(cx + radius)) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1]
    inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2
    image[y0:y1, x0:x1][inside] = np.asarray(colour, np.uint8)


def draw_line(image: np.ndarray, y0: float, x0: float, y1: float, x1: float, colour: Colour, opacity: float = 1.0) -> None:
    """A one-pixel line from ``(y0, x0)`` to ``(y1, x1)``, blended over the image with ``opacity`` in ``[0, 1]``."""
    opacity = float(np.clip(opacity, 0.0, 1.0))
    n = int(max(abs(y1 - y0), abs(x1 - x0))) + 1
    ys = np.rint(np.linspace(y0, y1, n)).astype(np.int64)
    xs = np.rint(np.linspace(x0, x1, n)).astype(np.int64)
    height, width = image.shape[:2]
    keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    ys, xs = ys[keep], xs[keep]
    blended = (1.0 - opacity) * image[ys, xs] + opacity * np.asarray(colour, np.float64)
    image[ys, xs] = np.rint(blended).astype(np.uint8)


def diverging_colour(values: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 colours of ``values (N,)``: blue for the most negative, grey for 0, red for the
    most positive (scaled by the largest magnitude; all grey when every value is 0)."""
    values = np.asarray(values, np.float64)
    scale = float(np.abs(values).max()) if values.size else 0.0
    t = values / scale if scale > 0 else np.zeros_like(values)
    grey, red, blue = np.array([110.0, 110.0, 110.0]), np.array([220.0, 50.0, 40.0]), np.array([50.0, 110.0, 230.0])
    colours = np.where(t[:, None] >= 0, grey + t[:, None] * (red - grey), grey - t[:, None] * (blue - grey))
    return np.rint(colours).astype(np.uint8)


def ring_of_states(
    successor_indices: np.ndarray, successor_probs: np.ndarray, state_rewards: np.ndarray, state: int, side: int = 128
) -> np.ndarray:
    """A tabular task as a ring of its ``S`` states, ``(side, side, 3)`` uint8.

    Each state is a disc on a circle (state 0 at the top, then clockwise), coloured by its reward
    (:func:`diverging_colour`: red positive, blue negative); the agent's state is ringed in white;
    a line joins it to each state it can reach in one step, as opaque as the probability of going
    there under a uniformly random action (relative to the likeliest).

    Args:
        successor_indices, successor_probs: ``(S, A, K)`` the model's successor form.
        state_rewards: ``(S,)`` the reward of each state (a state-action reward averaged over actions).
        state: the agent's state.
        side: the image's width and height in pixels.
    """
    n_states = int(successor_indices.shape[0])
    image = canvas(side, side)
    centre = (side - 1) / 2.0
    radius = side / 2.0 - side / 10.0 - 2.0  # room for the largest disc and its ring
    node = float(np.clip(0.8 * np.pi * radius / max(n_states, 1), 1.5, side / 14.0))
    angles = 2.0 * np.pi * np.arange(n_states) / max(n_states, 1)
    ys, xs = centre - radius * np.cos(angles), centre + radius * np.sin(angles)
    reach = np.zeros(n_states)
    np.add.at(reach, successor_indices[state].ravel(), successor_probs[state].ravel() / successor_probs.shape[1])
    reach[state] = 0.0  # staying put needs no line
    if reach.max() > 0:
        for target in np.flatnonzero(reach > 0):
            draw_line(image, ys[state], xs[state], ys[target], xs[target], HIGHLIGHT, 0.15 + 0.85 * reach[target] / reach.max())
    colours = diverging_colour(state_rewards)
    fill_disc(image, ys[state], xs[state], node + max(1.5, node / 3.0), AGENT)
    for s in range(n_states):
        fill_disc(image, ys[s], xs[s], node, colours[s])
    return image


def arm_bars(means: np.ndarray, last_arm: "int | None", low: float, high: float, height: int = 64) -> np.ndarray:
    """A bandit's arms as bars of their means, ``(height, width, 3)`` uint8.

    Bars rise from the value 0 (a thin line) towards ``high`` or fall towards ``low``; the arm pulled
    last is amber, the others grey. Each bar is ``clip(160 // K, 2, 24)`` pixels wide with 1-pixel gaps.

    Args:
        means: ``(K,)`` the arm means.
        last_arm: the arm of the last pull (``None`` before the first pull).
        low, high: the value range of the picture (``low <= 0 <= high``, ``low < high``).
        height: the image height in pixels.
    """
    means = np.asarray(means, np.float64)
    n_arms = int(means.shape[0])
    bar = int(np.clip(160 // max(n_arms, 1), 2, 24))
    margin = 3
    image = canvas(height, n_arms * (bar + 1) + 1)
    top, bottom = margin, height - margin
    scale = (bottom - top) / (high - low)
    zero = bottom - (0.0 - low) * scale
    for k, mean in enumerate(means):
        end = bottom - (float(np.clip(mean, low, high)) - low) * scale
        x0 = 1 + k * (bar + 1)
        colour = HIGHLIGHT if last_arm == k else (150, 150, 150)
        fill_rect(image, int(round(min(zero, end))), x0, int(round(max(zero, end))) + 1, x0 + bar, colour)
    fill_rect(image, int(round(zero)), 0, int(round(zero)) + 1, image.shape[1], (90, 90, 90))
    return image
