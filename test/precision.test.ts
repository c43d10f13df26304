// Compile's precision: a precision the device cannot compute in is an Error naming the device, the
// precision, why, and what the device supports; never a silent fp32 (docs/ARCHITECTURE.md, "Precision").
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { buildInfo, compile, devices } from '../lib/index.js';
import { loadCheckpoint, restoreSession, saveCheckpoint } from '../lib/train/checkpoint.js';
import { smallNet } from './support/small-net.js';
import { removeTestTempDirs, testTempDir } from './support/temp.js';

// What oneDNN dispatches here; native bf16 needs one of these (AVX512_BF16 or AMX).
const isa = buildInfo().onednn.isa;
const nativeBf16 = isa === 'avx512_core_bf16' || isa === 'avx512_core_amx';

/** The rejection of compile(), checked to be a plain Error (not an argument error) matching `re`. */
async function refused(opts: Parameters<typeof compile>[1], re: RegExp) {
  await assert.rejects(compile(smallNet(), opts), (e: Error) => {
    assert.equal(e.constructor, Error, `expected an Error, but received a ${e.constructor.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

describe('precision', () => {
  afterEach(removeTestTempDirs);
  it(`bf16 on this CPU (oneDNN ISA ${isa}) is refused with the reason`, async () => {
    if (nativeBf16) {
      // The device could: what is missing is crunet's bf16 graph, and the error says so.
      await refused({ batchSize: 2, precision: 'bf16' }, /^compile: precision bf16 on device 'cpu': crunet cannot run a graph in bf16 yet; use fp32$/);
    } else {
      await refused({ batchSize: 2, precision: 'bf16' }, new RegExp(
        "^compile: device 'cpu' cannot compute in bf16: it needs a CPU with native bf16 instructions \\(AVX512_BF16 or AMX; " +
          `oneDNN ISA avx512_core_bf16 or avx512_core_amx\\), and oneDNN dispatches ${isa} on this one; it supports fp32$`));
    }
  });

  it('fp16 on the CPU is refused: oneDNN has no fp16 training kernels there', async () => {
    await refused({ batchSize: 2, precision: 'fp16' }, /^compile: device 'cpu' cannot compute in fp16: oneDNN 2.6 has no fp16 training kernels for CPUs; it supports fp32$/);
  });

  it('CUDA refuses bf16 and fp16 until its kernels exist', async function () {
    if (!devices().some((d) => d.type === 'cuda')) this.skip();
    for (const precision of ['bf16', 'fp16'] as const) {
      await refused({ batchSize: 2, device: 'cuda:0', precision }, new RegExp(`^compile: device 'cuda:0' cannot compute in ${precision}: this backend has no ${precision} kernels yet; it supports fp32$`));
    }
  });

  it('fp32 compiles and reports its precision', async () => {
    using s = await compile(smallNet(), { batchSize: 2, precision: 'fp32' });
    assert.equal(s.precision, 'fp32');
  });

  it("checkpoint metadata copies the session's precision (a session relabelled bf16: no bf16 session compiles here); such a checkpoint loads into an fp32 session", async () => {
    const file = path.join(testTempDir('precision'), 'ck.safetensors');
    using a = await compile(smallNet(), { batchSize: 2, seed: 5 });
    // Not a bf16 run: an fp32 session whose precision property is overwritten, which tests only that
    // saveCheckpoint copies the property into the metadata and that restoreSession accepts the label.
    // Master weights and optimizer state are fp32 in every precision, so a real bf16 checkpoint would
    // differ from this one only in that label.
    Object.defineProperty(a, 'precision', { value: 'bf16' });
    const info = await saveCheckpoint(file, a, { model: { name: 'small', options: {} }, epoch: 1, step: 1 });
    assert.equal(info.session.precision, 'bf16');
    const ckpt = loadCheckpoint(file);
    assert.equal(ckpt.meta.session.precision, 'bf16');
    using b = await compile(smallNet(), { batchSize: 2, seed: 6, precision: 'fp32' });
    restoreSession(b, ckpt);
    for (const name of a.parameterNames()) assert.deepEqual(b.getParameter(name), a.getParameter(name), name);
  });
});
