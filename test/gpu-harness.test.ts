// The GPU harness (scripts/gpu-bundle.sh, scripts/gpu-run.sh) tested before a GPU ever sees it: the CPU
// dry run (CRUNET_GPU_DRY_RUN=1) in a copy of what the device tool would send (tracked and untracked
// files that git does not ignore, plus the carried .gpu/), with a short deadline, one part failing and
// one hanging on purpose. Checks what the device tool's limits ask for: at most 8 files come back from
// $OUT, the tree that travels stays under 64 MiB, and every part is in the summary and the archive.
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const MODELS = ['crunet56', 'resnext50_32x4d', 'crunet_small'];
const PARTS = ['unpack', 'env', 'test-gpu', ...MODELS.flatMap((m) => [`bench-${m}`, `step-${m}`, `amp-${m}`])];
const MiB = 2 ** 20;

function treeBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += treeBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

interface SummaryLine { part: string; seconds: number; budget: number; status: string }

function parseSummary(text: string): SummaryLine[] {
  const out: SummaryLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\d+)s (\d+)s (ok|timeout|failed rc=\d+|skipped: .+)$/.exec(line);
    if (m) out.push({ part: m[1]!, seconds: Number(m[2]), budget: Number(m[3]), status: m[4]! });
  }
  return out;
}

describe('GPU harness: the CPU dry run of scripts/gpu-run.sh', function () {
  this.timeout(600000);
  let stage: string;
  let out: string;
  let summary: SummaryLine[];
  let summaryText: string;
  let rc: number | null;
  let stderr: string;
  let travels: number;
  // The whole dry run's deadline: unpacking the bundle with python's lzma took 13 s beside the suite and over
  // 30 s with a training job on the other core too; the rest of the budget is the hanging part's.
  const BUDGET = 75;

  before(function () {
    for (const f of ['build/Release/crunet.node', 'dist/lib/index.js'])
      if (!fs.existsSync(path.join(root, f))) assert.fail(`${f} is missing: build first (npm run build)`);
    stage = fs.mkdtempSync(path.join(os.tmpdir(), 'crunet-gpu-harness-'));
    out = path.join(stage, 'out');
    const tree = path.join(stage, 'tree');
    fs.mkdirSync(tree);
    // What the device tool sends: tracked and untracked-not-ignored files (node_modules is a link).
    const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) {
      const src = path.join(root, f);
      const st = fs.lstatSync(src, { throwIfNoEntry: false });
      if (!st) continue;  // deleted but still tracked
      fs.mkdirSync(path.dirname(path.join(tree, f)), { recursive: true });
      if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(src), path.join(tree, f));
      else fs.copyFileSync(src, path.join(tree, f));
    }
    // The bundle is packed here from node_modules and the build, which then stay behind, as on the device
    // (where this checkout's node_modules, a link to another worktree's, would dangle).
    if (!fs.existsSync(path.join(tree, 'node_modules'))) fs.symlinkSync(fs.realpathSync(path.join(root, 'node_modules')), path.join(tree, 'node_modules'));
    fs.cpSync(path.join(root, 'build', 'Release'), path.join(tree, 'build', 'Release'), {
      recursive: true, filter: (s) => fs.statSync(s).isDirectory() || /\.(node|so)$/.test(s),
    });
    fs.cpSync(path.join(root, 'dist'), path.join(tree, 'dist'), { recursive: true });
    const env = { ...process.env, CRUNET_GPU_DRY_RUN: '1', CRUNET_GPU_XZ_LEVEL: '0' };
    execFileSync('bash', ['scripts/gpu-bundle.sh'], { cwd: tree, env, stdio: ['ignore', 'ignore', 'inherit'] });
    fs.rmSync(path.join(tree, 'build'), { recursive: true });
    fs.rmSync(path.join(tree, 'dist'), { recursive: true });
    travels = treeBytes(tree);  // .gpu/ included; node_modules is a link
    const r = spawnSync('bash', ['scripts/gpu-run.sh', 'all'], {
      cwd: tree, encoding: 'utf8',
      env: {
        ...env, OUT: out, CRUNET_GPU_BUDGET_S: String(BUDGET),
        CRUNET_GPU_FAIL_PART: 'env', CRUNET_GPU_HANG_PART: 'bench-crunet56', CRUNET_GPU_NO_XZ: '1',
      },
    });
    rc = r.status;
    stderr = r.stderr;
    summaryText = fs.readFileSync(path.join(out, 'summary.txt'), 'utf8');
    summary = parseSummary(summaryText);
  });

  after(() => {
    if (stage) fs.rmSync(stage, { recursive: true, force: true });
  });

  it('travels under the device tool\'s 64 MiB (tree and bundle)', () => {
    assert.ok(travels > 10 * MiB, `the tree with .gpu/ is only ${travels} bytes`);  // the bundle is in it
    const bytes = travels;
    assert.ok(bytes < 64 * MiB, `the tree with .gpu/ is ${(bytes / MiB).toFixed(1)} MiB`);
  });

  it('exits 0 and leaves at most 8 files in $OUT: the archive and the summary', () => {
    assert.equal(rc, 0, `gpu-run.sh exited ${rc}: ${stderr}\n${summaryText}`);
    assert.deepEqual(fs.readdirSync(out).sort(), ['gpu-run.tar.gz', 'summary.txt']);
    for (const f of fs.readdirSync(out)) assert.ok(fs.statSync(path.join(out, f)).size < 16 * MiB, f);
  });

  it('names every part once, with its status, seconds and budget', () => {
    assert.deepEqual(summary.map((s) => s.part), PARTS, summaryText);
    assert.match(summaryText, /^total \d+s, exit 0$/m);
  });

  it('goes on past a part that fails: env failed on purpose, test:gpu after it ran (the skip line)', () => {
    const by = Object.fromEntries(summary.map((s) => [s.part, s]));
    assert.equal(by.unpack!.status, 'ok', summaryText);
    assert.equal(by.env!.status, 'failed rc=3', summaryText);
    assert.equal(by['test-gpu']!.status, 'ok', summaryText);
  });

  it('stops a hanging part at the deadline and skips what no longer fits', () => {
    const by = Object.fromEntries(summary.map((s) => [s.part, s]));
    const hung = by['bench-crunet56']!;
    assert.equal(hung.status, 'timeout', summaryText);
    assert.ok(hung.budget < BUDGET && hung.seconds <= hung.budget + 6, `bench-crunet56 ran ${hung.seconds}s on a ${hung.budget}s budget`);
    for (const p of PARTS.slice(PARTS.indexOf('step-crunet56')))
      assert.match(by[p]!.status, /^skipped: /, `${p}: ${by[p]!.status}`);
    const spent = summary.reduce((a, s) => a + s.seconds, 0);
    assert.ok(spent <= BUDGET + 6, `the parts took ${spent}s in all on a ${BUDGET}s deadline`);
  });

  it('packs every part\'s log and the summary into the one archive (readable with tar)', () => {
    const listed = execFileSync('tar', ['-tzf', path.join(out, 'gpu-run.tar.gz')], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const p of ['unpack', 'env', 'test-gpu', 'bench-crunet56']) assert.ok(listed.includes(`gpu-run/${p}.log`), `${p}.log in ${listed.join(', ')}`);
    assert.ok(listed.includes('gpu-run/summary.txt'));
    const testLog = execFileSync('tar', ['-xzOf', path.join(out, 'gpu-run.tar.gz'), 'gpu-run/test-gpu.log'], { encoding: 'utf8' });
    assert.match(testLog, /test:gpu: skipped: no NVIDIA device/);
    const envLog = execFileSync('tar', ['-xzOf', path.join(out, 'gpu-run.tar.gz'), 'gpu-run/env.log'], { encoding: 'utf8' });
    assert.match(envLog, /failing on purpose: CRUNET_GPU_FAIL_PART=env/);
    const unpackLog = execFileSync('tar', ['-xzOf', path.join(out, 'gpu-run.tar.gz'), 'gpu-run/unpack.log'], { encoding: 'utf8' });
    assert.match(unpackLog, /unpacked with python3's lzma/);  // what a machine without xz does
  });
});
