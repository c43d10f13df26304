// Compile's tensor-size check (native/core/executor.cc, check_tensor_elements) with the CUDA backend's
// limit, 2^31 - 1 elements (cuDNN's legacy API describes tensors with int dimensions and strides), on a
// machine without a GPU: the addon runs the check alone on the inferred shapes, as compile does before
// building any kernel. test/gpu/errors.test.ts checks the same message through compile on a GPU.
import { strict as assert } from 'node:assert';
import { native } from '../lib/engine/native.js';
import { GraphBuilder } from '../lib/graph/index.js';

const INT32_MAX = 2 ** 31 - 1;

function wide(inChannels: number, outChannels: number) {
  const g = new GraphBuilder();
  const x = g.input('images', [inChannels, 2048, 2048]);
  const y = g.input('labels', [], 'i32');
  const c = g.conv2d(x, { outChannels, kernel: 1, name: 'wide' });
  const logits = g.linear(g.globalAvgPool(c), { outFeatures: 4, name: 'fc' });
  return g.build({ outputs: [logits], loss: g.softmaxCrossEntropy(logits, y) }).ir;
}

describe('tensor size limit at compile (CUDA: 2^31 - 1 elements)', () => {
  it('refuses an input of 2^31 elements, naming the node, the shape and the limit', () => {
    assert.throws(() => native().checkTensorElements(wide(16, 16), 32, INT32_MAX, 'cuda:0'), {
      message: 'node wide (conv2d): input [32,16,2048,2048] has 2147483648 elements, over the 2147483647 one tensor may have on cuda:0; use a smaller batch size',
    });
  });

  it('refuses an output over the limit when the inputs are under it', () => {
    assert.throws(() => native().checkTensorElements(wide(8, 16), 32, INT32_MAX, 'cuda:0'),
      { message: /^node wide \(conv2d\): output \[32,16,2048,2048\] has 2147483648 elements/ });
  });

  it('accepts the same graph one sample under the limit, and any size without a limit (the CPU)', () => {
    native().checkTensorElements(wide(16, 16), 31, INT32_MAX, 'cuda:0');
    native().checkTensorElements(wide(16, 16), 1024, Number.MAX_SAFE_INTEGER, 'cpu');
  });
});
