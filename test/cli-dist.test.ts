// The shipped command: `node bin/crunet.js` running the compiled dist/ (not lib/ through tsx), as a user
// or CI runs it: exit codes and outputs of info, summary, a usage error, a 1-epoch train on fixture
// data and eval of its checkpoint.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { create } from '../lib/models/index.js';
import { removeDir, tempDir, writeIdxSet } from './fixtures/data.js';
import { assertDistCurrent, node } from './support/spawn.js';

const crunet = (...args: string[]) => node(['bin/crunet.js', ...args]);

describe('bin/crunet.js from dist/', () => {
  let dir: string;
  before(() => {
    assertDistCurrent();
    dir = tempDir('dist');
  });
  after(() => dir && removeDir(dir));

  it('info --json: exit 0, names the build system and the CPU', () => {
    const r = crunet('info', '--json');
    assert.equal(r.code, 0, r.err);
    const info = JSON.parse(r.out);
    assert.match(info.build.buildSystem, /^(cmake-js|node-gyp)$/);
    assert.ok(info.devices.some((d: { type: string }) => d.type === 'cpu'));
  });

  it("--version prints package.json's version", () => {
    const r = crunet('--version');
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version);
  });

  it('summary --json: exit 0, the parameter count the model library gives', () => {
    const r = crunet('summary', 'crunet_small', '--json');
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).params, create('crunet_small').parameterCount());
  });

  it('a usage error exits 2 with the hint; an unknown model exits 1', () => {
    const r = crunet('train', '--epochz', '3');
    assert.equal(r.code, 2);
    assert.match(r.err, /Unknown option '--epochz'.*\n.*crunet train --help/);
    assert.equal(r.out, '');
    const m = crunet('summary', 'resnet51');
    assert.equal(m.code, 1);
    assert.match(m.err, /unknown model "resnet51"/);
  });

  it('trains 1 epoch on fixture IDX data and evaluates the checkpoint: exit 0, the same test accuracy', () => {
    const data = writeIdxSet(path.join(dir, 'idx'), { n: 64, m: 32, h: 28, w: 28 }).dir;
    const out = path.join(dir, 'run');
    const t = crunet('train', '--dataset', `mnist:${data}`, '--epochs', '1', '--batch-size', '16', '--model-options', '{"width":16,"D":32}',
      '--seed', '1', '--out', out, '--json');
    assert.equal(t.code, 0, t.err);
    const r = JSON.parse(t.out.trim().split('\n').at(-1)!);
    assert.equal(r.epoch, 1);
    assert.ok(Number.isFinite(r.testLoss), t.out);
    const e = crunet('eval', '--checkpoint', out, '--batch-size', '16', '--json');
    assert.equal(e.code, 0, e.err);
    assert.equal(JSON.parse(e.out).top1, r.top1);
  });
});
