// PyTorch state dicts in and out, against fixtures made once with PyTorch (scripts/torch/make-fixtures.py;
// this test needs no torch): a float16 state dict saved by safetensors.torch for a reduced crunet_small
// (shared CRU factors included) with PyTorch's logits for a fixed input, and the state-dict keys of
// torchvision's resnet50, resnet101 and resnext50_32x4d.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compile, io, models, type Session } from '../lib/index.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

const FIXTURES = path.join(__dirname, 'fixtures', 'torch');
const WEIGHTS = path.join(FIXTURES, 'crunet_small-tiny.safetensors');

/** The fixture's model, compiled for the fixture's batch. */
async function fixtureSession(): Promise<{ session: Session; input: Float32Array; logits: Float32Array }> {
  const expected = io.readSafetensors(path.join(FIXTURES, 'crunet_small-tiny.expected.safetensors'));
  const model = models.fromJSON(expected.metadata.model!);
  const input = expected.tensors.get('input')!;
  return { session: await compile(model, { batchSize: input.shape[0]! }), input: input.data, logits: expected.tensors.get('logits')!.data };
}

describe('PyTorch state dicts (crunet.io)', function () {
  this.timeout(120_000);
  afterEach(removeTestTempDirs);

  it("loads a state dict saved by PyTorch (float16, num_batches_tracked) and computes PyTorch's logits", async () => {
    const { session, input, logits } = await fixtureSession();
    try {
      const sd = io.readSafetensors(WEIGHTS);
      assert.equal(sd.tensors.get('layer2.shared.0.conv1.weight')!.dtype, 'F16');
      assert.equal(sd.tensors.get('bn1.num_batches_tracked')!.dtype, 'I64');
      const before = await session.forward(input);
      const r = io.loadStateDict(session, sd.tensors, { source: WEIGHTS });
      assert.deepEqual([r.missingKeys, r.unexpectedKeys], [[], []]);
      assert.equal(r.loaded.length, session.parameterNames().length);
      const ours = await session.forward(input);
      // float32 on both sides with different summation orders: ~1e-6 relative; a misplaced tensor is ~1e-1.
      const scale = Math.max(...logits.map(Math.abs));
      logits.forEach((v, i) => assert.ok(Math.abs(ours[i]! - v) <= 1e-4 * scale, `logit ${i}: crunet ${ours[i]}, PyTorch ${v}`));
      assert.ok(before.some((v, i) => Math.abs(v - logits[i]!) > 1e-2 * scale), 'the initial weights give other logits: the load did something');
    } finally {
      session.dispose();
    }
  });

  it('exports a state dict with the same keys, shapes and values, num_batches_tracked included (as int64 scalars)', async () => {
    const { session } = await fixtureSession();
    try {
      const sd = io.readSafetensors(WEIGHTS);
      io.loadStateDict(session, sd.tensors);
      const file = path.join(testTempDir('sd'), 'out.safetensors');
      await io.writeSafetensors(file, io.stateDict(session, { numBatchesTracked: 1234 }));
      const back = io.readSafetensors(file);
      assert.deepEqual([...back.tensors.keys()].sort(), [...sd.tensors.keys()].sort());
      for (const [name, t] of sd.tensors) {
        const b = back.tensors.get(name)!;
        assert.deepEqual(b.shape, t.shape, name);
        assert.equal(b.dtype, t.dtype === 'F16' ? 'F32' : t.dtype, name);
        assert.deepEqual(b.data, t.data, name); // float16 values are exact in float32
      }
    } finally {
      session.dispose();
    }
  });

  it('refuses missing, unexpected and mis-shaped tensors, naming every one, and changes nothing', async () => {
    const { session, input } = await fixtureSession();
    try {
      const sd = new Map(io.readSafetensors(WEIGHTS).tensors);
      sd.delete('fc.bias');
      sd.delete('layer2.shared.0.conv2.weight');
      sd.set('head.weight', { ...sd.get('fc.weight')! });
      sd.set('layer1.0.conv1.weight', { ...sd.get('layer1.0.conv1.weight')!, shape: [1, 2, 3] });
      const before = await session.forward(input);
      assert.throws(() => io.loadStateDict(session, sd, { source: 'w.safetensors' }), (e: Error) => {
        assert.ok(e instanceof io.StateDictError);
        for (const s of ['w.safetensors does not fit', 'missing key fc.bias', 'missing key layer2.shared.0.conv2.weight', 'unexpected key head.weight',
          'size mismatch for layer1.0.conv1.weight: the state dict has shape [1, 2, 3], the model [8, 32, 1, 1]', 'Nothing was loaded']) {
          assert.ok(e.message.includes(s), `${JSON.stringify(s)} in:\n${e.message}`);
        }
        return true;
      });
      assert.deepEqual(await session.forward(input), before);
      // strict: false still refuses a wrong shape (as PyTorch's load_state_dict)...
      assert.throws(() => io.loadStateDict(session, sd, { strict: false }), /size mismatch for layer1\.0\.conv1\.weight/);
      // ... and without it loads what matches, reporting the rest.
      sd.delete('layer1.0.conv1.weight');
      const r = io.loadStateDict(session, sd, { strict: false });
      assert.deepEqual(r.missingKeys.sort(), ['fc.bias', 'layer1.0.conv1.weight', 'layer2.shared.0.conv2.weight']);
      assert.deepEqual(r.unexpectedKeys, ['head.weight']);
      assert.equal(r.loaded.length, session.parameterNames().length - 3);
      assert.notDeepEqual(await session.forward(input), before);
      // An integer tensor in a parameter's place is refused by dtype.
      const ints = new Map(io.readSafetensors(WEIGHTS).tensors);
      ints.set('fc.bias', { ...ints.get('fc.bias')!, dtype: 'I64' });
      assert.throws(() => io.loadStateDict(session, ints), /fc\.bias: dtype I64 is not a floating-point type/);
      // Saved from nn.DataParallel: every name under 'module.'.
      const wrapped = new Map([...io.readSafetensors(WEIGHTS).tensors].map(([k, t]) => [`module.${k}`, t]));
      assert.throws(() => io.loadStateDict(session, wrapped), /every missing key is present with the prefix 'module\.'/);
    } finally {
      session.dispose();
    }
  });

  it("names crunet's resnet50, resnet101 and resnext50_32x4d parameters exactly as torchvision's state dicts (num_batches_tracked aside)", () => {
    const keys = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'torchvision-keys.json'), 'utf8')) as Record<string, [string, number[], string][]>;
    for (const name of ['resnet50', 'resnet101', 'resnext50_32x4d']) {
      const graph = models.create(name).graph.ir;
      const torch = keys[name]!;
      const ours = io.stateDictKeys(graph);
      assert.deepEqual(ours.map(([k, s]) => [k, s]), torch.map(([k, s]) => [k, s]), `${name}: same keys, shapes and order`);
      assert.deepEqual(ours.map(([, , d]) => d), torch.map(([, , d]) => (d === 'float32' ? 'F32' : d === 'int64' ? 'I64' : d)), `${name}: same dtypes`);
    }
  });
});
