// ONNX export checked by running the file with ONNX Runtime (onnxruntime-node) and comparing its logits
// with Session.forward on the same inputs.
//
// Tolerance: |ort - crunet| <= 1e-4 * max(1, max |logit|), elementwise. Both compute in float32 with
// different kernels (oneDNN here, MLAS in ONNX Runtime), so sums are taken in another order and each of
// the ~20-30 layers adds a relative rounding error of a few float32 ulps (1.2e-7) times the fan-in's
// square root; measured differences are ~1e-6 relative (printed below). A wrong layout, attribute or
// parameter moves logits by 1e-2 or more, far outside it.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { compile, GraphBuilder, io, models, type Graph, type Session } from '../lib/index.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

const BATCH = 3;

/** Deterministic pseudo-random values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** Gives every BN non-trivial statistics and affine parameters, so that a BN exported wrongly shows. */
function randomizeBatchNorm(session: Session): void {
  let seed = 7;
  for (const n of session.graph.nodes) {
    if (n.op !== 'batchNorm') continue;
    const [w, b, mean, variance] = n.params.map((p) => session.getParameter(p).length);
    session.setParameter(n.params[0]!, values(w!, seed++).map((v) => 1 + 0.3 * v));
    session.setParameter(n.params[1]!, values(b!, seed++).map((v) => 0.2 * v));
    session.setParameter(n.params[2]!, values(mean!, seed++).map((v) => 0.2 * v));
    session.setParameter(n.params[3]!, values(variance!, seed++).map((v) => 1 + 0.5 * v));
  }
}

async function compareWithOrt(graph: Graph, file: string): Promise<{ maxDiff: number; scale: number; bytes: number }> {
  const session = await compile(graph, { batchSize: BATCH, seed: 3 });
  try {
    randomizeBatchNorm(session);
    const bytes = io.writeOnnx(file, session.graph, session);
    const input = graph.ir.inputs.find((i) => i.dtype === 'f32')!;
    const x = values(BATCH * input.shape.reduce((a, d) => a * d, 1), 11);
    const ours = await session.forward(x);
    const ortSession = await ort.InferenceSession.create(fs.readFileSync(file));
    const out = await ortSession.run({ [input.name]: new ort.Tensor('float32', x, [BATCH, ...input.shape]) });
    const theirs = out[graph.ir.outputs[0]!]!;
    assert.deepEqual(theirs.dims, [BATCH, ours.length / BATCH]);
    const t = theirs.data as Float32Array;
    let maxDiff = 0, scale = 1;
    for (let i = 0; i < ours.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - t[i]!));
      scale = Math.max(scale, Math.abs(ours[i]!));
    }
    assert.ok(maxDiff <= 1e-4 * scale, `ONNX Runtime's logits differ from Session.forward's by ${maxDiff} (scale ${scale})`);
    return { maxDiff, scale, bytes };
  } finally {
    session.dispose();
  }
}

/** Initializers per name and how many nodes read each, from the file itself (a minimal protobuf reader). */
function initializerUse(bytes: Uint8Array): { initializers: string[]; readers: Map<string, number> } {
  const read = (buf: Uint8Array) => {
    const fields: [number, number, Uint8Array | number][] = [];
    let i = 0;
    const varint = () => { let v = 0, m = 1, b; do { b = buf[i++]!; v += (b & 0x7f) * m; m *= 128; } while (b & 0x80); return v; };
    while (i < buf.length) {
      const key = varint();
      const wire = key & 7, field = Math.floor(key / 8);
      if (wire === 0) fields.push([field, wire, varint()]);
      else if (wire === 2) { const n = varint(); fields.push([field, wire, buf.subarray(i, i + n)]); i += n; }
      else if (wire === 5) { fields.push([field, wire, 0]); i += 4; }
      else throw new Error(`wire type ${wire}`);
    }
    return fields;
  };
  const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
  const graph = read(bytes).find(([f]) => f === 7)![2] as Uint8Array;
  const initializers: string[] = [];
  const readers = new Map<string, number>();
  for (const [f, , v] of read(graph)) {
    if (f === 5) initializers.push(text(read(v as Uint8Array).find(([g]) => g === 8)![2] as Uint8Array));
    if (f === 1) for (const [g, , x] of read(v as Uint8Array)) if (g === 1) readers.set(text(x as Uint8Array), (readers.get(text(x as Uint8Array)) ?? 0) + 1);
  }
  return { initializers, readers };
}

describe('ONNX export (opset 17), run by ONNX Runtime', function () {
  this.timeout(300_000);
  afterEach(removeTestTempDirs);

  it('crunet_small: logits match Session.forward, and each shared CRU factor is one initializer read by every unit of its set', async () => {
    const model = models.create('crunet_small');
    const file = path.join(testTempDir('onnx'), 'crunet_small.onnx');
    const r = await compareWithOrt(model.graph, file);
    console.log(`      crunet_small: max |ort - crunet| = ${r.maxDiff.toExponential(2)} at logit scale ${r.scale.toFixed(2)}; ${r.bytes} bytes`);
    const { initializers, readers } = initializerUse(fs.readFileSync(file));
    assert.equal(new Set(initializers).size, initializers.length, 'no initializer twice');
    assert.deepEqual(new Set(initializers), new Set(model.graph.parameters.map((p) => p.name)));
    const shared = model.graph.parameters.filter((p) => p.name.includes('.shared.'));
    assert.ok(shared.length >= 2);
    for (const p of shared) assert.equal(readers.get(p.name), model.options.L, `${p.name} is read by the ${model.options.L} units of its set`);
  });

  it('resnext_small (grouped 3x3 convolutions): logits match', async () => {
    const r = await compareWithOrt(models.create('resnext_small', { inputSize: 32 }).graph, path.join(testTempDir('onnx'), 'resnext.onnx'));
    console.log(`      resnext_small: max |ort - crunet| = ${r.maxDiff.toExponential(2)} at logit scale ${r.scale.toFixed(2)}`);
  });

  it('resnet_small: logits match', async () => {
    const r = await compareWithOrt(models.create('resnet_small').graph, path.join(testTempDir('onnx'), 'resnet.onnx'));
    console.log(`      resnet_small: max |ort - crunet| = ${r.maxDiff.toExponential(2)} at logit scale ${r.scale.toFixed(2)}`);
  });

  it('the ImageNet stem and every other op (conv bias, max and average pooling with padding, post-activation BN): logits match', async () => {
    const g = new GraphBuilder();
    const x = g.input('images', [3, 17, 15]);
    const y = g.input('labels', [], 'i32');
    let t = g.conv2d(x, { outChannels: 8, kernel: [7, 5], stride: 2, padding: [3, 2], bias: true, name: 'conv1' });
    t = g.relu(g.batchNorm(t, { name: 'bn1', eps: 1e-3 }), 'relu');
    t = g.maxPool(t, { kernel: 3, stride: 2, padding: 1, name: 'maxpool' });
    const a = g.avgPool(t, { kernel: 3, stride: 1, padding: 1, countIncludePad: false, name: 'avg' });
    const b = g.avgPool(t, { kernel: 3, stride: 1, padding: 1, name: 'avg_incl' });
    t = g.conv2d(g.add(a, b, 'sum'), { outChannels: 8, kernel: 3, padding: 1, groups: 4, name: 'grouped' });
    const logits = g.linear(g.globalAvgPool(t, 'pool'), { outFeatures: 5, name: 'fc' });
    const graph = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
    const r = await compareWithOrt(graph, path.join(testTempDir('onnx'), 'ops.onnx'));
    console.log(`      all ops: max |ort - crunet| = ${r.maxDiff.toExponential(2)} at logit scale ${r.scale.toFixed(2)}`);
  });

  it("a hand-written GraphIR without the optional attributes exports native's defaults: logits match", async () => {
    // Built with every attribute, then stripped to what a hand-written IR may leave out: the conv's
    // stride and groups, the pools' stride (their kernel), countIncludePad (1), eps (1e-5), and kernels
    // and paddings given as one number. Padding 1 makes countIncludePad change the averages.
    const g = new GraphBuilder();
    const x = g.input('images', [3, 9, 9]);
    const y = g.input('labels', [], 'i32');
    let t = g.conv2d(x, { outChannels: 4, kernel: 3, padding: 1, name: 'conv' });
    t = g.relu(g.batchNorm(t, { name: 'bn' }), 'relu');
    t = g.avgPool(t, { kernel: 2, padding: 1, name: 'avg' });
    t = g.maxPool(t, { kernel: 2, name: 'max' });
    const logits = g.linear(g.globalAvgPool(t, 'pool'), { outFeatures: 3, name: 'fc' });
    const built = g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
    const ir = structuredClone(built.ir);
    const strip: Record<string, string[]> = { conv: ['stride', 'groups'], bn: ['eps'], avg: ['stride', 'countIncludePad'], max: ['stride'] };
    for (const n of ir.nodes) {
      for (const k of strip[n.name] ?? []) {
        assert.ok(k in n.attrs, `${n.name}.${k} is set by the builder`);
        delete n.attrs[k];
      }
      if (n.name === 'conv') (n.attrs.kernel = 3), (n.attrs.padding = [1]);
    }
    const r = await compareWithOrt({ ...built, ir }, path.join(testTempDir('onnx'), 'defaults.onnx'));
    console.log(`      defaults: max |ort - crunet| = ${r.maxDiff.toExponential(2)} at logit scale ${r.scale.toFixed(2)}`);
  });

  it('refuses a target path that cannot be written, naming it, and leaves no file behind', async () => {
    const graph = models.create('resnet_small').graph;
    const session = await compile(graph, { batchSize: 1 });
    try {
      const dir = testTempDir('onnx');
      const get = (n: string) => session.getParameter(n);
      const noDir = path.join(dir, 'no', 'such', 'dir', 'm.onnx');
      assert.throws(() => io.writeOnnx(noDir, session.graph, get), (e: Error) => e.message.includes(noDir) && /ENOENT/.test(e.message));
      assert.throws(() => io.writeOnnx(dir, session.graph, get), (e: Error) => e.message.includes(dir) && /is a directory/.test(e.message));
      assert.deepEqual(fs.readdirSync(dir), []);
      const n = session.graph.params.length;
      assert.throws(() => io.toOnnx(session.graph, new Map()), new RegExp(`no values for ${n} parameters: conv1\\.weight \\(absent\\), bn1\\.weight \\(absent\\).* and ${n - 8} more$`));
    } finally {
      session.dispose();
    }
  });
});
