// Exact resume as the README's recipe runs it: `crunet train --erase 0.5 --label-smoothing 0.1 --seed 0`
// (--erase turns augmentation on), split by --stop-after-epoch and continued with --resume, twice, must
// log the same losses and end with the same parameters, momentum and BN statistics, bit for bit, as the
// uninterrupted run. On 128 Fashion-MNIST images for 3 epochs.

import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crunet } from './support/cli-capture.js';
import { loadCheckpoint } from '../lib/train/index.js';
import { writeIdxSet } from './fixtures/data.js';


describe('exact resume with the README recipe (augmentation, --erase, --label-smoothing)', () => {
  let root: string;
  before(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-resume-recipe-'))));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('stopped after epochs 1 and 2 and resumed: the same losses and the same final tensors as one uninterrupted run', async () => {
    const recipe = ['--erase', '0.5', '--label-smoothing', '0.1', '--seed', '0'];
    // A narrower crunet_small keeps it to seconds; the recipe's flags are what matters here.
    const data = writeIdxSet(path.join(root, 'data'), { n: 128, m: 32, h: 28, w: 28, gz: true }).dir;
    const tiny = ['--dataset', `fashion-mnist:${data}`, '--epochs', '3', '--batch-size', '32', '--model-options', '{"width":16,"D":32}', '--json'];
    const whole = path.join(root, 'whole'), split = path.join(root, 'split');
    const ok = (r: { code: number; err: string }, what: string) => assert.equal(r.code, 0, `${what}: ${r.err}`);
    ok(await crunet('train', ...recipe, ...tiny, '--out', whole), 'uninterrupted run');
    ok(await crunet('train', ...recipe, ...tiny, '--out', split, '--stop-after-epoch', '1'), 'first part');
    ok(await crunet('train', '--resume', split, '--stop-after-epoch', '2', '--json'), 'second part');
    const last = await crunet('train', '--resume', split, '--json');
    ok(last, 'third part');
    assert.match(last.err, /resuming from .* after epoch 2 \(step 8\)/);

    const ckpt = (d: string) => loadCheckpoint(path.join(d, 'checkpoint.safetensors'));
    const a = ckpt(whole), b = ckpt(split);
    const trace = (d: string) => fs.readFileSync(path.join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      .filter((l) => l.type !== 'run').map(({ type, epoch, step, lr, loss, acc, top5 }) => ({ type, epoch, step, lr, loss, acc, top5 }));
    const steps = trace(whole);
    assert.ok(steps.filter((l) => l.type === 'epoch').length === 3, `three epoch lines in ${JSON.stringify(steps)}`);
    assert.deepEqual(trace(split), steps, 'metrics.jsonl: every step and epoch line');
    assert.deepEqual([...b.tensors.keys()].sort(), [...a.tensors.keys()].sort());
    assert.ok([...a.tensors.keys()].some((k) => k.startsWith('optimizer.momentum.')), 'the momentum buffers are compared too');
    const differ = [...a.tensors].filter(([k, t]) => {
      const u = b.tensors.get(k)!.data;
      return t.data.length !== u.length || t.data.some((v, i) => !Object.is(v, u[i]));
    }).map(([k]) => k);
    assert.deepEqual(differ, [], 'tensors that differ from the uninterrupted run');
    assert.deepEqual(b.meta.augmentation, { augment: true, erase: 0.5 }, 'the recipe\'s augmentation is what ran');
    assert.equal(b.meta.labelSmoothing, 0.1);
  });
});
