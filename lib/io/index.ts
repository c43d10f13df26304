// Weights in and out: safetensors files, PyTorch state dicts, ONNX export.
export {
  readSafetensors, readSafetensorsHeader, decodeSafetensors, writeSafetensors, encodeSafetensors, SafetensorsError, DTYPE_SIZE,
} from '../train/safetensors.js';
export type { DType, ReadTensor, SafetensorsFile, SafetensorsHeader, TensorEntry, TensorToWrite } from '../train/safetensors.js';
export { loadStateDict, stateDict, stateDictFromTensors, stateDictKeys, StateDictError, NUM_BATCHES_TRACKED } from './state-dict.js';
export type { LoadStateDictOptions, LoadStateDictResult, StateDict, StateDictOptions, StateTensor } from './state-dict.js';
export { toOnnx, writeOnnx, ONNX_OPSET, ONNX_IR_VERSION } from './onnx.js';
export type { OnnxExportOptions, ParameterSource } from './onnx.js';
export { preprocessImage, TORCHVISION_IMAGENET } from '../predict/preprocess.js';
