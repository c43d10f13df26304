export { compile, OPTIMIZER_STATE, OPTIMIZER_TYPES, Session } from './session.js';
export type {
  AlgorithmCacheReport, AlgorithmCandidate, AlgorithmChoice, CompileOptions, CudnnOptions, DistributedOptions, Feeds, Gradients, MemoryReport, NodeProfile,
  Precision, SgdOptions, StepResult, Compilable, EmaOptions, OptimizerOptions, OptimizerType, ParamGroup, LossScaleOptions, LossScalerState,
} from './session.js';
export { buildInfo, devices, setNumThreads, version } from './info.js';
export type { BuildInfo, DeviceInfo } from './native.js';
