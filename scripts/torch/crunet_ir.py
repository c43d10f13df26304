"""PyTorch's reading of a crunet graph IR (scripts/torch/graph-json.ts): the inference forward pass with
torch.nn.functional, each crunet op by its PyTorch counterpart, parameters taken from a state dict by
name. An independent check of crunet's conventions (weight layouts, BN in eval mode, pooling)."""
import json
import os
import subprocess

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def graph_json(model, options=None):
    """{'model': {...}, 'ir': {...}} of a crunet model, from crunet itself."""
    args = ['npx', 'tsx', 'scripts/torch/graph-json.ts', model] + ([json.dumps(options)] if options else [])
    return json.loads(subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout)


def forward(ir, sd, x):
    vals = {ir['inputs'][0]['name']: x}
    for n in ir['nodes']:
        op, a = n['op'], n['attrs']
        ins = [vals[i] for i in n['inputs'] if i in vals]
        p = [sd[k] for k in n['params']]
        if op == 'conv2d':
            y = F.conv2d(ins[0], p[0], p[1] if len(p) > 1 else None, stride=a['stride'], padding=a['padding'], groups=a['groups'])
        elif op == 'batchNorm':
            y = F.batch_norm(ins[0], p[2], p[3], p[0], p[1], training=False, eps=a['eps'])
        elif op == 'relu':
            y = F.relu(ins[0])
        elif op == 'maxPool':
            y = F.max_pool2d(ins[0], a['kernel'], a['stride'], a['padding'])
        elif op == 'avgPool':
            y = F.avg_pool2d(ins[0], a['kernel'], a['stride'], a['padding'], count_include_pad=a['countIncludePad'])
        elif op == 'globalAvgPool':
            y = ins[0].mean((2, 3))
        elif op == 'linear':
            y = F.linear(ins[0], p[0], p[1])
        elif op == 'add':
            y = ins[0] + ins[1]
        elif op == 'softmaxCrossEntropy':
            continue
        else:
            raise ValueError(f'unknown op {op}')
        vals[n['name']] = y
    return vals[ir['outputs'][0]]
