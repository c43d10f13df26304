// Helpers for the CUDA parity suite: compile one graph on 'cpu' and on 'cuda', give both the same
// parameters and inputs, and compare every output, gradient and running statistic (after onnxruntime's
// CompareWithCPU). The CPU backend is itself checked against the float64 reference in test/ops.test.ts.
//
// Tolerances per precision, |cuda - cpu| <= rtol * |cpu| + atol * max(1, max |cpu|) (the tensor's largest
// element scales atol here, unlike the element-wise bounds against the reference: two float32 sums in
// different orders differ by the rounding of the summands, which this suite has no reference to bound;
// tightening it needs a GPU run to check):
//   FP32 (cuDNN allowTF32 off): rtol 2e-4, atol 2e-5 -- both are float32 with different summation orders;
//   TF32 (allowTF32 on, PyTorch's default): rtol 1e-2, atol 5e-3 -- TF32 keeps 10 mantissa bits;
//   and per algorithm class: where cuDNN runs a convolution as FFT or Winograd (benchmark mode may pick
//   them), the data goes through a transform whose rounding grows with it: rtol 1e-3, atol 5e-4 at least.
import { strict as assert } from 'node:assert';
import { compile, type CompileOptions, type Session } from '../../lib/index.js';
import { GraphBuilder, type Value } from '../../lib/graph/index.js';
import { closeMessage, randomParams, type Tolerance } from '../reference/index.js';
import type { InputGen } from '../support/op-cases.js';
import { TestRng, normal32, seedFrom } from '../support/random.js';

export const FP32: Tolerance = { rtol: 2e-4, atol: 2e-5 };
export const TF32: Tolerance = { rtol: 1e-2, atol: 5e-3 };
export const FFT_WINOGRAD: Tolerance = { rtol: 1e-3, atol: 5e-4 };
export const GPU = process.env.CRUNET_TEST_DEVICE ?? 'cuda:0';

/** tol, loosened to FFT_WINOGRAD where one of the session's convolutions runs an FFT or Winograd algorithm. */
export function forAlgorithms(s: Session, tol: Tolerance): { tol: Tolerance; why: string } {
  const transformed = s.profile().flatMap((p) => (p.algorithms ?? []).filter((a) => /FFT|WINOGRAD/.test(a.algo)).map((a) => `${p.name} ${a.direction} ${a.algo}`));
  if (!transformed.length) return { tol, why: '' };
  return { tol: { rtol: Math.max(tol.rtol, FFT_WINOGRAD.rtol), atol: Math.max(tol.atol, FFT_WINOGRAD.atol) }, why: ` (FFT/Winograd tolerance: ${transformed.join(', ')})` };
}

export const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

export async function pair(graph: Parameters<typeof compile>[0], batch: number, o: Partial<CompileOptions> = {}) {
  const base: CompileOptions = {
    batchSize: batch, inputGrads: true, seed: 1, optimizer: { lr: 0.1, momentum: 0.9 }, ...o,
  };
  const cpu = await compile(graph, { ...base, device: 'cpu' });
  try {
    const gpu = await compile(graph, { ...base, device: GPU, cudnn: o.cudnn ?? { allowTF32: false } });
    return { cpu, gpu, dispose: () => (cpu.dispose(), gpu.dispose()) };
  } catch (e) {
    cpu.dispose();
    throw e;
  }
}

export class Checker {
  readonly errors: string[] = [];
  constructor(readonly what: string, readonly tol: Tolerance) {}
  check(actual: ArrayLike<number> | undefined, expected: ArrayLike<number> | undefined, tensor: string): void {
    if (!expected) {
      this.errors.push(`${this.what}: ${tensor}: missing on the CPU`);
      return;
    }
    let scale = 1;
    for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
    const m = closeMessage(actual, expected, { rtol: this.tol.rtol, atol: this.tol.atol * scale }, `${this.what}: ${tensor} (cuda vs cpu)`);
    if (m) this.errors.push(m);
  }
  done(): void {
    if (this.errors.length) assert.fail(this.errors.join('\n'));
  }
}

/**
 * One op (or small graph) forward and backward on CUDA against the CPU backend: inference forward,
 * training forward, every input and parameter gradient, running statistics after the training forward,
 * and inference forward again with them.
 */
export async function parity(
  what: string, batch: number, inputs: Record<string, number[]>, build: (g: GraphBuilder, x: Record<string, Value>) => Value,
  o: { tol?: Tolerance; data?: InputGen; cudnn?: CompileOptions['cudnn'] } = {},
): Promise<void> {
  const rng = new TestRng(seedFrom(what));
  const g = new GraphBuilder();
  const xs = Object.fromEntries(Object.entries(inputs).map(([k, s]) => [k, g.input(k, s)]));
  const y = build(g, xs);
  const graph = g.build({ outputs: [y] });
  const params = randomParams(graph, rng);
  const feeds = Object.fromEntries(Object.entries(inputs).map(([k, s]) => [k, (o.data ?? normal32)(rng, batch * prod(s))]));
  const dy = normal32(rng, batch * prod(y.shape));
  const { cpu, gpu, dispose } = await pair(graph, batch, { cudnn: o.cudnn ?? { allowTF32: false } });
  const { tol, why } = forAlgorithms(gpu, o.tol ?? FP32);
  const c = new Checker(what + why, tol);
  try {
    for (const s of [cpu, gpu]) for (const [name, v] of params) s.setParameter(name, v);
    c.check(await gpu.forward(feeds), await cpu.forward(feeds), 'forward (inference) output');
    const [gg, gc] = [await gpu.gradients(feeds, dy), await cpu.gradients(feeds, dy)];
    c.check(gg.outputs[0], gc.outputs[0], 'training forward output');
    for (const name of Object.keys(gc.inputGrads)) c.check(gg.inputGrads[name], gc.inputGrads[name], `gradient of input ${name}`);
    for (const name of Object.keys(gc.paramGrads)) c.check(gg.paramGrads[name], gc.paramGrads[name], `gradient of ${name}`);
    const buffers = graph.ir.params.filter((q) => !q.trainable).map((q) => q.name);
    for (const name of buffers) c.check(gpu.getParameter(name), cpu.getParameter(name), `${name} after one training forward`);
    if (buffers.length) c.check(await gpu.forward(feeds), await cpu.forward(feeds), 'forward (inference) with the updated running statistics');
  } finally {
    dispose();
  }
  c.done();
}

export type { Session };
