import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crunet from '../lib/index.js';

describe('README', () => {
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
});
