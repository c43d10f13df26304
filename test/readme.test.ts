import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { transformSync } from 'esbuild';
import * as crunet from '../lib/index.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

describe('README', () => {
  afterEach(removeTestTempDirs);
  it('runs the API example as written', async () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## The API in ten lines'));
    const code = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
    assert.match(code, /^import \{ GraphBuilder, compile \} from 'crunet';/);
    // The block's one import becomes a parameter; its top-level awaits run inside an async function.
    const body = code.replace(/^import .*\n/, '') + '\nreturn { loss, correct };';
    const run = new Function('crunet', `const { GraphBuilder, compile } = crunet; return (async () => {\n${body}\n})();`);
    const r = await run(crunet);
    assert.ok(Number.isFinite(r.loss) && r.loss > 0);
    assert.ok(r.correct >= 0 && r.correct <= 32);
  });

  (fs.existsSync('/usr/share/datasets/fashion-mnist') ? it : it.skip)('runs the training example as written (checkpoint in a temporary directory)', async function () {
    this.timeout(600_000);
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Training from TypeScript'));
    const code = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
    assert.match(code, /^import \{ compile, data, models, train \} from 'crunet';/);
    const dir = testTempDir('readme');
    const body = code.replace(/^import .*\n/, '').replaceAll("'runs/api/checkpoint.safetensors'", 'ckptFile') + '\nreturn { top1, epochs };';
    // The block is TypeScript: esbuild (tsx's) strips the types, nothing else.
    const js = transformSync(`return (async () => {\n${body}\n})();`, { loader: 'ts' }).code;
    const run = new Function('crunet', 'ckptFile', 'console', `const { compile, data, models, train } = crunet;\n${js}`);
    const lines: string[] = [];
    const file = path.join(dir, 'checkpoint.safetensors');
    const r = await run(crunet, file, { log: (s: string) => lines.push(s) });
    assert.equal(r.epochs.length, 2);
    assert.equal(lines.length, 2);
    assert.ok(r.top1 > 0.5, `two short epochs learn something (top-1 ${r.top1})`);
    assert.equal(crunet.train.loadCheckpoint(file).meta.epoch, 2);
  });
});
