import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compile, GraphBuilder, type Session } from '../lib/index.js';
import {
  latestCheckpoint,
  loadCheckpoint,
  MOMENTUM_PREFIX,
  nodeIO,
  readCheckpointInfo,
  restoreSession,
  saveCheckpoint,
  writeFileAtomic,
  writeFileAtomicSync,
  type AtomicIO,
  type CheckpointMeta,
} from '../lib/train/checkpoint.js';
import { encodeSafetensors, readSafetensors } from '../lib/train/safetensors.js';
import { epochOrder } from '../lib/data/rng.js';
import { createSchedule } from '../lib/train/schedule.js';

/** conv -> BN -> ReLU -> global pool -> linear -> loss. */
function smallNet(width = 8, fcName = 'fc') {
  const g = new GraphBuilder();
  const x = g.input('images', [3, 8, 8]);
  const y = g.input('labels', [], 'i32');
  let t = g.conv2d(x, { outChannels: width, kernel: 3, padding: 1, name: 'conv' });
  t = g.relu(g.batchNorm(t, { name: 'bn' }));
  const logits = g.linear(g.globalAvgPool(t), { outFeatures: 4, name: fcName });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) });
}

const batch = 4;
const images = Float32Array.from({ length: batch * 192 }, (_, i) => Math.sin(i * 0.37));
const labels = new Int32Array([0, 1, 2, 3]);
const optimizer = { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 };
const open = (seed: number, width = 8, fcName = 'fc') => compile(smallNet(width, fcName), { batchSize: batch, seed, optimizer });

function snapshot(s: Session) {
  const out: Record<string, Float32Array> = {};
  for (const n of s.parameterNames()) {
    out[n] = s.getParameter(n);
    if (s.graph.params.find((p) => p.name === n)!.trainable) out[MOMENTUM_PREFIX + n] = s.getOptimizerState(n);
  }
  return out;
}

const meta = (epoch: number, step: number): CheckpointMeta => ({
  model: { name: 'small-test', options: { width: 8 } },
  epoch,
  step,
  schedule: { type: 'cosine', lr: 0.1, epochs: 10, stepsPerEpoch: 5 },
  optimizer,
  seed: 42,
  dataset: 'synthetic',
});

describe('checkpoints', () => {
  let dir: string;
  let a: Session;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-ckpt-'));
    a = await open(1);
    for (let i = 0; i < 3; i++) await a.step(images, labels); // momentum and BN statistics move
  });
  after(() => {
    a.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const leftovers = () => fs.readdirSync(dir).filter((n) => n.includes('.tmp-'));

  it('saves parameters, BN statistics, momentum and metadata, and loads them back', async () => {
    const file = path.join(dir, 'a.safetensors');
    const info = await saveCheckpoint(file, a, meta(3, 15));
    assert.deepEqual(leftovers(), []);
    const ck = loadCheckpoint(file);
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
    assert.equal(ck.meta.format, 1);
    assert.equal(ck.meta.version, pkg.version);
    assert.deepEqual(ck.meta.model, { name: 'small-test', options: { width: 8 } });
    assert.equal(ck.meta.epoch, 3);
    assert.equal(ck.meta.step, 15);
    assert.deepEqual(ck.meta.schedule, meta(0, 0).schedule);
    assert.deepEqual(ck.meta.optimizer, optimizer);
    assert.equal(ck.meta.seed, 42);
    assert.equal(ck.meta.dataset, 'synthetic');
    assert.deepEqual(ck.meta.session, { device: 'cpu', batchSize: batch, precision: 'fp32' });
    assert.equal(ck.meta.optimizerState, true);
    assert.ok(!Number.isNaN(Date.parse(ck.meta.savedAt)));
    assert.deepEqual(info, ck.meta);
    // Every parameter by name (BN running statistics too), momentum only for trainable ones.
    const want = snapshot(a);
    assert.deepEqual([...ck.tensors.keys()].sort(), Object.keys(want).sort());
    assert.ok(ck.tensors.has('bn.running_mean') && ck.tensors.has('bn.running_var'));
    assert.ok(!ck.tensors.has(MOMENTUM_PREFIX + 'bn.running_mean'));
    for (const [k, v] of Object.entries(want)) assert.deepEqual(ck.tensors.get(k)!.data, v, k);
    assert.deepEqual(ck.tensors.get('conv.weight')!.shape, [8, 3, 3, 3]);
    assert.ok(ck.tensors.get(MOMENTUM_PREFIX + 'fc.weight')!.data.some((v) => v !== 0));
    assert.ok(ck.tensors.get('bn.running_var')!.data.some((v) => v !== 1));
    // The raw file is plain safetensors with the JSON under "crunet".
    assert.equal(readSafetensors(file).metadata.format, 'pt');
    assert.equal(JSON.parse(readSafetensors(file).metadata.crunet!).step, 15);
    assert.equal(readCheckpointInfo(file).epoch, 3);
  });

  it('restores into another session of the same model, which then trains identically', async () => {
    const file = path.join(dir, 'resume.safetensors');
    await saveCheckpoint(file, a, meta(3, 15));
    const b = await open(99);
    const r = restoreSession(b, loadCheckpoint(file));
    assert.deepEqual(r, { missing: [], unexpected: [], optimizerState: true });
    assert.deepEqual(snapshot(b), snapshot(a));
    const ra = await a.step(images, labels), rb = await b.step(images, labels);
    assert.equal(rb.loss, ra.loss);
    assert.deepEqual(snapshot(b), snapshot(a));
    b.dispose();
  });

  it('refuses a checkpoint of another model before touching the session, naming both and the mismatches', async () => {
    const file = path.join(dir, 'small.safetensors');
    await saveCheckpoint(file, a, meta(3, 15));
    const ck = loadCheckpoint(file);
    const wide = await open(5, 16);
    const before = snapshot(wide);
    assert.throws(() => restoreSession(wide, ck, { model: 'small-wide' }), (e: Error) => {
      assert.match(e.message, /restoreSession: .*small\.safetensors holds model 'small-test' \(\d+ parameters, epoch 3\), which does not fit model 'small-wide'/);
      assert.match(e.message, /conv\.weight is \[8,3,3,3\] in the checkpoint but \[16,3,3,3\] in the session/);
      assert.match(e.message, /and \d+ more\. The session was not changed\.$/);
      return true;
    });
    assert.deepEqual(snapshot(wide), before);
    wide.dispose();

    const renamed = await open(5, 8, 'head');
    const before2 = snapshot(renamed);
    assert.throws(() => restoreSession(renamed, ck), /which does not fit this session's graph .*head\.weight is missing from the checkpoint.*fc\.weight is in the checkpoint but not in the session/);
    // A shape mismatch is an error even when not strict; missing and unexpected names are not.
    const wide2 = await open(5, 16);
    assert.throws(() => restoreSession(wide2, ck, { strict: false }), /conv\.weight is \[8,3,3,3\] in the checkpoint/);
    wide2.dispose();
    assert.deepEqual(snapshot(renamed), before2);
    const r = restoreSession(renamed, ck, { strict: false });
    assert.deepEqual(r.missing.sort(), ['head.bias', 'head.weight', MOMENTUM_PREFIX + 'head.bias', MOMENTUM_PREFIX + 'head.weight']);
    assert.deepEqual(r.unexpected.sort(), ['fc.bias', 'fc.weight', MOMENTUM_PREFIX + 'fc.bias', MOMENTUM_PREFIX + 'fc.weight']);
    assert.deepEqual(renamed.getParameter('conv.weight'), a.getParameter('conv.weight'));
    assert.deepEqual(renamed.getParameter('head.weight'), before2['head.weight']);
    renamed.dispose();
  });

  it('saves without optimizer state on request; restoring it leaves momentum alone', async () => {
    const file = path.join(dir, 'weights.safetensors');
    await saveCheckpoint(file, a, meta(3, 15), { optimizerState: false });
    const ck = loadCheckpoint(file);
    assert.equal(ck.meta.optimizerState, false);
    assert.ok(![...ck.tensors.keys()].some((k) => k.startsWith(MOMENTUM_PREFIX)));
    const b = await open(7);
    assert.deepEqual(restoreSession(b, ck), { missing: [], unexpected: [], optimizerState: false });
    assert.deepEqual(b.getParameter('fc.weight'), a.getParameter('fc.weight'));
    assert.ok(b.getOptimizerState('fc.weight').every((v) => v === 0));
    b.dispose();
  });

  it('refuses damaged, foreign, newer and missing checkpoints with a message naming the file', async () => {
    const good = path.join(dir, 'good.safetensors');
    await saveCheckpoint(good, a, meta(1, 5));
    const bytes = fs.readFileSync(good);
    const put = (name: string, b: Uint8Array) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, b);
      return p;
    };
    const truncated = put('truncated.safetensors', bytes.subarray(0, bytes.length - 100));
    assert.throws(() => loadCheckpoint(truncated), new RegExp(`loadCheckpoint: ${truncated} is damaged or not a safetensors file: .*run past the end of the data section.*truncated \\(at byte offset \\d+\\)`));
    const garbage = Buffer.from(bytes);
    garbage.fill(0x41, 8, 40);
    const bad = put('badheader.safetensors', garbage);
    assert.throws(() => loadCheckpoint(bad), new RegExp(`loadCheckpoint: ${bad} is damaged .*does not start with '\\{'.*\\(at byte offset 8\\)`));
    const empty = put('empty.safetensors', new Uint8Array(0));
    assert.throws(() => loadCheckpoint(empty), /empty\.safetensors is damaged .*the file is 0 bytes long/);
    const foreign = put('foreign.safetensors', encodeSafetensors({ w: { shape: [1], data: new Float32Array(1) } }, { format: 'pt' }));
    assert.throws(() => loadCheckpoint(foreign), /foreign\.safetensors is a safetensors file but not a crunet checkpoint \(its metadata has no 'crunet' key; keys: format\)/);
    const newer = put('newer.safetensors', encodeSafetensors({}, { crunet: JSON.stringify({ ...meta(0, 0), format: 2, version: '9.0.0' }) }));
    assert.throws(() => loadCheckpoint(newer), /newer\.safetensors has checkpoint format 2 \(written by crunet 9\.0\.0\); this crunet \(.*\) reads format 1 and older/);
    const badJson = put('badjson.safetensors', encodeSafetensors({}, { crunet: '{"format": 1,' }));
    assert.throws(() => loadCheckpoint(badJson), /badjson\.safetensors is damaged: its 'crunet' metadata is not valid JSON/);
    for (const [i, lossScaler] of [{ scale: -1, growthTracker: 0 }, { scale: 8 }, { scale: 1e39, growthTracker: 0 }, { scale: 8, growthTracker: 0.5 }, null].entries()) {
      const badScaler = put(`scaler${i}.safetensors`, encodeSafetensors({}, { crunet: JSON.stringify({ ...meta(0, 0), format: 1, lossScaler }) }));
      assert.throws(() => loadCheckpoint(badScaler), new RegExp(`^Error: loadCheckpoint: ${badScaler} is damaged: its 'crunet' metadata field lossScaler is not \\{scale: a finite number > 0 in float32, growthTracker: an integer >= 0\\}, but ${JSON.stringify(lossScaler).replace(/[{}+.]/g, '\\$&')}$`));
    }
    assert.throws(() => loadCheckpoint(path.join(dir, 'nope.safetensors')), /loadCheckpoint: no checkpoint at .*nope\.safetensors/);
    // One bit flipped in the tensor data leaves a well-formed file: the checksum catches it.
    const flipped = Buffer.from(bytes);
    flipped[bytes.length - 3] ^= 0x10;
    const rot = put('bitrot.safetensors', flipped);
    assert.throws(() => loadCheckpoint(rot), new RegExp(`loadCheckpoint: ${rot} is damaged: its tensor data does not match the SHA-256 recorded when it was saved`));
    assert.match(loadCheckpoint(good).meta.tensorSha256!, /^[0-9a-f]{64}$/);
    // A changed digit in the metadata leaves valid JSON of the same length: its own checksum catches it.
    const edited = Buffer.from(bytes);
    const at = edited.indexOf('epoch\\":1,') + 'epoch\\":'.length;
    assert.ok(at > 20, 'the epoch is in the header');
    edited[at] = '7'.charCodeAt(0);
    const meddled = put('meddled.safetensors', edited);
    assert.throws(() => loadCheckpoint(meddled), new RegExp(`loadCheckpoint: ${meddled} is damaged: its 'crunet' metadata does not match the SHA-256`));
    assert.throws(() => readCheckpointInfo(meddled), /metadata does not match the SHA-256/);
  });

  it('checks the metadata it is given', async () => {
    const file = path.join(dir, 'meta.safetensors');
    await assert.rejects(saveCheckpoint(file, a, { ...meta(1, 1), model: {} as never }), /expected meta\.model to be \{name, options\}/);
    await assert.rejects(saveCheckpoint(file, a, { ...meta(1, 1), epoch: -1 }), /expected meta\.epoch to be a non-negative integer, but received -1/);
    await assert.rejects(saveCheckpoint(file, a, { ...meta(1, 1), step: 1.5 }), /expected meta\.step to be a non-negative integer/);
    assert.ok(!fs.existsSync(file));
  });

  describe('atomic replacement', () => {
    /** An io whose file writes fail with ENOSPC once `budget` bytes have been written. */
    function fullDisk(budget: number): AtomicIO {
      return {
        ...nodeIO,
        async open(file, flags) {
          const fh = await nodeIO.open(file, flags);
          return {
            async write(b, off, len) {
              if (len > budget) {
                throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
              }
              budget -= len;
              return fh.write(b, off, len);
            },
            sync: () => fh.sync(),
            close: () => fh.close(),
          };
        },
      };
    }

    it('on a full disk, keeps the previous checkpoint intact and removes the temporary file', async () => {
      const file = path.join(dir, 'full.safetensors');
      await saveCheckpoint(file, a, meta(1, 5));
      const before = fs.readFileSync(file);
      await a.step(images, labels); // the next save would differ
      for (const budget of [0, 100, 2000]) {
        await assert.rejects(saveCheckpoint(file, a, meta(2, 10), { io: fullDisk(budget) }), (e: NodeJS.ErrnoException) => {
          assert.equal(e.code, 'ENOSPC');
          assert.match(e.message, new RegExp(`could not write ${file} \\(ENOSPC: no space left on device, write\\); the previous file, if any, is unchanged`));
          return true;
        });
        assert.deepEqual(fs.readFileSync(file), before);
        assert.deepEqual(leftovers(), []);
        assert.equal(loadCheckpoint(file).meta.epoch, 1);
      }
    });

    it('with a real ENOSPC from the kernel (/dev/full)', async function () {
      if (!fs.existsSync('/dev/full')) this.skip(); // Linux only
      const file = path.join(dir, 'devfull.safetensors');
      await saveCheckpoint(file, a, meta(1, 5));
      const before = fs.readFileSync(file);
      let tmp = '';
      const io: AtomicIO = {
        ...nodeIO,
        async open(f, flags) {
          tmp = f;
          const real = await nodeIO.open(f, flags); // the temporary file exists, as on a real disk
          const full = await fs.promises.open('/dev/full', 'w');
          return { write: (b, o, l) => full.write(b, o, l), sync: () => real.sync(), close: async () => { await full.close(); await real.close(); } };
        },
      };
      await assert.rejects(saveCheckpoint(file, a, meta(2, 10), { io }), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC' && /could not write .*devfull\.safetensors \(ENOSPC/.test(e.message));
      assert.ok(tmp.includes('.devfull.safetensors.tmp-'), tmp);
      assert.ok(!fs.existsSync(tmp));
      assert.deepEqual(fs.readFileSync(file), before);
      assert.deepEqual(leftovers(), []);
    });

    it('when fsync, rename or the body itself fails, the previous file stays', async () => {
      const file = path.join(dir, 'steps.txt');
      fs.writeFileSync(file, 'old');
      const fail = (what: string) => async () => {
        throw Object.assign(new Error(`${what} failed`), { code: 'EIO' });
      };
      const failingSync: AtomicIO = {
        ...nodeIO,
        async open(f, flags) {
          const fh = await nodeIO.open(f, flags);
          return { write: (b, o, l) => fh.write(b, o, l), sync: fail('fsync'), close: () => fh.close() };
        },
      };
      const body = async (sink: { write(b: Uint8Array): Promise<void> }) => sink.write(Buffer.from('new'));
      await assert.rejects(writeFileAtomic(file, body, failingSync), /could not write .*steps\.txt \(EIO: fsync failed\)/);
      await assert.rejects(writeFileAtomic(file, body, { ...nodeIO, rename: fail('rename') }), /could not write .*steps\.txt \(EIO: rename failed\)/);
      await assert.rejects(writeFileAtomic(file, async () => { throw new Error('serialising failed'); }), /could not write .*steps\.txt \(serialising failed\)/);
      assert.equal(fs.readFileSync(file, 'utf8'), 'old');
      assert.deepEqual(leftovers(), []);
      await writeFileAtomic(file, body);
      assert.equal(fs.readFileSync(file, 'utf8'), 'new');
    });

    it('with real file-system errors (the target is a directory), async and sync', async () => {
      const target = path.join(dir, 'a-directory');
      fs.mkdirSync(target);
      fs.writeFileSync(path.join(target, 'inside'), 'x');
      await assert.rejects(writeFileAtomic(target, async (s) => s.write(Buffer.from('data'))), /could not write .*a-directory \((EISDIR|ENOTEMPTY|EEXIST)/);
      assert.throws(() => writeFileAtomicSync(target, 'data'), /could not write .*a-directory \((EISDIR|ENOTEMPTY|EEXIST)/);
      assert.throws(() => writeFileAtomicSync(path.join(dir, 'no-such-dir', 'f.svg'), 'data'), /could not write .*f\.svg \(ENOENT/);
      assert.deepEqual(leftovers(), []);
      assert.deepEqual(fs.readdirSync(target), ['inside']);
      const svg = path.join(dir, 'plot.svg');
      writeFileAtomicSync(svg, '<svg/>');
      writeFileAtomicSync(svg, '<svg></svg>');
      assert.equal(fs.readFileSync(svg, 'utf8'), '<svg></svg>');
    });
  });

  it('a run stopped after an epoch and resumed from its checkpoint ends exactly where an uninterrupted one does', async () => {
    // 16 samples, batch 4: 4 steps per epoch; shuffled under (seed, epoch) as the DataLoader does, lr
    // from a schedule, 3 epochs. The seed in the checkpoint is all the random state a resume needs.
    const n = 16, spe = n / batch, epochs = 3;
    const data = Float32Array.from({ length: n * 192 }, (_, i) => Math.cos(i * 0.11));
    const ys = Int32Array.from({ length: n }, (_, i) => i % 4);
    const schedule = createSchedule({ type: 'cosine', lr: 0.1, epochs, warmup: { steps: 2 } }, spe);
    async function runEpochs(s: Session, seed: number, from: number, to: number) {
      const x = new Float32Array(batch * 192), y = new Int32Array(batch);
      for (let e = from; e < to; e++) {
        const order = epochOrder(n, seed, e, true);
        for (let b = 0; b < spe; b++) {
          for (let k = 0; k < batch; k++) {
            const j = order[b * batch + k]!;
            x.set(data.subarray(j * 192, (j + 1) * 192), k * 192);
            y[k] = ys[j]!;
          }
          await s.step(x, y, { lr: schedule.lrAt(e * spe + b) });
        }
      }
    }
    const whole = await open(3);
    await runEpochs(whole, 11, 0, epochs);

    const first = await open(3);
    await runEpochs(first, 11, 0, 1);
    const file = path.join(dir, 'resume-run.safetensors');
    await saveCheckpoint(file, first, { model: { name: 'small-test' }, epoch: 1, step: spe, schedule: schedule.config, optimizer, seed: 11 });
    first.dispose();

    const resumed = await open(1234); // other initial weights: all must come from the checkpoint
    const ck = loadCheckpoint(file);
    restoreSession(resumed, ck);
    const again = createSchedule(ck.meta.schedule!);
    assert.equal(again.lrAt(ck.meta.step), schedule.lrAt(spe));
    await runEpochs(resumed, ck.meta.seed!, ck.meta.epoch, epochs);
    assert.deepEqual(snapshot(resumed), snapshot(whole));
    resumed.dispose();
    whole.dispose();
  });

  describe('AdamW, the moving average and the update count', () => {
    const adamw = { type: 'adamw' as const, lr: 0.01, betas: [0.85, 0.99] as const, weightDecay: 0.02, clipGradNorm: 0.5 };
    const openAdamw = (seed: number, ema = true) => compile(smallNet(), { batchSize: batch, seed, optimizer: adamw, ...(ema ? { ema: { decay: 0.9, warmup: true } } : {}) });
    /** Every parameter, both state buffers, the moving average and the update count. */
    function fullState(s: Session) {
      const out: Record<string, Float32Array | number> = { updates: s.updates };
      for (const n of s.parameterNames()) {
        out[n] = s.getParameter(n);
        if (s.ema) out[`ema.${n}`] = s.getEma(n);
        if (!s.graph.params.find((p) => p.name === n)!.trainable) continue;
        for (const b of s.optimizerStateNames) out[`${b}.${n}`] = s.getOptimizerState(n, b);
      }
      return out;
    }
    const stepsOf = async (s: Session, from: number, to: number) => {
      for (let k = from; k < to; k++) {
        const x = images.map((v, i) => Math.sin(v * (k + 1) + i * 1e-3));
        await s.step(x, labels, { lr: 0.01 * (1 + k), accumulate: k % 3 === 1 });  // accumulation too, ended before the save
      }
    };

    it('a run saved and resumed ends bit for bit where an uninterrupted one does (state buffers, EMA, update count)', async () => {
      const whole = await openAdamw(3);
      await stepsOf(whole, 0, 9);
      const first = await openAdamw(3);
      await stepsOf(first, 0, 6);
      const file = path.join(dir, 'adamw.safetensors');
      await saveCheckpoint(file, first, { ...meta(1, 4), optimizer: adamw });
      first.dispose();
      const ck = loadCheckpoint(file);
      assert.equal(ck.meta.optimizerType, 'adamw');
      assert.equal(ck.meta.updates, 4);
      assert.equal(ck.meta.emaState, true);
      assert.ok(ck.tensors.has('optimizer.exp_avg_sq.conv.weight') && ck.tensors.has('ema.bn.running_var'));
      const resumed = await openAdamw(1234);
      assert.deepEqual(restoreSession(resumed, ck), { missing: [], unexpected: [], optimizerState: true, ema: 'restored' });
      await stepsOf(resumed, 6, 9);
      assert.deepEqual(fullState(resumed), fullState(whole));
      resumed.dispose();
      whole.dispose();
    });

    it("refuses another optimizer's state and an incomplete moving average, naming the tensor, and changes nothing", async () => {
      const sgdFile = path.join(dir, 'sgd-state.safetensors');
      await saveCheckpoint(sgdFile, a, meta(3, 15));
      const s = await openAdamw(5);
      await stepsOf(s, 0, 1);
      const before = fullState(s);
      assert.throws(() => restoreSession(s, loadCheckpoint(sgdFile)),
        /optimizer\.momentum\.conv\.weight \(the checkpoint's optimizer is sgd, the session's adamw\) is in the checkpoint but not in the session.*The session was not changed\.$/);
      // Weights alone are fine: the optimizer state is not asked for, the moving average starts from them.
      const r = restoreSession(s, loadCheckpoint(sgdFile), { optimizerState: false });
      assert.equal(r.ema, 'initialised');
      assert.deepEqual(s.getEma('fc.weight'), a.getParameter('fc.weight'));
      assert.deepEqual(s.getOptimizerState('fc.weight'), before['exp_avg.fc.weight']);  // not restored: still its own
      s.dispose();

      const t = await openAdamw(6);
      await stepsOf(t, 0, 1);
      const file = path.join(dir, 'adamw-ema.safetensors');
      await saveCheckpoint(file, t, meta(1, 1));
      const ck = loadCheckpoint(file);
      ck.tensors.delete('ema.fc.bias');
      const u = await openAdamw(7);
      const untouched = fullState(u);
      assert.throws(() => restoreSession(u, ck), /ema\.fc\.bias is missing from the checkpoint.*The session was not changed\.$/);
      assert.deepEqual(fullState(u), untouched);
      t.dispose();
      u.dispose();
    });
  });

  it('latestCheckpoint picks the largest step, skipping damaged, foreign and temporary files', async () => {
    const sub = path.join(dir, 'run');
    fs.mkdirSync(sub);
    assert.equal(latestCheckpoint(sub), undefined);
    assert.equal(latestCheckpoint(path.join(dir, 'missing')), undefined);
    await saveCheckpoint(path.join(sub, 'epoch-2.safetensors'), a, meta(2, 10));
    await saveCheckpoint(path.join(sub, 'epoch-10.safetensors'), a, meta(10, 50));
    await saveCheckpoint(path.join(sub, 'epoch-9.safetensors'), a, meta(9, 45));
    const ten = fs.readFileSync(path.join(sub, 'epoch-10.safetensors'));
    fs.writeFileSync(path.join(sub, 'epoch-11.safetensors'), ten.subarray(0, 1000)); // damaged
    fs.writeFileSync(path.join(sub, '.epoch-12.safetensors.tmp-1-abc'), ten);
    fs.writeFileSync(path.join(sub, 'weights.safetensors'), encodeSafetensors({}, { format: 'pt' }));
    fs.writeFileSync(path.join(sub, 'notes.txt'), 'hi');
    assert.equal(latestCheckpoint(sub), path.join(sub, 'epoch-10.safetensors'));
  });
});
