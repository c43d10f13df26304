// What compile() does for a data-parallel session before its first step (docs/ARCHITECTURE.md, "Several
// processes"): every rank describes its model, batch size, precision and batch-norm synchronization, the descriptions are gathered,
// and any rank that differs from rank 0 is an Error on every rank naming that rank and the difference;
// then rank 0's parameters and batch-norm statistics are broadcast, so that all ranks start equal.
import { createHash } from 'node:crypto';
import type { GraphIR } from '../graph/ir.js';
import type { ProcessGroup } from './process-group.js';

/** What must agree across the ranks of one job. */
export interface RankFacts {
  batchSize: number;
  precision: string;
  device: string;
  syncBatchNorm: boolean;
  /** Other compile settings that must agree (bucket size, loss scaling, optimizer, EMA), each as JSON. */
  settings: [string, string][];
  params: { name: string; shape: number[]; trainable: boolean }[];
  /** A hash of the graph's nodes (ops, wiring, attributes): equal parameters can still hide a different graph. */
  graph: string;
}

/** The parameter store a session exposes: enough to describe and overwrite every parameter. */
export interface ParameterAccess {
  parameters(): { name: string; shape: number[]; trainable: boolean }[];
  getParameter(name: string): Float32Array;
  setParameter(name: string, values: Float32Array): void;
}

// Regular expressions and functions (an optimizer group's match) compare by their source text.
const settingJson = (v: unknown) => JSON.stringify(v ?? null, (_k, x) => (x instanceof RegExp || typeof x === 'function' ? String(x) : x));

export function rankFacts(ir: GraphIR, store: ParameterAccess, batchSize: number, precision: string, device: string, syncBatchNorm: boolean,
  settings: Record<string, unknown> = {}): RankFacts {
  const graph = createHash('sha256').update(JSON.stringify({ inputs: ir.inputs, nodes: ir.nodes, outputs: ir.outputs, loss: ir.loss })).digest('hex').slice(0, 16);
  const deviceKind = device.startsWith('cuda') ? 'cuda' : device;
  const named = Object.entries(settings).map(([k, v]): [string, string] => [k, settingJson(v)]);
  return { batchSize, precision, device: deviceKind, syncBatchNorm, settings: named, params: store.parameters().map(({ name, shape, trainable }) => ({ name, shape, trainable })), graph };
}

const shapeText = (s: number[]) => `[${s.join(', ')}]`;

/** How `mine` (rank r) differs from rank 0's facts, in words; undefined when they agree. */
export function describeDifference(r: number, mine: RankFacts, root: RankFacts): string | undefined {
  if (mine.batchSize !== root.batchSize) return `batch size ${mine.batchSize} on rank ${r}, ${root.batchSize} on rank 0`;
  if (mine.precision !== root.precision) return `precision '${mine.precision}' on rank ${r}, '${root.precision}' on rank 0`;
  if (mine.device !== root.device) return `device '${mine.device}' on rank ${r}, '${root.device}' on rank 0`;
  if (mine.syncBatchNorm !== root.syncBatchNorm) return `syncBatchNorm ${mine.syncBatchNorm} on rank ${r}, ${root.syncBatchNorm} on rank 0`;
  const rootSettings = new Map(root.settings ?? []);
  for (const [k, v] of mine.settings ?? []) {
    if (rootSettings.get(k) !== v) return `${k} ${v} on rank ${r}, ${rootSettings.get(k) ?? 'not set'} on rank 0`;
  }
  const theirs = new Map(root.params.map((p) => [p.name, p]));
  const ours = new Map(mine.params.map((p) => [p.name, p]));
  const counts = mine.params.length !== root.params.length ? `${mine.params.length} parameters on rank ${r}, ${root.params.length} on rank 0; ` : '';
  for (const p of mine.params) {
    const q = theirs.get(p.name);
    if (!q) return `${counts}parameter ${p.name} ${shapeText(p.shape)} is on rank ${r} but not on rank 0`;
    if (shapeText(p.shape) !== shapeText(q.shape)) return `${counts}parameter ${p.name} is ${shapeText(p.shape)} on rank ${r}, ${shapeText(q.shape)} on rank 0`;
    if (p.trainable !== q.trainable) return `${counts}parameter ${p.name} is ${p.trainable ? '' : 'not '}trainable on rank ${r}, ${q.trainable ? '' : 'not '}on rank 0`;
  }
  for (const q of root.params) if (!ours.has(q.name)) return `${counts}parameter ${q.name} ${shapeText(q.shape)} is on rank 0 but not on rank ${r}`;
  if (counts) return counts.slice(0, -2);
  if (mine.params.some((p, i) => p.name !== root.params[i]!.name)) return `the parameters are in another order on rank ${r} than on rank 0`;
  if (mine.graph !== root.graph) return `the graph (its nodes, wiring or attributes) on rank ${r} differs from rank 0's, with the same parameters`;
  return undefined;
}

/**
 * Checks the ranks agree, then makes every rank's parameters rank 0's. Throws on every rank, naming each
 * rank that differs from rank 0 and how.
 */
export async function joinDataParallel(group: ProcessGroup, facts: RankFacts, store: ParameterAccess): Promise<void> {
  const all = (await group.allgather(new TextEncoder().encode(JSON.stringify(facts)))).map((b) => JSON.parse(new TextDecoder().decode(b)) as RankFacts);
  const problems: string[] = [];
  all.forEach((f, r) => {
    const why = r === 0 ? undefined : describeDifference(r, f, all[0]!);
    if (why) problems.push(`rank ${r}'s model differs from rank 0's: ${why}`);
  });
  if (problems.length) throw new Error(`compile (distributed, rank ${group.rank} of ${group.worldSize}): ${problems.join('; ')}`);
  // One broadcast of every parameter (batch-norm running statistics included), packed.
  const params = store.parameters();
  const total = params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  const packed = new Float32Array(total);
  if (group.rank === 0) {
    let at = 0;
    for (const p of params) {
      const v = store.getParameter(p.name);
      packed.set(v, at);
      at += v.length;
    }
  }
  await group.broadcast(packed, 0);
  if (group.rank !== 0) {
    let at = 0;
    for (const p of params) {
      const n = p.shape.reduce((a, b) => a * b, 1);
      store.setParameter(p.name, packed.subarray(at, at + n));
      at += n;
    }
  }
}
