export { checkProcessGroupOptions, initProcessGroup } from './process-group.js';
export type { Backend, ProcessGroup, ProcessGroupOptions, ReduceOp } from './process-group.js';
