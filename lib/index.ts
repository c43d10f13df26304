// crunet's public entry point: graphs and sessions at the top level; models, data and training as
// namespaces (crunet.models.create('crunet56'), crunet.data.openDataset('fashion-mnist'), ...); weights in
// and out (safetensors, PyTorch state dicts, ONNX) under crunet.io.
export * from './graph/index.js';
export * from './engine/index.js';
export * as models from './models/index.js';
export * as data from './data/index.js';
export * as train from './train/index.js';
export * as io from './io/index.js';
export * as dist from './dist/index.js';
export { createPredictor } from './predict/index.js';
export type { ClassScore, ImageInput, Prediction, Predictor, PredictorOptions } from './predict/index.js';
