"""TinyNAS stage 2's weight-sharing supernet over one stage-1 search space (nas.mcunet.SearchSpace).

    net = Supernet(SearchSpace(width=0.3, resolution=64, classes=10))
    net.set_active(arch)            # an nas.mcunet.Arch: depths, and per block slot a kernel and expand ratio
    y = net(x)                      # NCHW images (NCL signals), the active subnet's logits
    sub = net.extract(arch)         # a standalone nn.Module of plain layers: from_torch captures it
    net.sort_channels()             # expanded channels by importance, so that every expand ratio keeps the best

The supernet holds every block slot at its largest setting; a subnet takes part of it, as once-for-all does:
- elastic depth: a stage runs its first `depth` blocks;
- elastic expand ratio: a block's expanded channels are the first `in_channels * expand` of the largest
  (sort_channels puts the most important first: the L1 norm of their projection weights);
- elastic kernel: the depthwise kernel of size k is the centre of the next larger one, passed through a
  learned k*k x k*k transform (identity at the start): 7 -> 5 -> 3, per block;
- batch norm: one set of statistics per block, sliced with the channels; before scoring a subnet its
  statistics are recalibrated (`recalibrate_bn`), as the statistics of the largest net do not fit it.
The stem and the first block (expand ratio 1, kernel 3) are fixed, as in MCUNet's space; the classifier
is shared. `extract` copies the active weights into ordinary Conv/BatchNorm/ReLU6 layers, whose output
equals the supernet's (in eval mode) and whose shapes are those of `space.network(arch)`, the spec the
stage-1 oracles and `to_graph` take.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .mcunet import (EXPANDS, FIRST_CHANNELS, KERNELS, LAST_DEPTH, MAX_DEPTH, STAGES, STEM_CHANNELS, Arch,
                     SearchSpace)
from .space import NetworkSpec

MAX_KERNEL, MAX_EXPAND = max(KERNELS), max(EXPANDS)
BN_EPS = 1e-5


def _layers(signal: bool):
    """(Conv, BatchNorm, conv function, adaptive pool) for 1-D signals or 2-D images."""
    if signal:
        return nn.Conv1d, nn.BatchNorm1d, F.conv1d, nn.AdaptiveAvgPool1d
    return nn.Conv2d, nn.BatchNorm2d, F.conv2d, nn.AdaptiveAvgPool2d


def _bn(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm, n: int) -> torch.Tensor:
    """Batch norm over the first `n` channels of `bn` (its running statistics updated in place)."""
    mean = bn.running_mean[:n] if bn.running_mean is not None else None
    var = bn.running_var[:n] if bn.running_var is not None else None
    factor = 0.0
    if bn.training and mean is not None:  # as nn.BatchNorm: momentum None is a cumulative average
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return F.batch_norm(x, mean, var, bn.weight[:n], bn.bias[:n], bn.training or mean is None, factor, bn.eps)


def _copy_bn(dst: nn.modules.batchnorm._BatchNorm, src: nn.modules.batchnorm._BatchNorm, n: int) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight[:n])
        dst.bias.copy_(src.bias[:n])
        dst.running_mean.copy_(src.running_mean[:n])
        dst.running_var.copy_(src.running_var[:n])
        dst.num_batches_tracked.copy_(src.num_batches_tracked)


class ConvBN(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> optional ReLU6: the plain layers a subnet is made of."""

    def __init__(self, signal: bool, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 relu: bool = True) -> None:
        conv, bn, _, _ = _layers(signal)
        layers: list[nn.Module] = [conv(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                                   bn(cout, eps=BN_EPS)]
        if relu:
            layers.append(nn.ReLU6())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """A plain MobileNetV2 block (what extract builds): [expand 1x1] -> depthwise k -> project 1x1, plus the
    input when the shapes allow."""

    def __init__(self, signal: bool, cin: int, cout: int, kernel: int, expand: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(signal, cin, mid, 1) if expand != 1 else None
        self.depthwise = ConvBN(signal, mid, mid, kernel, stride, groups=mid)
        self.project = ConvBN(signal, mid, cout, 1, relu=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class ElasticBlock(nn.Module):
    """One block slot at its largest (kernel 7, expand ratio 6); forward(x, kernel, expand) runs a part."""

    def __init__(self, signal: bool, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        conv, bn, self._conv, _ = _layers(signal)
        self.signal, self.cin, self.cout, self.stride = signal, cin, cout, stride
        mid = cin * MAX_EXPAND
        self.expand_conv = conv(cin, mid, 1, bias=False)
        self.expand_bn = bn(mid, eps=BN_EPS)
        shape = (mid, 1, MAX_KERNEL) if signal else (mid, 1, MAX_KERNEL, MAX_KERNEL)
        self.depthwise = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_normal_(self.depthwise, mode="fan_out")
        self.depthwise_bn = bn(mid, eps=BN_EPS)
        # the transform from the centre of the next larger kernel to kernel k, on the flattened taps
        self.transforms = nn.ParameterDict({str(k): nn.Parameter(torch.eye(self._taps(k)))
                                            for k in sorted(KERNELS)[:-1]})
        self.project_conv = conv(mid, cout, 1, bias=False)
        self.project_bn = bn(cout, eps=BN_EPS)

    def _taps(self, k: int) -> int:
        return k if self.signal else k * k

    def kernel_weight(self, k: int, channels: int) -> torch.Tensor:
        """The depthwise weights of kernel size k for the first `channels` channels."""
        w = self.depthwise[:channels]
        size = MAX_KERNEL
        for smaller in sorted(KERNELS, reverse=True)[1:]:
            if size == k:
                break
            lo = (size - smaller) // 2
            centre = w[..., lo:lo + smaller] if self.signal else w[..., lo:lo + smaller, lo:lo + smaller]
            flat = centre.reshape(channels, self._taps(smaller)) @ self.transforms[str(smaller)]
            w = flat.reshape(centre.shape)
            size = smaller
        return w

    def forward(self, x: torch.Tensor, kernel: int, expand: int) -> torch.Tensor:
        n = self.cin * expand
        y = F.relu6(_bn(self._conv(x, self.expand_conv.weight[:n]), self.expand_bn, n))
        y = self._conv(y, self.kernel_weight(kernel, n), None, self.stride, kernel // 2, 1, n)
        y = F.relu6(_bn(y, self.depthwise_bn, n))
        y = _bn(self._conv(y, self.project_conv.weight[:, :n]), self.project_bn, self.cout)
        return x + y if self.stride == 1 and self.cin == self.cout else y

    def extract(self, kernel: int, expand: int) -> InvertedResidual:
        n = self.cin * expand
        block = InvertedResidual(self.signal, self.cin, self.cout, kernel, expand, self.stride)
        with torch.no_grad():
            block.expand[0].weight.copy_(self.expand_conv.weight[:n])
            _copy_bn(block.expand[1], self.expand_bn, n)
            block.depthwise[0].weight.copy_(self.kernel_weight(kernel, n))
            _copy_bn(block.depthwise[1], self.depthwise_bn, n)
            block.project[0].weight.copy_(self.project_conv.weight[:, :n])
            _copy_bn(block.project[1], self.project_bn, self.cout)
        return block

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Orders the expanded channels by importance (L1 norm of their projection weights), largest first;
        the optimizer's per-parameter state (momentum) is permuted with them, so training can go on."""
        with torch.no_grad():
            importance = self.project_conv.weight.abs().flatten(2).sum(dim=(0, 2))
            order = torch.argsort(importance, descending=True)
            along = [(self.project_conv.weight, 1), (self.expand_conv.weight, 0), (self.depthwise, 0)]
            along += [(t, 0) for bn in (self.expand_bn, self.depthwise_bn) for t in (bn.weight, bn.bias)]
            for bn in (self.expand_bn, self.depthwise_bn):
                for t in (bn.running_mean, bn.running_var):
                    t.copy_(t[order])
            for param, dim in along:
                tensors = [param]
                if optimizer is not None:
                    tensors += [v for v in optimizer.state.get(param, {}).values()
                                if isinstance(v, torch.Tensor) and v.shape == param.shape]
                for t in tensors:
                    t.copy_(t.index_select(dim, order))


class Subnet(nn.Module):
    """A standalone network extracted from the supernet: plain layers only."""

    def __init__(self, stem: nn.Module, blocks: Iterable[nn.Module], head: nn.Module | None, pool: nn.Module,
                 classifier: nn.Linear) -> None:
        super().__init__()
        self.stem, self.blocks, self.head, self.pool, self.classifier = stem, nn.Sequential(*blocks), head, pool, \
            classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(self.stem(x))
        if self.head is not None:
            y = self.head(y)
        return self.classifier(torch.flatten(self.pool(y), 1))


class Supernet(nn.Module):
    """Every network of `space` in one set of weights (see the module docstring)."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        signal = space.signal
        _, _, _, pool = _layers(signal)
        stem = space.channels_of(STEM_CHANNELS)
        first = space.channels_of(FIRST_CHANNELS)
        self.stem = ConvBN(signal, space.channels, stem, 3, 2)
        self.first = InvertedResidual(signal, stem, first, 3, 1, 1)
        self.stages = nn.ModuleList()
        cin = first
        for s, (base, stride) in enumerate(STAGES):
            cout = space.channels_of(base)
            depth = LAST_DEPTH if s == len(STAGES) - 1 else MAX_DEPTH
            self.stages.append(nn.ModuleList(ElasticBlock(signal, cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                             for i in range(depth)))
            cin = cout
        self.head = ConvBN(signal, cin, space.feature_mix, 1) if space.feature_mix else None
        self.pool = pool(1)
        self.classifier = nn.Linear(space.feature_mix or cin, space.classes)
        self.active = space.largest()

    def set_active(self, arch: Arch) -> None:
        self.active = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(self.stem(x))
        for s, blocks in enumerate(self.stages):
            for i in range(self.active.depths[s]):
                slot = s * MAX_DEPTH + i
                y = blocks[i](y, self.active.kernels[slot], self.active.expands[slot])
        if self.head is not None:
            y = self.head(y)
        return self.classifier(torch.flatten(self.pool(y), 1))

    def extract(self, arch: Arch | None = None) -> Subnet:
        """The subnet `arch` (default: the active one) as a standalone module with its current weights."""
        import copy

        arch = arch or self.active
        blocks: list[nn.Module] = [copy.deepcopy(self.first)]
        for s, stage in enumerate(self.stages):
            for i in range(arch.depths[s]):
                slot = s * MAX_DEPTH + i
                blocks.append(stage[i].extract(arch.kernels[slot], arch.expands[slot]))
        sub = Subnet(copy.deepcopy(self.stem), blocks, copy.deepcopy(self.head), copy.deepcopy(self.pool),
                     copy.deepcopy(self.classifier))
        return sub.train(self.training)

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        for stage in self.stages:
            for block in stage:
                block.sort_channels(optimizer)


def build_network(spec: NetworkSpec) -> Subnet:
    """A freshly initialised network of plain layers with the shapes of `spec` (any NetworkSpec, e.g. the
    S-MbV2 baselines): the same modules `Supernet.extract` builds."""
    signal = spec.signal
    conv, _, _, avg = _layers(signal)
    stem = ConvBN(signal, spec.image_channels, spec.stem_channels, 3, 2)
    blocks: list[nn.Module] = []
    cin = spec.stem_channels
    for block in spec.blocks():
        blocks.append(InvertedResidual(signal, cin, block.channels, block.kernel, block.expand, block.stride))
        cin = block.channels
    head = ConvBN(signal, cin, spec.head_channels, 1) if spec.head_channels else None
    pool = avg(1) if spec.pool == "avg" else (nn.AdaptiveMaxPool1d(1) if signal else nn.AdaptiveMaxPool2d(1))
    net = Subnet(stem, blocks, head, pool, nn.Linear(spec.head_channels or cin, spec.classes))
    for m in net.modules():
        if isinstance(m, conv):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
    return net


def recalibrate_bn(net: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Replaces every batch norm's running statistics by those of the active subnet on `batches` (a
    cumulative average over them), as once-for-all does before scoring a subnet."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = {m: m.momentum for m in norms}
    was_training = net.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative moving average: every batch counts the same
    net.train()
    try:
        with torch.no_grad():
            for x in batches:
                net(x)
    finally:
        for m, momentum in saved.items():
            m.momentum = momentum
        net.train(was_training)


__all__ = ["ElasticBlock", "InvertedResidual", "Subnet", "Supernet", "build_network", "recalibrate_bn"]
