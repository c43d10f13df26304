// Child process for test/hardening-native.test.ts: what it checks would kill the test process itself
// under the old behaviour (an abort from an escaping C++ exception, a SIGSEGV at exit during a step).
//   fault <entry>...  (with CRUNET_TEST_FAULT=<entries>) calls each entry point in turn; prints, per entry,
//                     whether it threw and the Error's message, as one JSON line
//   exit-during-step  starts a long step, then calls process.exit(3) while it runs
//   throw-during-step starts a long step, then throws an uncaught Error while it runs
import { compile, type Session } from '../../lib/index.js';
import { smallNet } from './small-net.js';
import { native } from '../../lib/engine/native.js';

/** Zeros of a parameter's size (without getParameter, which may be a faulted entry point too). */
function zeros(s: Session, name: string): Float32Array {
  return new Float32Array(s.graph.params.find((q) => q.name === name)!.shape.reduce((a, b) => a * b, 1));
}

async function callEntry(entry: string): Promise<void> {
  const addon = native();
  switch (entry) {
    case 'buildInfo': return void addon.buildInfo();
    case 'devices': return void addon.devices();
    case 'primitiveSeconds': return void addon.primitiveSeconds();
    case 'setNumThreads': return void addon.setNumThreads(1);
  }
  const s: Session = await compile(smallNet({ width: 4, size: 4, extraConvs: 4 }), { batchSize: 2, optimizer: { lr: 0.1, momentum: 0.9 }, ema: { decay: 0.9 } });
  const images = new Float32Array(2 * 3 * 16).fill(0.5);
  const labels = new Int32Array([0, 1]);
  const p = s.parameterNames()[0]!;
  switch (entry) {
    case 'step': await s.step(images, labels); break;
    case 'forward': await s.forward(images); break;
    case 'gradients': await s.gradients(images, new Float32Array(8)); break;
    case 'getParameter': s.getParameter(p); break;
    case 'setParameter': s.setParameter(p, zeros(s, p)); break;
    case 'getOptimizerState': s.getOptimizerState(p); break;
    case 'setOptimizerState': s.setOptimizerState(p, zeros(s, p)); break;
    case 'getUpdates': void s.updates; break;
    case 'setUpdates': s.updates = 3; break;
    case 'getEma': s.getEma(p); break;
    case 'setEma': s.setEma(p, zeros(s, p)); break;
    case 'setOptimizer': s.setOptimizer({ lr: 0.2 }); break;
    case 'lossScaler': s.lossScaler(); break;
    case 'setLossScaler': s.setLossScaler({ scale: 2, growthTracker: 0 }); break;
    case 'memory': s.memory(); break;
    case 'profile': s.profile(); break;
    case 'resetProfile': s.resetProfile(); break;
    case 'setProfiling': s.setProfiling(true); break;
    case 'values': (s as unknown as { handle: { values(): unknown } }).handle.values(); break;
    case 'dispose': s.dispose(); break;
    default: throw new Error(`hardening-child: unknown entry point ${entry}`);
  }
}

async function main(): Promise<void> {
  const mode = process.argv[2];
  if (mode === 'fault') {
    const results: Record<string, string | null> = {};
    for (const entry of process.argv.slice(3)) {
      try {
        await callEntry(entry);
        results[entry] = null;
      } catch (e) {
        results[entry] = (e as Error).message;
      }
    }
    console.log(JSON.stringify(results));
    return;
  }
  // A step long enough (hundreds of ms) that the exit lands while the engine thread is inside a kernel.
  const batch = 16;
  const s = await compile(smallNet({ width: 32, size: 32, extraConvs: 4 }), { batchSize: batch });
  const images = new Float32Array(batch * 3 * 32 * 32).fill(0.25);
  const labels = new Int32Array(batch);
  const t0 = Date.now();
  await s.step(images, labels);  // warm up (primitives created, memory touched), and measure a step
  const stepMs = Date.now() - t0;
  void s.step(images, labels).catch(() => {});
  // Exit a third of a step later: the engine thread is then inside the step's kernels.
  setTimeout(() => {
    if (mode === 'exit-during-step') process.exit(3);
    throw new Error('uncaught on purpose, during a step');
  }, Math.max(1, stepMs / 3));
}

void main();
