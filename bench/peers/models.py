"""The PyTorch peer's networks, built from crunet's own graph IR (lib/graph/ir.ts) exported to JSON.

Building from the IR rather than re-typing each network guarantees the same layers, groups, strides,
padding, batch-norm momentum/eps and the same sharing: a crunet Parameter used by several nodes is ONE
nn.Parameter here, read by each of those nodes, so autograd sums its gradient over the uses exactly as
crunet does (and as the original MXNet code did). build() asserts the trainable parameter count.

The interpreter is what a hand-written nn.Module does, op for op, in the same order:
  conv2d -> F.conv2d, batchNorm -> F.batch_norm (training stats, PyTorch's momentum convention, the
  IR's eps), relu -> F.relu, maxPool / avgPool -> F.max_pool2d / F.avg_pool2d, globalAvgPool ->
  F.adaptive_avg_pool2d(.,1).flatten(1), linear -> F.linear, add -> +, softmaxCrossEntropy ->
  F.cross_entropy (mean over the batch).
It follows torchvision's memory habits so that the peer is PyTorch at its best, not a strawman:
ReLU runs in place (torchvision's ReLU(inplace=True)) and a residual add accumulates in place
(torchvision's `out += identity`) when the overwritten value has no other reader and autograd does not
need it (conv2d and batchNorm do not keep their outputs for backward; relu does, so an add never writes
into a relu output). A value is dropped after its last reader, as locals are in a hand-written forward.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = ('conv2d', 'batchNorm', 'relu', 'maxPool', 'avgPool', 'globalAvgPool', 'linear', 'add', 'softmaxCrossEntropy')


def _key(name: str) -> str:
    # nn.ParameterDict keys cannot contain '.'; the IR's names are PyTorch state-dict style ("layer1.0.conv1.weight").
    return name.replace('.', '__')


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (int(v), int(v))


class IRNet(nn.Module):
    """A network defined by a crunet graph IR: forward(images, labels) -> (logits, loss)."""

    def __init__(self, ir: dict, seed: int = 0):
        super().__init__()
        for n in ir['nodes']:
            if n['op'] not in OPS:
                raise ValueError(f"node {n['name']}: op {n['op']!r} is not one of {', '.join(OPS)}")
        self.ir = ir
        self.weights = nn.ParameterDict()
        gen = torch.Generator().manual_seed(seed)
        self.decay: dict[str, bool] = {}
        for p in ir['params']:
            t = torch.empty(p['shape'])
            init = p['init']
            if init['dist'] == 'normal':
                t.normal_(init.get('mean', 0.0), init['std'], generator=gen)
            elif init['dist'] == 'uniform':
                t.uniform_(init['low'], init['high'], generator=gen)
            else:
                t.fill_(init['value'])
            if p['trainable']:
                self.weights[_key(p['name'])] = nn.Parameter(t)
                self.decay[p['name']] = bool(p['weightDecay'])
            else:
                self.register_buffer(_key(p['name']), t)
        self.input_names = [i['name'] for i in ir['inputs']]
        # Readers of every value, to drop it after its last use and to know when in-place is safe.
        self.readers: dict[str, int] = {}
        last: dict[str, int] = {}
        for idx, n in enumerate(ir['nodes']):
            for v in n['inputs']:
                self.readers[v] = self.readers.get(v, 0) + 1
                last[v] = idx
        keep = set(ir['outputs']) | ({ir['loss']} if ir.get('loss') else set())
        self.drop_after = [[v for v in n['inputs'] if last[v] == idx and v not in keep] for idx, n in enumerate(ir['nodes'])]
        self.producer = {n['name']: n['op'] for n in ir['nodes']}

    def param(self, name: str) -> torch.Tensor:
        k = _key(name)
        return self.weights[k] if k in self.weights else getattr(self, k)

    def param_groups(self, weight_decay: float):
        """Two SGD groups: the IR's weightDecay flag decides (off for batch norm and biases), as crunet does."""
        decay = [self.weights[_key(n)] for n, d in self.decay.items() if d]
        plain = [self.weights[_key(n)] for n, d in self.decay.items() if not d]
        return [{'params': decay, 'weight_decay': weight_decay}, {'params': plain, 'weight_decay': 0.0}]

    def load_flat(self, flat: torch.Tensor) -> None:
        """Sets every parameter and buffer, in the IR's order, from one flat float32 tensor (crunet's values)."""
        off = 0
        with torch.no_grad():
            for p in self.ir['params']:
                t = self.param(p['name'])
                n = t.numel()
                t.copy_(flat[off:off + n].view(p['shape']))
                off += n
        if off != flat.numel():
            raise ValueError(f'load_flat: expected {off} floats, received {flat.numel()}')

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.weights.values())

    def _inplace_ok(self, v: str) -> bool:
        # Only a value read once (by this node), not a graph input, and not saved by its producer's backward.
        return self.readers.get(v, 0) == 1 and self.producer.get(v) in ('conv2d', 'batchNorm', 'add', 'linear')

    def forward(self, *feeds: torch.Tensor):
        vals: dict[str, torch.Tensor] = dict(zip(self.input_names, feeds))
        loss = None
        for idx, n in enumerate(self.ir['nodes']):
            op, a, ins = n['op'], n['attrs'], [vals[v] for v in n['inputs']]
            ps = [self.param(p) for p in n['params']]
            if op == 'conv2d':
                y = F.conv2d(ins[0], ps[0], ps[1] if len(ps) > 1 else None, _pair(a['stride']), _pair(a['padding']), 1, int(a['groups']))
            elif op == 'batchNorm':
                y = F.batch_norm(ins[0], ps[2], ps[3], ps[0], ps[1], self.training, float(a['momentum']), float(a['eps']))
            elif op == 'relu':
                y = F.relu(ins[0], inplace=self._inplace_ok(n['inputs'][0]))
            elif op == 'maxPool':
                y = F.max_pool2d(ins[0], _pair(a['kernel']), _pair(a['stride']), _pair(a['padding']))
            elif op == 'avgPool':
                y = F.avg_pool2d(ins[0], _pair(a['kernel']), _pair(a['stride']), _pair(a['padding']),
                                 count_include_pad=bool(a.get('countIncludePad', True)))
            elif op == 'globalAvgPool':
                y = F.adaptive_avg_pool2d(ins[0], 1).flatten(1)
            elif op == 'linear':
                y = F.linear(ins[0], ps[0], ps[1] if len(ps) > 1 else None)
            elif op == 'add':
                if self._inplace_ok(n['inputs'][0]):
                    y = ins[0].add_(ins[1])
                elif self._inplace_ok(n['inputs'][1]):
                    y = ins[1].add_(ins[0])
                else:
                    y = ins[0] + ins[1]
            else:  # softmaxCrossEntropy
                y = F.cross_entropy(ins[0], ins[1].long())
            vals[n['name']] = y
            if n['name'] == self.ir.get('loss'):
                loss = y
            for v in self.drop_after[idx]:
                del vals[v]
            del ins, ps
        return vals[self.ir['outputs'][0]], loss


def build(ir: dict, expect_params: int | None = None, seed: int = 0) -> IRNet:
    """The network of a crunet graph IR; raises when its trainable parameter count differs from crunet's."""
    net = IRNet(ir, seed)
    count = net.parameter_count()
    if expect_params is not None and count != expect_params:
        raise AssertionError(f'PyTorch network has {count:,} trainable parameters, crunet has {expect_params:,}')
    return net


__all__ = ['IRNet', 'build']
