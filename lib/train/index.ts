export { Trainer } from './trainer.js';
// Test-time mirroring's helper lives with the other transforms; still exported here, where it first was.
export { mirrorRows } from '../data/augment.js';
export type { BatchSource, TestTimeAugment, TrainBatch, StepInfo, EpochStats, EvalStats, EpochEnd, TrainerCallbacks, TrainerOptions, FitResult } from './trainer.js';
export { createSchedule, lrAt, SCHEDULE_TYPES } from './schedule.js';
export type { Schedule, ScheduleConfig, ScheduleType, WarmupConfig } from './schedule.js';
export { saveCheckpoint, loadCheckpoint, restoreSession, readCheckpointInfo, latestCheckpoint } from './checkpoint.js';
export type { Checkpoint, CheckpointInfo, CheckpointMeta, RestoreOptions, RestoreResult } from './checkpoint.js';
export { MetricsLog, readMetrics, epochHistory, metricsCsv, numberEpochsFrom1 } from './metrics-log.js';
export { mixedBatches } from './mixed-source.js';
export { TensorBoardWriter } from './tensorboard.js';
export { ProgressBar } from './progress.js';
export { renderPlot, writePlot } from './plot.js';
export { scoreLogits, emptyScore, meanSoftmaxLogits } from './metrics.js';
