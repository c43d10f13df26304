// The PyTorch peer: bench/peers/pytorch_peer.py as a child process that takes one JSON command per line,
// so that crunet (here) and PyTorch (there) take turns within one invocation. Python is found via
// CRUNET_PEER_PYTHON, else ~/.cache/crunet/torch-venv/bin/python, else python3. A peer that cannot
// start (no Python, no torch, a crash) is reported with its reason and never stops the crunet side.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const PEERS = ['pytorch', 'none'] as const;
export type PeerName = (typeof PEERS)[number];
export const PEER_FORMATS = ['channels_last', 'contiguous'] as const;
export type PeerFormat = (typeof PEER_FORMATS)[number];

export interface PeerInfo {
  torch: string;
  python: string;
  threads: number;
  mkldnn: boolean;
  mkldnnVersion: string | null;
  blas: string | null;
  cpuCapability: string;
  format: PeerFormat;
  device: string;
  /** torch.autocast dtype ('none': fp32). */
  amp: 'none' | 'bf16' | 'fp16';
  gpu?: string;
  cudnn?: number;
  pythonPath: string;
}

export function peerPython(): string {
  if (process.env.CRUNET_PEER_PYTHON) return process.env.CRUNET_PEER_PYTHON;
  const venv = path.join(os.homedir(), '.cache', 'crunet', 'torch-venv', 'bin', 'python');
  return fs.existsSync(venv) ? venv : 'python3';
}

const SCRIPT = path.join(__dirname, '..', 'peers', 'pytorch_peer.py');

type Reply = { ok: boolean; error?: string; trace?: string; [k: string]: unknown };

export class PytorchPeer {
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private stderr = '';
  private exited: string | undefined;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly lines: readline.Interface,
    readonly info: PeerInfo,
  ) {
    lines.on('line', (l) => this.onLine(l));
  }

  /** Starts the peer; resolves to the peer, or to the reason it is unavailable. */
  /** cudnnBenchmark: torch.backends.cudnn.benchmark on CUDA (default true); give crunet the same setting to compare like with like. */
  static async start(o: { device: string; threads: number; format: PeerFormat; amp?: 'none' | 'bf16' | 'fp16'; cudnnBenchmark?: boolean; timeoutMs?: number }): Promise<PytorchPeer | { unavailable: string }> {
    const python = peerPython();
    const args = ['-u', SCRIPT, '--device', o.device, '--threads', String(o.threads), '--format', o.format, '--amp', o.amp ?? 'none', '--cudnn-benchmark', o.cudnnBenchmark === false ? '0' : '1'];
    const child = spawn(python, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const lines = readline.createInterface({ input: child.stdout });
    const first = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve(`no answer from ${python} within ${(o.timeoutMs ?? 120000) / 1000} s`), o.timeoutMs ?? 120000);
      const done = (s: string) => {
        clearTimeout(timer);
        resolve(s);
      };
      lines.once('line', done);
      child.once('error', (e) => done(`cannot run ${python}: ${e.message}`));
      child.once('exit', (code, sig) => done(`${python} exited (${sig ?? code}) before answering: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    });
    let hello: { ready?: boolean; error?: string; info?: Omit<PeerInfo, 'pythonPath'> } | undefined;
    try {
      hello = JSON.parse(first);
    } catch {
      hello = undefined;
    }
    if (!hello?.ready || !hello.info) {
      child.kill();
      const why = hello?.error ?? first;
      return { unavailable: `pytorch peer unavailable: ${why} (python: ${python}; install with: python3 -m venv ~/.cache/crunet/torch-venv && ~/.cache/crunet/torch-venv/bin/pip install torch)` };
    }
    const peer = new PytorchPeer(child, lines, { ...hello.info, pythonPath: python });
    child.stderr.removeAllListeners('data');
    child.stderr.on('data', (d: Buffer) => (peer.stderr = (peer.stderr + d.toString()).slice(-4000)));
    child.once('exit', (code, sig) => {
      peer.exited = `pytorch peer exited (${sig ?? code})${peer.stderr ? `: ${peer.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`;
      peer.waiting?.reject(new Error(peer.exited));
      peer.waiting = undefined;
    });
    return peer;
  }

  private onLine(l: string): void {
    const w = this.waiting;
    this.waiting = undefined;
    if (!w) return;
    try {
      w.resolve(JSON.parse(l) as Reply);
    } catch {
      w.reject(new Error(`pytorch peer: unreadable reply ${l.slice(0, 200)}`));
    }
  }

  /** Sends one command; rejects with the peer's error (exception type and message) when it fails. */
  async request<T = Reply>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.exited) throw new Error(this.exited);
    if (this.waiting) throw new Error('pytorch peer: one request at a time');
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.child.stdin.write(JSON.stringify({ cmd, ...args }) + '\n');
    });
    if (!reply.ok) throw new Error(`pytorch peer: ${cmd}: ${reply.error}`);
    return reply as T;
  }

  async close(): Promise<void> {
    if (!this.exited) {
      try {
        await Promise.race([this.request('quit'), new Promise((r) => setTimeout(r, 5000))]);
      } catch {
        /* already gone */
      }
    }
    this.lines.close();
    if (!this.exited) this.child.kill();
  }
}
