// A process group: the processes of one data-parallel job, joined through a rendezvous at rank 0's
// address, with Gloo's collectives between them (docs/ARCHITECTURE.md, "Several processes"). Every call runs
// on the group's communication thread in native code, off the JS thread; every collective and the
// rendezvous have a timeout, so a missing or dead peer is an Error, never a hang.
import { native, type NativeProcessGroup } from '../engine/native.js';

export type Backend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'max' | 'min';

export interface ProcessGroupOptions {
  /** 'gloo' (default): TCP between the processes, for CPU sessions. 'nccl' is not in this build. */
  backend?: Backend;
  /** This process's rank, in [0, worldSize). Rank 0 hosts the rendezvous. */
  rank: number;
  /** The number of processes in the job. */
  worldSize: number;
  /** Host name or address of rank 0, as every rank reaches it (torchrun's MASTER_ADDR). */
  masterAddr: string;
  /** The TCP port rank 0 listens on for the rendezvous (MASTER_PORT), in [1, 65535]. */
  masterPort: number;
  /** Milliseconds the rendezvous and every collective may take before they fail (default 300000). */
  timeoutMs?: number;
}

export interface ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: Backend;
  readonly timeoutMs: number;
  /** Reduces `values` over the ranks, in place (every rank ends with the result). Default op 'sum'. */
  allreduce(values: Float32Array | Float64Array, op?: ReduceOp): Promise<void>;
  /** Overwrites `values` on every rank with root's (default root 0); every rank passes the same length. */
  broadcast(values: Float32Array | Float64Array | Uint8Array, root?: number): Promise<void>;
  /** Every rank's bytes, indexed by rank (lengths may differ between ranks). */
  allgather(bytes: Uint8Array): Promise<Uint8Array[]>;
  /** Resolves once every rank has called it. */
  barrier(): Promise<void>;
  /** Closes the connections; later calls throw. Calling it again does nothing. */
  destroy(): void;
  /** Whether destroy() was called. */
  readonly isDestroyed: boolean;
}

/** How a received value reads in an error message. */
function typeName(v: unknown): string {
  if (v === null) return 'null';
  return typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
}

function checkInt(what: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`initProcessGroup: expected ${what} to be an integer, but received ${typeof v === 'number' ? v : typeName(v)}`);
  if (v < lo || v > hi) throw new RangeError(`initProcessGroup: expected ${what} in [${lo}, ${hi}], but received ${v}`);
  return v;
}

/** The options checked and completed with their defaults. */
export function checkProcessGroupOptions(opts: ProcessGroupOptions): Required<ProcessGroupOptions> {
  if (!opts || typeof opts !== 'object') throw new TypeError(`initProcessGroup: expected options {rank, worldSize, masterAddr, masterPort}, but received ${typeName(opts)}`);
  const backend = opts.backend ?? 'gloo';
  if (backend !== 'gloo' && backend !== 'nccl') throw new RangeError(`initProcessGroup: expected backend 'gloo' or 'nccl', but received ${JSON.stringify(backend)}`);
  const worldSize = checkInt('worldSize', opts.worldSize, 1, 65536);
  const rank = checkInt('rank', opts.rank, 0, worldSize - 1);
  if (typeof opts.masterAddr !== 'string' || opts.masterAddr === '') throw new TypeError(`initProcessGroup: expected masterAddr to be a host name or address, but received ${typeName(opts.masterAddr)}${opts.masterAddr === '' ? ' (empty)' : ''}`);
  const masterPort = checkInt('masterPort', opts.masterPort, 1, 65535);
  const timeoutMs = opts.timeoutMs === undefined ? 300_000 : checkInt('timeoutMs', opts.timeoutMs, 1, 2 ** 31 - 1);
  return { backend, rank, worldSize, masterAddr: opts.masterAddr, masterPort, timeoutMs };
}

/**
 * Joins the job: rank 0 listens on masterPort, every rank connects to it, they check that they agree on
 * the world size, then open Gloo's TCP connections to each other. Rejects with an Error naming the
 * missing ranks when the rendezvous does not complete within timeoutMs, and clearly when rank 0's port
 * is taken or the master cannot be reached.
 */
export async function initProcessGroup(opts: ProcessGroupOptions): Promise<ProcessGroup> {
  const o = checkProcessGroupOptions(opts);
  if (o.backend === 'nccl') throw new RangeError("initProcessGroup: expected backend 'gloo', but received 'nccl' (this build of crunet has no NCCL backend)");
  const addon = native();
  if (!addon.initProcessGroup) throw new Error('initProcessGroup: this build of crunet has no Gloo (install libgloo-dev and rebuild the addon: npm run build:native)');
  let handle: NativeProcessGroup;
  try {
    handle = await addon.initProcessGroup(o);
  } catch (e) {
    throw new Error((e as Error).message, { cause: e });
  }
  return new GlooProcessGroup(handle, o);
}

/**
 * Marks `group` busy until `step` settles. A data-parallel step exchanges gradients on the group's thread
 * in an order every rank shares; a collective the program asks for meanwhile could be queued between them
 * on one rank and not on another, and pair up wrongly, so it is refused until the step is done.
 */
export async function duringStep<T>(group: ProcessGroup, step: Promise<T>): Promise<T> {
  const g = group as GlooProcessGroup;
  g.stepsRunning++;
  try {
    return await step;
  } finally {
    g.stepsRunning--;
  }
}

/** The native group behind a ProcessGroup from initProcessGroup (for compile's `distributed`). */
export function nativeGroup(g: ProcessGroup): NativeProcessGroup {
  if (!(g instanceof GlooProcessGroup)) throw new TypeError(`compile: expected distributed.group to come from crunet.dist.initProcessGroup(), but received ${typeName(g)}`);
  return g.native;
}

class GlooProcessGroup implements ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: Backend = 'gloo';
  readonly timeoutMs: number;
  private destroyed = false;
  /** Data-parallel steps in flight on this group (duringStep). */
  stepsRunning = 0;

  constructor(readonly native: NativeProcessGroup, o: Required<ProcessGroupOptions>) {
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.timeoutMs = o.timeoutMs;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  async allreduce(values: Float32Array | Float64Array, op: ReduceOp = 'sum'): Promise<void> {
    this.live('allreduce');
    if (!(values instanceof Float32Array || values instanceof Float64Array)) throw new TypeError(`allreduce: expected a Float32Array or Float64Array, but received ${typeName(values)}`);
    if (op !== 'sum' && op !== 'max' && op !== 'min') throw new RangeError(`allreduce: expected op 'sum', 'max' or 'min', but received ${JSON.stringify(op)}`);
    await this.call(() => this.native.allreduce(values, op));
  }

  async broadcast(values: Float32Array | Float64Array | Uint8Array, root = 0): Promise<void> {
    this.live('broadcast');
    if (!(values instanceof Float32Array || values instanceof Float64Array || values instanceof Uint8Array)) {
      throw new TypeError(`broadcast: expected a Float32Array, Float64Array or Uint8Array, but received ${typeName(values)}`);
    }
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) throw new RangeError(`broadcast: expected root in [0, ${this.worldSize - 1}], but received ${root}`);
    await this.call(() => this.native.broadcast(values, root));
  }

  async allgather(bytes: Uint8Array): Promise<Uint8Array[]> {
    this.live('allgather');
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`allgather: expected a Uint8Array, but received ${typeName(bytes)}`);
    return this.call(() => this.native.allgather(bytes));
  }

  async barrier(): Promise<void> {
    this.live('barrier');
    await this.call(() => this.native.barrier());
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.native.destroy();
  }

  private live(what: string): void {
    if (this.destroyed) throw new Error(`${what}: this process group was destroyed`);
    if (this.stepsRunning > 0) {
      throw new Error(`${what}: a step of a data-parallel session on this group is running; await it first (every rank must run the group's collectives in the same order)`);
    }
  }

  /** A native failure re-thrown with the caller's stack. */
  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw new Error((e as Error).message, { cause: e });
    }
  }
}
