"""Round trip of torchvision's weights through crunet, checked against PyTorch (when torch is installed):

  1. torchvision's model (random weights, BN statistics made non-trivial), its state dict saved as safetensors
  2. crunet loads it into its model of the same name (loadStateDict, strict) and runs a fixed batch
     (bench/torch-roundtrip.ts): its logits are compared with torch's
  3. crunet's exported state dict is loaded back into a fresh torchvision model with strict=True: every
     tensor must be identical
  4. crunet's ONNX export is run by onnxruntime (Python) and compared with torch's logits

Run from the repository root:  ~/.cache/crunet/torch-venv/bin/python bench/torch-roundtrip.py [resnet50 resnext50_32x4d ...]
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import torchvision
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 1 + 0.2 * torch.randn(c, generator=gen)
            m.bias.data = 0.1 * torch.randn(c, generator=gen)
            m.running_mean.data = 0.1 * torch.randn(c, generator=gen)
            m.running_var.data = 0.5 + torch.rand(c, generator=gen)
            m.num_batches_tracked.fill_(1000)


def check(name, batch=2):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    randomize_bn(model, gen)
    x = torch.randn((batch, 3, 224, 224), generator=gen)
    with torch.no_grad():
        want = model(x)
    with tempfile.TemporaryDirectory(prefix='crunet-torch-') as d:
        save_file(model.state_dict(), os.path.join(d, 'state_dict.safetensors'))
        save_file({'input': x}, os.path.join(d, 'input.safetensors'))
        r = subprocess.run(['npx', 'tsx', 'bench/torch-roundtrip.ts', name, d], cwd=ROOT, check=True, capture_output=True, text=True)
        info = json.loads(r.stdout.strip().splitlines()[-1])
        got = load_file(os.path.join(d, 'crunet_logits.safetensors'))['logits']
        scale = want.abs().max().item()
        diff = (got - want).abs().max().item()

        fresh = getattr(torchvision.models, name)(weights=None)
        result = fresh.load_state_dict(load_file(os.path.join(d, 'crunet_state_dict.safetensors')), strict=True)
        sd, back = model.state_dict(), fresh.state_dict()
        identical = all(torch.equal(sd[k], back[k]) for k in sd if not k.endswith('num_batches_tracked'))

        import onnxruntime as ort
        sess = ort.InferenceSession(os.path.join(d, 'crunet.onnx'), providers=['CPUExecutionProvider'])
        onnx_out = torch.from_numpy(sess.run(None, {'images': x.numpy()})[0])
        onnx_diff = (onnx_out - want).abs().max().item()
    out = {
        'model': name, 'params_loaded': info['loaded'], 'logit_scale': round(scale, 4),
        'max_abs_diff_crunet_vs_torch': diff, 'max_abs_diff_onnxruntime_vs_torch': onnx_diff,
        'torch_strict_load': str(result), 'tensors_identical_after_round_trip': identical,
        'top1_agree': bool((got.argmax(1) == want.argmax(1)).all()),
        'torch': torch.__version__, 'torchvision': torchvision.__version__,
    }
    print(json.dumps(out))
    ok = identical and diff <= 1e-4 * max(1.0, scale) and onnx_diff <= 1e-4 * max(1.0, scale)
    return ok


if __name__ == '__main__':
    names = sys.argv[1:] or ['resnet50', 'resnext50_32x4d']
    sys.exit(0 if all([check(n) for n in names]) else 1)
