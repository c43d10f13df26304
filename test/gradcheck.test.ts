// Whole small graphs on the engine: gradients through every op at once (fan-out, a Parameter shared by
// three convolutions), checked three ways:
//   a. against the float64 reference interpreter (test/reference/graph.ts), tolerance TOL;
//   b. the reference itself against float64 central finite differences (so (a) compares with the
//      true derivative), tolerance 1e-6 relative;
//   c. the engine against finite differences of its OWN float32 training loss: along the gradient's
//      direction, along a random direction and on the largest coordinates. float32 FD is noisy
//      (the loss carries ~1e-7 relative rounding, divided by 2h), so FD_REL / FD_ABS are loose: they catch a
//      missing use, a wrong sign or a wrong scale, while (a) catches the small errors.
// Then training: SGD steps against the reference update (PyTorch's SGD), parameter by parameter, on
// these graphs and on crunet_small (whose factor set is shared). Every check runs in two compile
// configurations: with input gradients, and as the Trainer and CLI compile (inputGrads off, memory reuse,
// fusion), whose backward and memory plans differ. Last, memory reuse on and off train crunet_small to
// identical parameters, and a tiny network overfits a fixed batch.

import { strict as assert } from 'node:assert';
import { compile } from '../lib/index.js';
import { GraphBuilder, type Graph } from '../lib/graph/index.js';
import { create } from '../lib/models/index.js';
import {
  assertClose, closeMessage, dot, numericalGradient, params64, randomParams, referenceBackward, referenceForward, sgdStep,
  to64, type Feeds64, type Params64, type Tolerance,
} from './reference/index.js';
import { TestRng, labels32, normal32, normal64, seedFrom } from './support/random.js';

/** Engine against the float64 reference (see test/ops.test.ts for the reasoning). */
const TOL: Tolerance = { rtol: 1e-4, atol: 1e-5 };
/**
 * Engine gradient against finite differences of the engine's float32 loss:
 * |fd - analytic| <= FD_REL * |analytic| + FD_ABS. Steps: along a unit direction the tensor moves by
 * FD_STEP_DIR * max(|tensor|, 1); one coordinate moves by FD_STEP_COORD * max(RMS of the tensor, 0.1).
 * Larger steps cross ReLU kinks (at 1e-2 on one weight the float64 FD is already 3% off); smaller
 * ones drown in float32 rounding of the loss (~1e-7 relative, divided by 2h).
 */
const FD_REL = 2e-2;
const FD_ABS = 5e-4;
const FD_STEP_DIR = 1e-3;
const FD_STEP_COORD = 1e-2;

type Session = Awaited<ReturnType<typeof compile>>;
type Feeds32 = Record<string, Float32Array | Int32Array>;

const rms = (a: ArrayLike<number>) => Math.sqrt(dot(a, a) / Math.max(1, a.length));

/** conv -> BN -> ReLU -> conv -> add (the first conv's output fans out) -> GAP -> linear -> CE. */
function residualGraph(): Graph {
  const g = new GraphBuilder();
  const x = g.input('x', [3, 7, 6]);
  const labels = g.input('labels', [], 'i32');
  const c1 = g.conv2d(x, { outChannels: 8, kernel: 3, padding: 1, name: 'conv1' });
  const h = g.relu(g.batchNorm(c1, { name: 'bn1' }));
  const c2 = g.conv2d(h, { outChannels: 8, kernel: 3, padding: 1, groups: 4, bias: true, name: 'conv2' });
  const logits = g.linear(g.globalAvgPool(g.add(c2, c1, 'add')), { outFeatures: 5, name: 'fc' });
  const loss = g.softmaxCrossEntropy(logits, labels, { topk: 2, name: 'loss' });
  return g.build({ outputs: [loss], loss });
}

/**
 * ONE Parameter, 'shared.weight' [4,2,3,3] (groups 2), used by three convolutions (the last with stride 2);
 * the loss with label smoothing 0.1.
 */
function sharedGraph(): Graph {
  const g = new GraphBuilder();
  const x = g.input('x', [4, 6, 6]);
  const labels = g.input('labels', [], 'i32');
  const w = g.param('shared.weight', [4, 2, 3, 3]);
  const conv = (v: typeof x, name: string, stride = 1) => g.conv2d(v, { outChannels: 4, kernel: 3, padding: 1, groups: 2, stride, weight: w, name });
  const a = conv(x, 'unit1');
  const b = conv(g.relu(g.batchNorm(a, { name: 'bn1' })), 'unit2');
  const c = conv(g.relu(g.batchNorm(g.add(b, a), { name: 'bn2' })), 'unit3', 2);
  const logits = g.linear(g.globalAvgPool(c), { outFeatures: 3, name: 'fc' });
  const loss = g.softmaxCrossEntropy(logits, labels, { name: 'loss', labelSmoothing: 0.1 });
  return g.build({ outputs: [loss], loss });
}

interface Setup {
  graph: Graph;
  batch: number;
  p32: Map<string, Float32Array>;
  p64: Params64;
  feeds: Feeds32;
  feeds64: Feeds64;
}

function setup(graph: Graph, batch: number, seed: string): Setup {
  const rng = new TestRng(seedFrom(seed));
  const p32 = randomParams(graph, rng);
  const x = graph.ir.inputs.find((i) => i.dtype === 'f32')!;
  const classes = graph.shapes.get(graph.ir.nodes.find((nd) => nd.op === 'softmaxCrossEntropy')!.inputs[0]!)![0]!;
  const images = normal32(rng, batch * x.shape.reduce((a, b) => a * b, 1)), labels = labels32(rng, batch, classes);
  const feeds: Feeds32 = { [x.name]: images, labels };
  const feeds64: Feeds64 = { [x.name]: to64(images), labels };
  return { graph, batch, p32, p64: params64(p32), feeds, feeds64 };
}

/**
 * The compile options that change the backward plan and the memory plan. Each check runs in both: with
 * input gradients (which the input-gradient checks need), and as the Trainer and the CLI compile.
 */
interface Config { name: string; inputGrads: boolean; reuseMemory: boolean; fuse: boolean }
const WITH_INPUT_GRADS: Config = { name: 'inputGrads on, no reuse, no fusion', inputGrads: true, reuseMemory: false, fuse: false };
const AS_TRAINING: Config = { name: 'as training compiles: inputGrads off, reuseMemory, fuse', inputGrads: false, reuseMemory: true, fuse: true };
const CONFIGS = [WITH_INPUT_GRADS, AS_TRAINING];

const DEFAULT_SGD = { lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0 };

async function open(su: Setup, config: Config, optimizer = DEFAULT_SGD): Promise<Session> {
  const { inputGrads, reuseMemory, fuse } = config;
  const s = await compile(su.graph, { device: 'cpu', batchSize: su.batch, inputGrads, reuseMemory, fuse, seed: 1, optimizer });
  for (const [name, v] of su.p32) s.setParameter(name, v);
  return s;
}

/** The engine's training-mode loss (batch statistics), through gradients() with seed 1. */
async function engineLoss(s: Session, feeds: Feeds32): Promise<number> {
  return (await s.gradients(feeds, Float32Array.of(1))).outputs[0]![0]!;
}

/**
 * Finite differences of the engine's own loss for one tensor (a parameter, or the f32 input 'x'),
 * compared with the engine's analytic gradient `grad`: along grad/|grad|, along a random unit
 * direction, and on the three coordinates of largest |grad|. Returns failure messages.
 */
async function engineFdCheck(s: Session, su: Setup, tensor: string, grad: Float32Array, rng: TestRng): Promise<string[]> {
  const isInput = tensor === 'x';
  const base = isInput ? (su.feeds.x as Float32Array) : su.p32.get(tensor)!;
  const norm = Math.sqrt(dot(base, base));
  const lossAlong = async (dir: Float64Array, t: number) => {
    const moved = Float32Array.from(base, (v, i) => v + t * dir[i]!);
    if (isInput) return engineLoss(s, { ...su.feeds, x: moved });
    s.setParameter(tensor, moved);
    return engineLoss(s, su.feeds);
  };
  const directions: [string, Float64Array, number][] = [];
  const hDir = FD_STEP_DIR * Math.max(norm, 1), hCoord = FD_STEP_COORD * Math.max(rms(base), 0.1);
  const gnorm = Math.sqrt(dot(grad, grad));
  if (gnorm > 0) directions.push(['along the gradient', Float64Array.from(grad, (v) => v / gnorm), hDir]);
  const r = normal64(rng, grad.length);
  const rnorm = Math.sqrt(dot(r, r));
  directions.push(['along a random direction', r.map((v) => v / rnorm), hDir]);
  const order = [...grad.keys()].sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!)).slice(0, 3);
  for (const i of order) {
    const e = new Float64Array(grad.length);
    e[i] = 1;
    directions.push([`coordinate ${i}`, e, hCoord]);
  }
  const errors: string[] = [];
  for (const [label, dir, h] of directions) {
    // The perturbed tensor is rounded to float32: use the step actually taken.
    const plus = Float32Array.from(base, (v, i) => v + h * dir[i]!), minus = Float32Array.from(base, (v, i) => v - h * dir[i]!);
    let taken = 0, dd = 0;
    for (let i = 0; i < dir.length; i++) if (dir[i]) { taken += (plus[i]! - minus[i]!) * dir[i]!; dd += dir[i]! * dir[i]!; }
    const fd = ((await lossAlong(dir, h)) - (await lossAlong(dir, -h))) / (taken / dd);
    const analytic = dot(grad, dir);
    if (!(Math.abs(fd - analytic) <= FD_REL * Math.abs(analytic) + FD_ABS)) {
      errors.push(`d loss / d ${tensor} ${label}: engine gradient ${analytic.toExponential(4)}, engine finite difference ${fd.toExponential(4)} ` +
        `(h ${h.toExponential(2)}; tolerance ${FD_REL} relative + ${FD_ABS})`);
    }
  }
  if (!isInput) s.setParameter(tensor, base);
  return errors;
}

/** (a), (b) and (c) for one graph; returns the reference gradients for further checks. */
async function gradcheck(su: Setup, s: Session, fdTensors: string[]) {
  const { graph, batch, p64, feeds64 } = su;
  const errors: string[] = [];
  const push = (m: string | null) => { if (m) errors.push(m); };
  const run = referenceForward(graph, batch, feeds64, p64, true);
  const ref = referenceBackward(graph, batch, run, p64, Float64Array.of(1));
  // (b) the reference against float64 finite differences
  const lossOf = () => referenceForward(graph, batch, feeds64, p64, true).loss!.loss;
  for (const [name, grad] of ref.paramGrads) assertClose(grad, numericalGradient(lossOf, p64.get(name)!, 1e-6), { rtol: 1e-6, atol: 1e-7 }, `reference d loss / d ${name}`);
  assertClose(ref.inputGrads.get('x')!, numericalGradient(lossOf, feeds64.x as Float64Array, 1e-6), { rtol: 1e-6, atol: 1e-7 }, 'reference d loss / d x');
  // (a) the engine against the reference
  const got = await s.gradients(su.feeds, Float32Array.of(1));
  const withX = fdTensors.includes('x');
  push(closeMessage(got.outputs[0], [run.loss!.loss], TOL, 'loss'));
  if (withX) push(closeMessage(got.inputGrads.x, ref.inputGrads.get('x')!, TOL, 'd loss / d x'));
  for (const [name, grad] of ref.paramGrads) push(closeMessage(got.paramGrads[name], grad, TOL, `d loss / d ${name}`));
  // gradients() is backward without an update: the running statistics stay as they were set.
  for (const q of graph.ir.params.filter((p) => !p.trainable)) {
    push(closeMessage(s.getParameter(q.name), p64.get(q.name)!, { rtol: 0, atol: 0 }, `${q.name} after gradients() (must be unchanged)`));
  }
  // (c) the engine against its own finite differences
  const rng = new TestRng(seedFrom(fdTensors.join()));
  for (const t of fdTensors) {
    const grad = t === 'x' ? got.inputGrads.x : got.paramGrads[t];
    if (grad) errors.push(...(await engineFdCheck(s, su, t, grad, rng)));
  }
  // Many gradients() calls later (the FD runs), gradients are overwritten per call, never accumulated.
  const again = await s.gradients(su.feeds, Float32Array.of(1));
  for (const [name, grad] of ref.paramGrads) push(closeMessage(again.paramGrads[name], grad, TOL, `d loss / d ${name} on a later gradients() call`));
  if (withX) push(closeMessage(again.inputGrads.x, ref.inputGrads.get('x')!, TOL, 'd loss / d x on a later gradients() call'));
  return { errors, ref, got };
}

/**
 * ReLU inputs this close to 0 (activations are O(1)) sit inside float32's rounding of them: whether the
 * engine lets the gradient through there is a coin flip against float64. One such flip (an input of
 * 2.4e-7, crunet_small at batch 2) moved every gradient below it by 1e-3 when batch-norm statistics
 * changed in their last bit. The SGD checks therefore refuse data that comes this close (NearKink) and
 * take the next data seed.
 */
const KINK_MARGIN = 5e-6;
const KINK_TRIES = 10;

class NearKink extends Error {}

/** The smallest |ReLU input| over a reference run. */
function kinkDistance(graph: Graph, values: Map<string, Float64Array>): number {
  let d = Infinity;
  for (const n of graph.ir.nodes) if (n.op === 'relu') for (const v of values.get(n.inputs[0]!)!) d = Math.min(d, Math.abs(v));
  return d;
}

/**
 * SGD steps on the engine against the float64 reference update (PyTorch's SGD), each checked against
 * the reference started from the engine's own
 * parameters and running statistics before that step (exact: float32 values are float64 values), with
 * the reference's own momentum buffers. Checking step by step, not along two separate trajectories,
 * keeps the comparison at one step's rounding: over three steps of crunet_small at lr 0.05 the float32
 * and float64 trajectories drift apart by ~1e-5 in pre-activations, enough to cross a ReLU kink that
 * neither trajectory comes near. Per step: loss and counts, every parameter (BN running statistics
 * included) after it. Returns failure messages; throws NearKink for data too close to a kink.
 */
async function sgdAgainstReference(su: Setup, config: Config, optimizer: typeof DEFAULT_SGD, lrs: (number | undefined)[]): Promise<string[]> {
  const s = await open(su, config, optimizer);
  try {
    const { graph, batch, feeds64 } = su;
    const input = graph.ir.inputs.find((i) => i.dtype === 'f32')!.name;
    const bufs = new Map(graph.ir.params.filter((q) => q.trainable).map((q) => [q.name, new Float64Array(s.getParameter(q.name).length)]));
    const errors: string[] = [];
    for (const [k, lr] of lrs.entries()) {
      const tag = `${config.name}, nesterov ${optimizer.nesterov}, step ${k + 1}${lr ? ` (lr ${lr})` : ''}`;
      const before: Params64 = new Map(graph.ir.params.map((q) => [q.name, to64(s.getParameter(q.name))]));
      const run = referenceForward(graph, batch, feeds64, before, true);
      const kink = kinkDistance(graph, run.values);
      if (kink < KINK_MARGIN) throw new NearKink(`${tag}: a ReLU input is ${kink.toExponential(2)} from 0`);
      const g = referenceBackward(graph, batch, run, before, Float64Array.of(1), graph.ir.loss);
      const expected: Params64 = new Map(run.params);  // running statistics updated
      for (const q of graph.ir.params.filter((q) => q.trainable)) {
        const w = Float64Array.from(before.get(q.name)!);
        sgdStep(w, g.paramGrads.get(q.name)!, bufs.get(q.name)!, { ...optimizer, lr: lr ?? optimizer.lr }, q.weightDecay);
        expected.set(q.name, w);
      }
      const st = await s.step(su.feeds[input] as Float32Array, su.feeds.labels as Int32Array, lr === undefined ? {} : { lr });
      const m = closeMessage([st.loss], [run.loss!.loss], TOL, `${tag}: loss`);
      if (m) errors.push(m);
      if (st.correct !== run.loss!.correct) errors.push(`${tag}: correct ${st.correct}, expected ${run.loss!.correct}`);
      const topk = graph.ir.nodes.find((n) => n.name === graph.ir.loss)!.attrs.topk;
      const expectTopk = topk ? run.loss!.topkCorrect : undefined;  // reported only when the loss has a top-k
      if (st.topkCorrect !== expectTopk) errors.push(`${tag}: topkCorrect ${st.topkCorrect}, expected ${expectTopk}`);
      for (const q of graph.ir.params) {
        const e = closeMessage(s.getParameter(q.name), expected.get(q.name)!, TOL, `${tag}: ${q.name} after the step`);
        if (e) errors.push(e);
      }
    }
    return errors;
  } finally {
    s.dispose();
  }
}

/** sgdAgainstReference on the first of the data seeds `seed`, `seed #1`, ... that keeps clear of ReLU kinks. */
async function sgdCheck(graph: Graph, batch: number, seed: string, config: Config, optimizer: typeof DEFAULT_SGD, lrs: (number | undefined)[]): Promise<string[]> {
  const near: string[] = [];
  for (let k = 0; k < KINK_TRIES; k++) {
    try {
      return await sgdAgainstReference(setup(graph, batch, k ? `${seed} #${k}` : seed), config, optimizer, lrs);
    } catch (e) {
      if (!(e instanceof NearKink)) throw e;
      near.push(e.message);
    }
  }
  throw new Error(`every data seed came within ${KINK_MARGIN} of a ReLU kink:\n${near.join('\n')}`);
}

/** Names of the parameters that more than one node uses. */
function sharedParams(graph: Graph): string[] {
  const uses = new Map<string, number>();
  for (const n of graph.ir.nodes) for (const q of n.params) uses.set(q, (uses.get(q) ?? 0) + 1);
  return [...uses].filter(([, k]) => k > 1).map(([q]) => q);
}

for (const config of CONFIGS) {
  describe(`gradcheck: whole graphs on the engine (${config.name})`, () => {
    const withX = (tensors: string[]) => (config.inputGrads ? ['x', ...tensors] : tensors);

    it('conv -> BN -> ReLU -> conv -> add -> globalAvgPool -> linear -> softmaxCrossEntropy', async () => {
      const su = setup(residualGraph(), 4, 'residual');
      const s = await open(su, config);
      try {
        const trainable = su.graph.ir.params.filter((p) => p.trainable).map((p) => p.name);
        const { errors } = await gradcheck(su, s, withX(trainable));
        if (errors.length) assert.fail(errors.join('\n'));
      } finally {
        s.dispose();
      }
    });

    it('one Parameter shared by three convolutions: its gradient is the sum over the uses', async () => {
      const su = setup(sharedGraph(), 3, 'shared');
      const s = await open(su, config);
      try {
        const { errors, ref, got } = await gradcheck(su, s, withX(['shared.weight', 'bn2.weight']));
        const uses = ref.paramGradsPerUse.get('shared.weight')!;
        assert.equal(uses.length, 3, 'the reference sees three uses');
        const sum = uses.reduce((acc, u) => acc.map((v, i) => v + u[i]!), new Float64Array(uses[0]!.length));
        const m = closeMessage(got.paramGrads['shared.weight'], sum, TOL, 'shared.weight gradient vs the sum of its three uses');
        if (m) errors.push(m);
        // The sum differs from every single use, so a kernel that overwrote instead of accumulating fails here.
        for (const [k, u] of uses.entries()) {
          if (!closeMessage(got.paramGrads['shared.weight'], u, { rtol: 1e-2, atol: 1e-3 }, '')) errors.push(`shared.weight gradient equals use ${k + 1} alone`);
        }
        if (errors.length) assert.fail(errors.join('\n'));
      } finally {
        s.dispose();
      }
    });

    // Three steps, so that momentum (and Nesterov's look-ahead) matter; the third overrides lr.
    const SGD_LRS = [undefined, undefined, 0.02];
    for (const nesterov of [false, true]) {
      const optimizer = { lr: 0.05, momentum: 0.9, nesterov, weightDecay: 1e-2 };

      it(`SGD steps (momentum, weight decay, nesterov ${nesterov}, lr override) follow the reference update`, async () => {
        const errors = await sgdCheck(residualGraph(), 4, `sgd ${nesterov}`, config, optimizer, SGD_LRS);
        if (errors.length) assert.fail(errors.join('\n'));
      });

      it(`SGD steps update a Parameter shared by three convolutions once per step (nesterov ${nesterov})`, async () => {
        const graph = sharedGraph();
        assert.deepEqual(sharedParams(graph), ['shared.weight']);
        const errors = await sgdCheck(graph, 3, `shared sgd ${nesterov}`, config, optimizer, SGD_LRS);
        if (errors.length) assert.fail(errors.join('\n'));
      });

      it(`SGD steps on crunet_small (8x8 input) update its shared factor set once per step (nesterov ${nesterov})`, async () => {
        const graph = create('crunet_small', { inputSize: 8, classes: 5 }).graph;
        assert.ok(sharedParams(graph).length >= 2, `crunet_small shares its factors: ${sharedParams(graph).join(', ')}`);
        const errors = await sgdCheck(graph, 2, `crunet_small sgd ${nesterov}`, config, optimizer, SGD_LRS);
        if (errors.length) assert.fail(errors.join('\n'));
      });
    }
  });
}

describe('gradcheck: training runs', () => {
  it('crunet_small trains to the same parameters with memory reuse on and off (bit for bit, 3 steps)', async () => {
    // The two plans differ only in where buffers live, not in what is computed or in which order, so the
    // results are identical, not merely close: any difference means a buffer was overwritten while live.
    const graph = create('crunet_small').graph;
    const rng = new TestRng(seedFrom('reuse'));
    const batch = 8;
    const images = normal32(rng, batch * 28 * 28), labels = labels32(rng, batch, 10);
    const optimizer = { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-4 };
    const train = async (reuseMemory: boolean) => {
      const s = await compile(graph, { device: 'cpu', batchSize: batch, seed: 3, reuseMemory, optimizer });
      try {
        const losses: number[] = [];
        for (let k = 0; k < 3; k++) losses.push((await s.step(images, labels)).loss);
        return { losses, params: s.parameterNames().map((n) => [n, s.getParameter(n)] as const), memory: s.memory() };
      } finally {
        s.dispose();
      }
    };
    const on = await train(true), off = await train(false);
    assert.ok(on.memory.arenaBytes < off.memory.arenaBytes, `reuse shrinks the arena: ${on.memory.arenaBytes} vs ${off.memory.arenaBytes}`);
    assert.deepEqual(on.losses, off.losses, 'losses per step');
    const differ = on.params.filter(([n, v], i) => {
      const w = off.params[i]![1];
      assert.equal(off.params[i]![0], n);
      return v.length !== w.length || v.some((x, j) => x !== w[j]);
    }).map(([n]) => n);
    assert.deepEqual(differ, [], 'parameters that differ after 3 steps');
  });

  it('a tiny network overfits a fixed batch of 16 samples, 4 classes: loss < 0.05 within 100 steps (about 45 in float64)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', [3, 8, 8]);
    const labels = g.input('labels', [], 'i32');
    let h = g.relu(g.batchNorm(g.conv2d(x, { outChannels: 16, kernel: 3, padding: 1, name: 'conv1' }), { name: 'bn1' }));
    h = g.relu(g.batchNorm(g.conv2d(h, { outChannels: 16, kernel: 3, padding: 1, groups: 4, name: 'conv2' }), { name: 'bn2' }));
    const logits = g.linear(g.globalAvgPool(h), { outFeatures: 4, name: 'fc' });
    const graph = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, labels, { name: 'loss' }) });
    const rng = new TestRng(seedFrom('overfit'));
    const images = normal32(rng, 16 * 3 * 8 * 8);
    const y = labels32(rng, 16, 4);
    const s = await compile(graph, { device: 'cpu', batchSize: 16, seed: 1, optimizer: { lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0 } });
    try {
      const losses: number[] = [];
      let last = { loss: Infinity, correct: 0 };
      for (let i = 0; i < 100 && !(last.loss < 0.05); i++) {
        last = await s.step(images, y);
        losses.push(last.loss);
      }
      const trace = losses.filter((_, i) => i % 10 === 0 || i === losses.length - 1).map((l) => l.toFixed(3)).join(' ');
      assert.ok(last.loss < 0.05, `loss ${last.loss} after ${losses.length} steps (every 10th: ${trace})`);
      assert.equal(last.correct, 16, `top-1 correct after ${losses.length} steps`);
      // Inference mode: the running statistics have converged to this batch's, so the predictions hold.
      const out = await s.forward(images);
      const predicted = Array.from({ length: 16 }, (_, i) => {
        const row = out.subarray(i * 4, i * 4 + 4);
        return row.indexOf(Math.max(...row));
      });
      assert.deepEqual(predicted, Array.from(y), 'forward() (inference) predictions');
    } finally {
      s.dispose();
    }
  });
});
