"""The built-in example network: a tiny MobileNet-style int8 classifier made by our own builder."""
from __future__ import annotations

from ..ir import Graph
from .builder import GraphBuilder


def _separable(b: GraphBuilder, x: str, out_channels: int, stride: int = 1) -> str:
    """Depthwise 3x3 (+RELU6) then pointwise 1x1 (+RELU6): MobileNetV1's block."""
    x = b.depthwise_conv2d(x, kernel=3, stride=stride, padding="same", activation="RELU6")
    return b.conv2d(x, out_channels, kernel=1, activation="RELU6")


def _inverted_residual(b: GraphBuilder, x: str, expansion: int = 2) -> str:
    """MobileNetV2's block at stride 1: expand 1x1, depthwise 3x3, linear project 1x1, ADD the input."""
    channels = b.shape(x)[-1]
    y = b.conv2d(x, channels * expansion, kernel=1, activation="RELU6")
    y = b.depthwise_conv2d(y, kernel=3, padding="same", activation="RELU6")
    y = b.conv2d(y, channels, kernel=1, activation="NONE")
    return b.add(x, y)


def tiny_mobilenet(seed: int = 0, input_size: int = 64, num_classes: int = 10) -> Graph:
    """1x64x64x3 int8 image -> 10 int8 class probabilities (softmax); 15 ops, about 10k parameters."""
    b = GraphBuilder(seed=seed)
    x = b.input((1, input_size, input_size, 3), scale=1 / 128, zero_point=0)
    x = b.conv2d(x, 16, kernel=3, stride=2, padding="same", activation="RELU6")  # 32x32x16
    x = _separable(b, x, 24)                                                      # 32x32x24
    x = _separable(b, x, 32, stride=2)                                            # 16x16x32
    x = _inverted_residual(b, x)                                                  # 16x16x32
    x = _separable(b, x, 64, stride=2)                                            # 8x8x64
    size = b.shape(x)[1:3]
    x = b.avg_pool(x, filter=size, stride=size, padding="valid")                  # 1x1x64
    x = b.reshape(x, (1, b.shape(x)[-1]))
    x = b.fully_connected(x, num_classes)
    x = b.softmax(x)
    return b.build([x], name="tiny_mobilenet")
