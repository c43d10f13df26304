"""Makes the PyTorch fixtures of test/io-state-dict.test.ts, once (they are committed; the test needs no torch):

  test/fixtures/torch/crunet_small-tiny.safetensors           a state dict written by safetensors.torch.save_file
                                                               for crunet_small at reduced size (OPTIONS below):
                                                               float16 tensors, int64 num_batches_tracked, as torch has them
  test/fixtures/torch/crunet_small-tiny.expected.safetensors  a fixed input and the logits PyTorch computes from it
                                                               (scripts/torch/crunet_ir.py, float32)
  test/fixtures/torch/torchvision-keys.json                   every state-dict key, shape and dtype of torchvision's
                                                               resnet50, resnet101 and resnext50_32x4d

Run from the repository root: ~/.cache/crunet/torch-venv/bin/python scripts/torch/make-fixtures.py
"""
import json
import os

import torch
import torchvision
from safetensors.torch import save_file

from crunet_ir import ROOT, forward, graph_json

OUT = os.path.join(ROOT, 'test', 'fixtures', 'torch')
MODEL = 'crunet_small'
OPTIONS = {'width': 8, 'D': 8, 'classes': 4, 'inputSize': 16}


def random_state_dict(ir, gen):
    """Weights of every kind with values far from their defaults, so that a misplaced one shows in the logits."""
    sd = {}
    for p in ir['params']:
        shape, name = p['shape'], p['name']
        if name.endswith('running_var'):
            t = 0.5 + torch.rand(shape, generator=gen)
        elif name.endswith('running_mean') or (len(shape) == 1 and name.endswith('bias')):
            t = 0.2 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:
            t = 1 + 0.3 * torch.randn(shape, generator=gen)
        else:
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            t = torch.randn(shape, generator=gen) * (2 / fan_in) ** 0.5
        sd[name] = t
    return sd


def main():
    os.makedirs(OUT, exist_ok=True)
    g = graph_json(MODEL, OPTIONS)
    ir = g['ir']
    gen = torch.Generator().manual_seed(2024)
    sd = {k: v.half() for k, v in random_state_dict(ir, gen).items()}
    for n in ir['nodes']:
        if n['op'] == 'batchNorm':
            sd[n['name'] + '.num_batches_tracked'] = torch.tensor(1234, dtype=torch.int64)
    meta = {'model': json.dumps(g['model']), 'torch': torch.__version__, 'made_by': 'scripts/torch/make-fixtures.py'}
    save_file(sd, os.path.join(OUT, f'{MODEL}-tiny.safetensors'), metadata=meta)

    c, s = ir['inputs'][0]['shape'][0], ir['inputs'][0]['shape'][1]
    x = torch.randn((2, c, s, s), generator=gen)
    with torch.no_grad():
        logits = forward(ir, {k: v.float() for k, v in sd.items()}, x)
    save_file({'input': x.contiguous(), 'logits': logits.contiguous()}, os.path.join(OUT, f'{MODEL}-tiny.expected.safetensors'), metadata=meta)
    print('logits', logits)

    keys = {'torchvision': torchvision.__version__}
    for name in ['resnet50', 'resnet101', 'resnext50_32x4d']:
        m = getattr(torchvision.models, name)(weights=None)
        keys[name] = [[k, list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in m.state_dict().items()]
    with open(os.path.join(OUT, 'torchvision-keys.json'), 'w') as f:
        json.dump(keys, f, separators=(',', ':'))
        f.write('\n')


if __name__ == '__main__':
    main()
