"""PyTorch peer of crunet's benchmarks: a long-lived process driven by bench/ over JSON lines.

bench/lib/peer.ts starts it, then sends one JSON object per line on stdin and reads one per line on
stdout, so that crunet (in the Node process) and PyTorch (here) take turns, step by step, in the same
invocation. Usage: python pytorch_peer.py --device cpu --threads 2 --format channels_last [--amp bf16|fp16]
(--amp: torch.autocast with that dtype around forward and loss, fp32 master weights; fp16 adds a
GradScaler with dynamic loss scaling, as PyTorch's AMP recipe.)

First line out: {"ready": true, "info": {...}} or {"ready": false, "error": "..."} (e.g. torch missing).
Commands (field "cmd"; every reply carries "ok", and "error" when ok is false):
  build   {ir, images, labels, batch, expectParams, seed, optimizer}  the network of a crunet graph IR
          (JSON file), the same input batch (raw float32 NCHW / int32 files written by the bench); resets
          the memory high-water mark first
  steps   {n}           n timed training steps: [{"ms", "loss"}]
  memory  {}            peak bytes since build: CPU = VmHWM - VmRSS at build (Linux /proc/self/status,
                        after clear_refs reset the high-water mark); CUDA = torch.cuda.max_memory_allocated
  profile {}            one step under torch.profiler: self time by aten op, for "where the time goes"
  gemm    {n, reps}     torch.mm of two n x n float32 matrices: ms per call
  copy    {mib, reps}   tensor copy (clone) bandwidth
  op_prepare {op, shape, attrs}  one layer for the per-op suite (conv2d | batchNorm | relu | batchNormRelu)
  op_rep  {}            one repetition: forward, then backward parts, each timed: {"fwd", "bwdData", "bwdWeights"} ms
  release {}            drop the network / op state
  quit    {}
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def send(obj) -> None:
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}')


def reset_hwm() -> bool:
    # Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS.
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class Peer:
    def __init__(self, torch, device: str, fmt: str, amp: str = 'none'):
        self.torch = torch
        self.dev = torch.device(device)
        self.amp = None if amp == 'none' else {'bf16': torch.bfloat16, 'fp16': torch.float16}[amp]
        self.scaler = torch.amp.GradScaler(self.dev.type) if amp == 'fp16' else None
        self.fmt = torch.channels_last if fmt == 'channels_last' else torch.contiguous_format
        self.fmt_name = fmt
        self.net = None
        self.op = None

    def sync(self):
        if self.dev.type == 'cuda':
            self.torch.cuda.synchronize(self.dev)

    # ---- whole network -------------------------------------------------------------------------------
    def build(self, ir, images, labels, batch, expectParams=None, seed=0, optimizer=None, **_):
        torch = self.torch
        import models
        self.release()
        hwm_reset = reset_hwm()
        self.rss0 = status_kib('VmRSS') * 1024
        if self.dev.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.dev)
        with open(ir) as f:
            graph = json.load(f)
        t0 = time.perf_counter()
        net = models.build(graph, expectParams, seed).to(self.dev)
        if self.fmt == torch.channels_last:
            net = net.to(memory_format=torch.channels_last)
        shape = [batch] + graph['inputs'][0]['shape']
        with open(images, 'rb') as f:
            x = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(shape)
        with open(labels, 'rb') as f:
            y = torch.frombuffer(bytearray(f.read()), dtype=torch.int32).long()
        o = optimizer or {}
        self.opt = torch.optim.SGD(net.param_groups(o.get('weightDecay', 0.0)), lr=o.get('lr', 0.01),
                                   momentum=o.get('momentum', 0.0), nesterov=o.get('nesterov', False))
        # The batch stays in host memory as crunet's does; on a GPU each step copies it in, as crunet's step does.
        self.host_x, self.host_y = x, y
        self.net = net
        return {'params': net.parameter_count(), 'buildMs': (time.perf_counter() - t0) * 1000,
                'format': self.fmt_name, 'hwmReset': hwm_reset}

    def load_params(self, path, **_):
        """crunet's initial values (every parameter and buffer, IR order, raw float32), so both start alike."""
        torch = self.torch
        with open(path, 'rb') as f:
            flat = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
        self.net.load_flat(flat.to(self.dev))
        return {}

    def forward(self, n=2, **_):
        """Inference logits (running statistics) of the first n samples, to check the network against crunet's."""
        torch = self.torch
        self.net.eval()
        with torch.no_grad():
            x = self.host_x[:n].to(self.dev)
            logits, _ = self.net(x, self.host_y[:n].to(self.dev))
        self.net.train()
        return {'logits': logits.float().cpu().flatten().tolist()}

    def _step(self):
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        x = self.host_x.to(self.dev, non_blocking=False)
        y = self.host_y.to(self.dev, non_blocking=False)
        if self.amp is None:
            logits, loss = self.net(x, y)
        else:
            with torch.autocast(device_type=self.dev.type, dtype=self.amp):
                logits, loss = self.net(x, y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        correct = (logits.argmax(1) == y).sum()
        return loss.item(), int(correct.item())

    def steps(self, n=1, **_):
        out = []
        for _ in range(int(n)):
            self.sync()
            t0 = time.perf_counter()
            loss, correct = self._step()
            self.sync()
            out.append({'ms': (time.perf_counter() - t0) * 1000, 'loss': loss, 'correct': correct})
        return {'steps': out}

    def memory(self, **_):
        if self.dev.type == 'cuda':
            return {'peakBytes': int(self.torch.cuda.max_memory_allocated(self.dev)),
                    'how': 'torch.cuda.max_memory_allocated since build'}
        hwm = status_kib('VmHWM') * 1024
        return {'peakBytes': hwm - self.rss0, 'hwmBytes': hwm, 'baselineBytes': self.rss0,
                'how': 'VmHWM - VmRSS at build (/proc/self/status; clear_refs reset the high-water mark)'}

    def profile(self, **_):
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.dev.type == 'cuda' else [])
        with profile(activities=acts) as prof:
            self._step()
            self.sync()
        rows = []
        for e in prof.key_averages():
            self_us = e.self_cpu_time_total if self.dev.type != 'cuda' else getattr(e, 'self_device_time_total', 0)
            if self_us > 0:
                rows.append({'name': e.key, 'selfMs': self_us / 1000, 'calls': e.count})
        rows.sort(key=lambda r: -r['selfMs'])
        return {'ops': rows[:40], 'totalSelfMs': sum(r['selfMs'] for r in rows)}

    def release(self, **_):
        self.net = self.op = None
        self.opt = None
        self.host_x = self.host_y = None
        gc.collect()
        return {}

    # ---- machine peaks -------------------------------------------------------------------------------
    def gemm(self, n=2048, reps=10, **_):
        torch = self.torch
        a = torch.randn(n, n, device=self.dev)
        b = torch.randn(n, n, device=self.dev)
        c = torch.mm(a, b)
        ms = []
        for _ in range(int(reps)):
            self.sync()
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            self.sync()
            ms.append((time.perf_counter() - t0) * 1000)
        return {'ms': ms, 'flop': 2.0 * n ** 3}

    def copy(self, mib=256, reps=10, **_):
        torch = self.torch
        a = torch.ones(int(mib) * 2 ** 18, device=self.dev)
        b = torch.empty_like(a)
        ms = []
        for _ in range(int(reps)):
            self.sync()
            t0 = time.perf_counter()
            b.copy_(a)
            self.sync()
            ms.append((time.perf_counter() - t0) * 1000)
        return {'ms': ms, 'bytes': 2 * a.numel() * 4}

    # ---- one layer -----------------------------------------------------------------------------------
    def op_prepare(self, op, shape, attrs=None, **_):
        torch, F = self.torch, self.torch.nn.functional
        a = attrs or {}
        g = torch.Generator(device='cpu').manual_seed(0)
        fmt = self.fmt if len(shape) == 4 else torch.contiguous_format
        x = torch.randn(shape, generator=g).to(self.dev).contiguous(memory_format=fmt).requires_grad_(True)
        st = {'op': op, 'x': x}
        if op == 'conv2d':
            c, o, grp = shape[1], int(a['outChannels']), int(a['groups'])
            k, s, p = tuple(a['kernel']), tuple(a['stride']), tuple(a['padding'])
            w = torch.randn((o, c // grp) + k, generator=g).mul_(0.05).to(self.dev)
            w = w.contiguous(memory_format=fmt).requires_grad_(True)
            st['w'] = w
            st['f'] = lambda: F.conv2d(x, w, None, s, p, 1, grp)
        elif op in ('batchNorm', 'batchNormRelu'):
            c = shape[1]
            w = torch.ones(c, device=self.dev, requires_grad=True)
            b = torch.zeros(c, device=self.dev, requires_grad=True)
            rm, rv = torch.zeros(c, device=self.dev), torch.ones(c, device=self.dev)
            eps, mom, relu = float(a.get('eps', 1e-5)), float(a.get('momentum', 0.1)), op == 'batchNormRelu'
            st['params'] = [w, b]

            def f():
                y = F.batch_norm(x, rm, rv, w, b, True, mom, eps)
                return F.relu(y, inplace=True) if relu else y
            st['f'] = f
        elif op == 'relu':
            st['f'] = lambda: F.relu(x)
        else:
            raise ValueError(f'op_prepare: unknown op {op!r}; valid: conv2d, batchNorm, relu, batchNormRelu')
        y = st['f']()
        st['gy'] = torch.randn(y.shape, generator=g).to(self.dev).contiguous(memory_format=fmt)
        self.op = st
        return {'outShape': list(y.shape), 'format': self.fmt_name}

    def op_rep(self, **_):
        torch, st = self.torch, self.op
        if st is None:
            raise RuntimeError('op_rep before op_prepare')
        grad = torch.autograd.grad
        t = time.perf_counter
        self.sync()
        t0 = t()
        y = st['f']()
        self.sync()
        t1 = t()
        if st['op'] == 'conv2d':
            # autograd computes only the inputs asked for (ConvolutionBackward's output mask), so these time
            # backward-data and backward-weights separately, as crunet's per-op suite does.
            grad(y, [st['x']], st['gy'], retain_graph=True)
            self.sync()
            t2 = t()
            grad(y, [st['w']], st['gy'])
            self.sync()
            t3 = t()
            return {'fwd': (t1 - t0) * 1000, 'bwdData': (t2 - t1) * 1000, 'bwdWeights': (t3 - t2) * 1000}
        grad(y, [st['x']] + st.get('params', []), st['gy'])
        self.sync()
        t2 = t()
        return {'fwd': (t1 - t0) * 1000, 'bwd': (t2 - t1) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--format', default='channels_last', choices=['channels_last', 'contiguous'])
    ap.add_argument('--amp', default='none', choices=['none', 'bf16', 'fp16'])
    ap.add_argument('--cudnn-benchmark', type=int, default=1, choices=[0, 1])
    args = ap.parse_args()
    try:
        import warnings
        warnings.filterwarnings('ignore')
        import torch
    except Exception as e:  # torch missing or broken: say so and stop; the crunet side still runs
        send({'ready': False, 'error': f'{type(e).__name__}: {e}'})
        return
    try:
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        if args.device.startswith('cuda'):
            if not torch.cuda.is_available():
                raise RuntimeError('torch.cuda.is_available() is False')
            torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
        peer = Peer(torch, args.device, args.format, args.amp)
        info = {
            'torch': torch.__version__,
            'python': sys.version.split()[0],
            'threads': torch.get_num_threads(),
            'mkldnn': bool(torch.backends.mkldnn.is_available()),
            'mkldnnVersion': next((l.split('MKL-DNN')[1].strip() for l in torch.__config__.show().splitlines() if 'MKL-DNN' in l), None),
            'blas': next((l.strip(' -') for l in torch.__config__.show().splitlines() if 'Math Kernel' in l or 'OpenBLAS' in l), None),
            'cpuCapability': torch.backends.cpu.get_cpu_capability(),
            'format': args.format,
            'device': args.device,
            'amp': args.amp,
        }
        if args.device.startswith('cuda'):
            info['gpu'] = torch.cuda.get_device_name(peer.dev)
            info['cudnn'] = torch.backends.cudnn.version()
            info['cudnnBenchmark'] = torch.backends.cudnn.benchmark
    except Exception as e:
        send({'ready': False, 'error': f'{type(e).__name__}: {e}'})
        return
    send({'ready': True, 'info': info})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            cmd = req.pop('cmd')
            if cmd == 'quit':
                send({'ok': True})
                break
            if cmd.startswith('_') or not hasattr(peer, cmd) or cmd in ('sync', 'torch', 'dev'):
                raise ValueError(f'unknown command {cmd!r}')
            out = getattr(peer, cmd)(**req)
            send({'ok': True, **out})
        except Exception as e:
            send({'ok': False, 'error': f'{type(e).__name__}: {e}', 'trace': traceback.format_exc()[-2000:]})


if __name__ == '__main__':
    main()
