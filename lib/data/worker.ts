// A loader worker thread: rebuilds the data set from its recipe once, then fills batches on request.
// The batch buffers arrive transferred (not copied) and are transferred back filled: one owner at a time,
// so a batch the consumer holds never changes under it (Note [buffers] in loader.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { fillBatch, type FillResult } from './batch.js';
import type { Dataset, DatasetRecipe } from './dataset.js';
import { FolderDataset } from './folder.js';
import { MemoryDataset } from './memory.js';

export interface FillTask {
  id: number;
  epoch: number;
  seed: number;
  indices: Int32Array;
  images: ArrayBuffer;
  labels: ArrayBuffer;
}

/** An error as plain data: structured clone keeps neither the class nor file/offset. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  file?: string;
  offset?: number;
}

export type FillReply =
  | ({ id: number; images: ArrayBuffer; labels: ArrayBuffer } & FillResult)
  | { id: number; images: ArrayBuffer; labels: ArrayBuffer; error: WireError };

export function fromRecipe(r: DatasetRecipe): Dataset {
  if (r?.kind === 'memory') return new MemoryDataset(r);
  if (r?.kind !== 'folder') throw new TypeError(`DataLoader worker: cannot rebuild a data set of kind ${JSON.stringify((r as { kind?: unknown })?.kind)}; use workers: 0 for custom data sets`);
  return new FolderDataset(r.root, { classes: r.classes, files: r.files, labels: r.labels }, {
    train: r.transform.train,
    transform: r.transform,
    onBadImage: r.onBadImage,
    maxImageBytes: r.maxImageBytes,
    maxImagePixels: r.maxImagePixels,
    name: r.name,
  });
}

function toWire(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  const { file, offset } = err as { file?: string; offset?: number };
  return { name: err.name, message: err.message, stack: err.stack, file, offset };
}

if (parentPort && workerData?.crunetDataRecipe) {
  const port = parentPort;
  const ds = fromRecipe(workerData.crunetDataRecipe as DatasetRecipe);
  port.on('message', (task: FillTask) => {
    const reply = (r: FillResult | { error: WireError }) =>
      port.postMessage({ id: task.id, images: task.images, labels: task.labels, ...r }, [task.images, task.labels]);
    try {
      const images = new Float32Array(task.images);
      const labels = new Int32Array(task.labels);
      Promise.resolve(fillBatch(ds, task.indices, task.epoch, task.seed, images, labels)).then(reply, (e) => reply({ error: toWire(e) }));
    } catch (e) {
      reply({ error: toWire(e) });
    }
  });
}
