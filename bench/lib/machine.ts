// What every result records about where and how it was measured: machine, date, versions, command,
// and the load on the machine around the run. Also the process memory readings (/proc/self/status).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildInfo, version } from '../../lib/index.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryBytes: number;
  os: string;
  node: string;
  crunet: string;
  onednn: string;
  isa: string;
  threads: number;
  compiler: string;
  gitCommit?: string;
  date: string;
  command: string;
  /** 1-minute load average when the run started, and the busiest other processes then. */
  loadBefore: number;
  /** Fraction of all cores busy in the seconds just before the run (/proc/stat): the load average lags. */
  cpuBusyBefore?: number;
  busyBefore: string[];
}

function gitCommit(): string | undefined {
  try {
    const root = path.resolve(__dirname, '..', '..');
    const head = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+changes` : head;
  } catch {
    return undefined;
  }
}

/** This process and its ancestors (npm, the shell): not "other" load. */
function ancestors(): Set<number> {
  const out = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return out;
}

/** Other processes using more than 20 % of a core (ps), this process, its ancestors and children excluded. */
export function busyProcesses(): string[] {
  const mine = ancestors();
  try {
    const out = execFileSync('ps', ['-eo', 'pid,ppid,pcpu,comm', '--sort=-pcpu'], { encoding: 'utf8' });
    return out
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 4 && Number(f[2]) > 20 && !mine.has(Number(f[0])) && !mine.has(Number(f[1])))
      .map((f) => `${f[3]} (pid ${f[0]}, ${f[2]} % cpu)`);
  } catch {
    return [];
  }
}

export function machineInfo(cpuBusyBefore?: number): MachineInfo {
  const b = buildInfo();
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    crunet: version(),
    onednn: b.onednn.version,
    isa: b.onednn.isa,
    threads: b.threads,
    compiler: b.compiler,
    gitCommit: gitCommit(),
    date: new Date().toISOString(),
    command: ['npm run bench --', ...process.argv.slice(2)].join(' '),
    loadBefore: os.loadavg()[0]!,
    cpuBusyBefore,
    busyBefore: busyProcesses(),
  };
}

export function describeMachine(m: MachineInfo): string {
  return [
    `machine: ${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB; ${m.os}; load ${m.loadBefore.toFixed(2)} at start${m.cpuBusyBefore !== undefined ? ` (${(100 * m.cpuBusyBefore).toFixed(0)} % of the cores busy just before)` : ''}${m.busyBefore.length ? ` (busy: ${m.busyBefore.join(', ')})` : ''}`,
    `date: ${m.date}; node ${m.node}; crunet ${m.crunet}${m.gitCommit ? ` (${m.gitCommit})` : ''}; oneDNN ${m.onednn} (${m.isa}), ${m.threads} threads; ${m.compiler}`,
    `command: ${m.command}`,
  ].join('\n');
}

function statusBytes(field: 'VmRSS' | 'VmHWM'): number {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`/proc/self/status has no ${field}`);
  return Number(line.split(/\s+/)[1]) * 1024;
}

/**
 * Resident-set high-water mark of this process from a starting point: reset VmHWM (Linux clear_refs),
 * note VmRSS; later, VmHWM - that RSS is the peak extra memory the measured work needed.
 */
export class RssWatermark {
  readonly baseline: number;
  readonly resetWorked: boolean;
  constructor() {
    let ok = true;
    try {
      fs.writeFileSync('/proc/self/clear_refs', '5');
    } catch {
      ok = false;
    }
    this.resetWorked = ok;
    this.baseline = statusBytes('VmRSS');
  }
  peakDelta(): number {
    return statusBytes('VmHWM') - this.baseline;
  }
}

/** Fraction of all cores busy over the next `ms` milliseconds (/proc/stat), for an instantaneous idle check. */
export async function cpuBusy(ms = 3000): Promise<number> {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}

/**
 * Waits (polling every 20 s) until the machine is idle: a 1-minute load average below `below`, or
 * (the load average lags a minute behind a process that just ended) under 25 % of the cores busy over
 * the last 3 seconds. Gives up after maxSeconds and says so (the result records the load anyway).
 */
export async function waitForIdle(below: number, maxSeconds: number, log: (s: string) => void): Promise<boolean> {
  const t0 = Date.now();
  for (;;) {
    const load = os.loadavg()[0]!;
    const busy = load < below ? 0 : await cpuBusy();
    if (load < below || busy < 0.25) return true;
    if ((Date.now() - t0) / 1000 >= maxSeconds) {
      log(`load ${load.toFixed(2)} still >= ${below} after ${maxSeconds} s: measuring anyway (recorded in the result)`);
      return false;
    }
    log(`waiting for the machine: load ${load.toFixed(2)} >= ${below}, ${(100 * busy).toFixed(0)} % of the cores busy now; busy processes: ${busyProcesses().join(', ') || '-'}`);
    await new Promise((r) => setTimeout(r, 20000));
  }
}
