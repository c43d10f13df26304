export { compile, Session } from './session.js';
export type { CompileOptions, SgdOptions, StepResult, Gradients, Feeds, MemoryReport, Precision, Compilable } from './session.js';
export { buildInfo, devices, setNumThreads, version } from './info.js';
export type { BuildInfo, DeviceInfo } from './native.js';
