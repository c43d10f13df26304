// Inference for people: a checkpoint in, class probabilities for image files or buffers out.
//
//   const p = await createPredictor('runs/fashion/checkpoint.safetensors');
//   const [r] = await p.predict(['shoe.png']);   // r.top[0] = { index: 9, name: 'Ankle boot', probability: 0.75 }
//   p.dispose();
//
// The checkpoint rebuilds its own model; its recorded preprocessing (CheckpointMeta.preprocessing) turns
// the images into inputs and its class names (classNames, written by `crunet train` and `crunet convert`)
// name the outputs; a checkpoint without names gets the class indices as names.
import type { Preprocessing } from '../data/dataset.js';
import { compile, type Session } from '../engine/session.js';
import { fromJSON, type Model } from '../models/index.js';
import { loadCheckpoint, restoreSession, type Checkpoint } from '../train/checkpoint.js';
import { describeInput, preprocessImage, type ImageInput, type ImageLimits } from './preprocess.js';

export interface PredictorOptions extends ImageLimits {
  /** 'cpu' (default) or a CUDA device. */
  device?: string;
  /** Images per forward pass (default 16); predict() takes any number and batches them. */
  batchSize?: number;
  /** Overrides the checkpoint's preprocessing (required for checkpoints that have none). */
  preprocessing?: Preprocessing;
}

export interface ClassScore {
  index: number;
  name: string;
  probability: number;
}

export interface Prediction {
  /** The file's path, or "image N (a buffer of B bytes)". */
  source: string;
  /** Softmax over the classes. */
  probabilities: Float32Array;
  /** The topK most probable classes, most probable first. */
  top: ClassScore[];
}

export interface Predictor {
  readonly model: Model;
  readonly checkpoint: string;
  /** Class names, by index. */
  readonly classes: readonly string[];
  readonly preprocessing: Preprocessing;
  /** Probabilities for each image, in order; an image that cannot be decoded rejects with a BadImageError naming it. */
  predict(images: readonly ImageInput[], opts?: { topK?: number }): Promise<Prediction[]>;
  dispose(): void;
  [Symbol.dispose](): void;
}

/** Class names stored in a checkpoint's metadata, or the indices when it has none. */
export function classNamesOf(ckpt: Checkpoint, classes: number): string[] {
  const names = (ckpt.meta as { classNames?: unknown }).classNames;
  if (Array.isArray(names) && names.length === classes && names.every((n) => typeof n === 'string')) return names as string[];
  return Array.from({ length: classes }, (_, i) => String(i));
}

function checkPreprocessing(pre: Preprocessing | undefined, model: Model, file: string): Preprocessing {
  if (!pre) {
    throw new Error(`createPredictor: ${file} records no preprocessing (a checkpoint saved without meta.preprocessing, or by a crunet from before it was recorded); pass options.preprocessing`);
  }
  const { channels, inputSize } = model.options;
  if (pre.channels !== channels || pre.size?.[0] !== inputSize || pre.size?.[1] !== inputSize || pre.mean?.length !== channels || pre.std?.length !== channels) {
    throw new Error(`createPredictor: the preprocessing (${pre.channels} channels, ${pre.size?.join('x')}) does not fit ${file}'s ${model.name}, which takes ${channels}x${inputSize}x${inputSize} inputs`);
  }
  return pre;
}

/** Softmax of one row of logits, in float64 for the sums. */
export function softmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  const e = Array.from(logits, (v) => {
    const x = Math.exp(v - max);
    sum += x;
    return x;
  });
  return Float32Array.from(e, (x) => x / sum);
}

/** Loads a checkpoint (a path or loadCheckpoint's result) and compiles its model for inference. */
export async function createPredictor(checkpoint: string | Checkpoint, opts: PredictorOptions = {}): Promise<Predictor> {
  const ckpt = typeof checkpoint === 'string' ? loadCheckpoint(checkpoint) : checkpoint;
  const batchSize = opts.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`createPredictor: expected batchSize to be a positive integer, but received ${batchSize}`);
  const model = fromJSON(ckpt.meta.model as { name: string; options: Record<string, unknown> });
  const pre = checkPreprocessing(opts.preprocessing ?? ckpt.meta.preprocessing, model, ckpt.path);
  const classes = classNamesOf(ckpt, model.options.classes);
  const session: Session = await compile(model, { device: opts.device ?? 'cpu', batchSize });
  try {
    restoreSession(session, ckpt, { optimizerState: false, model: model.name });
  } catch (e) {
    session.dispose();
    throw e;
  }
  const perImage = pre.channels * pre.size[0] * pre.size[1];
  const k = classes.length;
  return {
    model, checkpoint: ckpt.path, classes, preprocessing: pre,
    async predict(images, { topK = 5 } = {}) {
      if (!Array.isArray(images)) throw new TypeError(`predict: expected an array of image paths or buffers, but received ${typeof images}`);
      if (!Number.isInteger(topK) || topK < 1) throw new RangeError(`predict: expected topK to be a positive integer, but received ${topK}`);
      const out: Prediction[] = [];
      for (let start = 0; start < images.length; start += batchSize) {
        const batch = images.slice(start, start + batchSize);
        const x = new Float32Array(batch.length * perImage);
        await Promise.all(batch.map((img, j) => preprocessImage(img, start + j, pre, x, j * perImage, opts)));
        const logits = await session.forward(x);
        batch.forEach((img, j) => {
          const probabilities = softmax(logits.subarray(j * k, (j + 1) * k));
          const order = [...probabilities.keys()].sort((a, b) => probabilities[b]! - probabilities[a]! || a - b);
          const top = order.slice(0, Math.min(topK, k)).map((i) => ({ index: i, name: classes[i]!, probability: probabilities[i]! }));
          out.push({ source: describeInput(img, start + j), probabilities, top });
        });
      }
      return out;
    },
    dispose: () => session.dispose(),
    [Symbol.dispose]: () => session.dispose(),
  };
}
