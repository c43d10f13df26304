// `crunet convert` and `crunet export` end to end on the PyTorch fixture (scripts/torch/make-fixtures.py):
// torch's state dict -> crunet checkpoint -> ONNX run by ONNX Runtime gives torch's logits, and the
// exported state dict holds torch's tensors again.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { crunet } from './support/cli-capture.js';
import { compile, io, models, train } from '../lib/index.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';


const FIXTURES = path.join(__dirname, 'fixtures', 'torch');
const WEIGHTS = path.join(FIXTURES, 'crunet_small-tiny.safetensors');
const EXPECTED = io.readSafetensors(path.join(FIXTURES, 'crunet_small-tiny.expected.safetensors'));
const MODEL = JSON.parse(EXPECTED.metadata.model!) as { name: string; options: Record<string, unknown> };

describe('crunet convert / export', function () {
  this.timeout(120_000);
  afterEach(removeTestTempDirs);

  it("convert -> export --onnx: ONNX Runtime computes PyTorch's logits; export --state-dict gives back PyTorch's tensors", async () => {
    const dir = testTempDir('io-cli');
    const ckpt = path.join(dir, 'ckpt.safetensors');
    const names = path.join(dir, 'names.txt');
    fs.writeFileSync(names, 'a\nb\nc\nd\n');
    const c = await crunet('convert', '--model', MODEL.name, '--model-options', JSON.stringify(MODEL.options), '--state-dict', WEIGHTS, '--out', ckpt, '--class-names', names);
    assert.equal(c.code, 0, c.err);
    assert.match(c.out, /loaded (\d+) of \1 parameters of crunet_small/);
    const meta = train.loadCheckpoint(ckpt).meta;
    assert.deepEqual(meta.classNames, ['a', 'b', 'c', 'd']);
    assert.equal(meta.preprocessing, undefined, 'a 3x16x16 model gets no torchvision preprocessing by default');

    const onnx = path.join(dir, 'm.onnx'), sdFile = path.join(dir, 'sd.safetensors');
    const e = await crunet('export', '--checkpoint', ckpt, '--onnx', onnx, '--state-dict', sdFile);
    assert.equal(e.code, 0, e.err);
    const input = EXPECTED.tensors.get('input')!, logits = EXPECTED.tensors.get('logits')!;
    const s = await ort.InferenceSession.create(fs.readFileSync(onnx));
    const r = (await s.run({ images: new ort.Tensor('float32', input.data, input.shape) }))[s.outputNames[0]!]!.data as Float32Array;
    const scale = Math.max(...logits.data.map(Math.abs));
    logits.data.forEach((v, i) => assert.ok(Math.abs(r[i]! - v) <= 1e-4 * scale, `logit ${i}: ONNX Runtime ${r[i]}, PyTorch ${v}`));

    const torch = io.readSafetensors(WEIGHTS).tensors, back = io.readSafetensors(sdFile).tensors;
    assert.deepEqual([...back.keys()].sort(), [...torch.keys()].sort());
    for (const [k, t] of torch) {
      if (k.endsWith('num_batches_tracked')) assert.deepEqual([back.get(k)!.dtype, back.get(k)!.shape], ['I64', []], k); // the checkpoint's step, 0 here
      else assert.deepEqual(back.get(k)!.data, t.data, k);
    }
  });

  it('converts a model whose last stage is 1x1 (training batch norm needs two values per channel)', async () => {
    const dir = testTempDir('io-cli');
    const options = { width: 8, classes: 4, inputSize: 4 };
    const source = await compile(models.create('resnet_small', options), { batchSize: 2, seed: 5 });
    const weights = path.join(dir, 'weights.safetensors');
    try {
      await io.writeSafetensors(weights, io.stateDict(source));
    } finally {
      source.dispose();
    }
    const ckpt = path.join(dir, 'ckpt.safetensors');
    const r = await crunet('convert', '--model', 'resnet_small', '--model-options', JSON.stringify(options), '--state-dict', weights, '--out', ckpt);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /loaded (\d+) of \1 parameters of resnet_small/);
    const back = path.join(dir, 'back.safetensors');
    assert.equal((await crunet('export', '--checkpoint', ckpt, '--state-dict', back)).code, 0);
    const a = io.readSafetensors(weights).tensors, b = io.readSafetensors(back).tensors;
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    for (const [k, t] of a) assert.deepEqual(b.get(k)!.data, t.data, k);
  });

  it('refuses a state dict of another model, listing every mismatch, and writes nothing', async () => {
    const dir = testTempDir('io-cli');
    const ckpt = path.join(dir, 'ckpt.safetensors');
    const r = await crunet('convert', '--model', 'resnet_small', '--model-options', '{"width":8,"classes":4,"inputSize":16}', '--state-dict', WEIGHTS, '--out', ckpt);
    assert.equal(r.code, 1);
    for (const s of [`${WEIGHTS} does not fit the model`, 'missing key layer2.0.conv1.weight', 'unexpected key layer2.shared.0.conv1.weight', 'size mismatch for layer1.0.conv2.weight: the state dict has shape [8, 1, 3, 3], the model [8, 8, 3, 3]', 'Nothing was loaded']) {
      assert.ok(r.err.includes(s), `${s} in:\n${r.err}`);
    }
    assert.ok(!fs.existsSync(ckpt));
    const pre = await crunet('convert', '--model', MODEL.name, '--model-options', JSON.stringify(MODEL.options), '--state-dict', WEIGHTS, '--out', ckpt, '--preprocessing', 'torchvision');
    assert.equal(pre.code, 2);
    assert.match(pre.err, /--preprocessing torchvision makes 3x224x224 inputs, but crunet_small takes 3x16x16/);
    const lenient = await crunet('convert', '--model', 'resnet_small', '--state-dict', WEIGHTS, '--out', ckpt, '--no-strict');
    assert.equal(lenient.code, 1, 'a wrong shape is refused even without strict');
    assert.match(lenient.err, /size mismatch for layer1\.0\.conv2\.weight/);
    assert.doesNotMatch(lenient.err, /missing key|unexpected key/, 'strict: false lists only the shapes as problems');
  });

  it('export names a target it cannot write and a file that is not a checkpoint', async () => {
    const dir = testTempDir('io-cli');
    const ckpt = path.join(dir, 'ckpt.safetensors');
    assert.equal((await crunet('convert', '--model', MODEL.name, '--model-options', JSON.stringify(MODEL.options), '--state-dict', WEIGHTS, '--out', ckpt)).code, 0);
    const target = path.join(dir, 'missing', 'm.onnx');
    const r = await crunet('export', '--checkpoint', ckpt, '--onnx', target);
    assert.equal(r.code, 1);
    assert.ok(r.err.includes(`could not write ${target}`) && r.err.includes('ENOENT'), r.err);
    const d = await crunet('export', '--checkpoint', ckpt, '--onnx', dir);
    assert.equal(d.code, 2);
    assert.ok(d.err.includes(`${dir} is a directory`), d.err);
    const notCkpt = await crunet('export', '--checkpoint', WEIGHTS, '--onnx', path.join(dir, 'x.onnx'));
    assert.equal(notCkpt.code, 1);
    assert.ok(notCkpt.err.includes(`${WEIGHTS} is a safetensors file but not a crunet checkpoint`), notCkpt.err);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['ckpt.safetensors']);
  });
});
