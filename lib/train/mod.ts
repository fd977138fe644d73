/**
 * Training: the {@linkcode Trainer} (schedule, accumulation, evaluation, best and latest checkpoints, exact resume,
 * metrics as events), the run config, checkpoints of a model and optimizer in one call, metrics files,
 * throughput, and the profile of one step (per-kernel GPU time against the predicted roofline, Chrome traces).
 *
 * @example
 * ```ts
 * import { parseConfig } from "@nanolm/nanolm/train";
 * const config = parseConfig({
 *   model: { vocabSize: 512, contextLength: 64, dModel: 64, numLayers: 2, numHeads: 4 },
 *   train: { trainData: "data/train.bin", steps: 300 },
 * });
 * if (config.train.warmupSteps !== 30) throw new Error(`warm-up ${config.train.warmupSteps}`);
 * ```
 *
 * @module
 */
export {
  BEST_CHECKPOINT_NAME,
  type BestCheckpoint,
  CHECKPOINT_NAME,
  type CheckpointEvent,
  checkRunInputs,
  type EvalMetrics,
  type FitResult,
  type StepMetrics,
  type StopReason,
  Trainer,
  type TrainerOptions,
  type TrainEvent,
} from "./trainer.ts";
export {
  type Config,
  type ConfigInput,
  parseConfig,
  parseTrainConfig,
  type TrainConfig,
  type TrainConfigInput,
} from "./config.ts";
export {
  type CheckpointParts,
  DivergedError,
  loadCheckpoint,
  loadWeights,
  restoreCheckpoint,
  saveCheckpoint,
  saveWeights,
} from "./checkpoint.ts";
export {
  type ConfigOverrides,
  type Override,
  recordedConfig,
  type ResumeOptions,
  type ResumePoint,
  resumePoint,
} from "./resume.ts";
export {
  type MetricRecord,
  metricSeries,
  MetricsLogger,
  type MetricsLoggerOptions,
  type MetricValue,
  parseMetrics,
  readMetrics,
  type Series,
  type Stepped,
} from "./metrics.ts";
export { StepThroughput, ThroughputMeter, type ThroughputMeterOptions } from "./meter.ts";
export { BitsPerByte, targetLogProbs, tokenByteLengths } from "./bpb.ts";
export {
  type BestEval,
  configValue,
  expandGlob,
  isRunFolder,
  type LoadedRun,
  loadRun,
  loadRuns,
  METRICS_NAME,
  readRunInfo,
  RUN_INFO_NAME,
  type RunInfo,
  RunLog,
  type RunLogOptions,
  type RunState,
  type RunSummary,
  variedFields,
  writeRunInfo,
} from "./runs.ts";
export {
  checkSweep,
  checkSweepRuns,
  type ConfigFields,
  describeEnd,
  parseSweep,
  type PlannedRun,
  type PlanOptions,
  planSweep,
  readSweepFile,
  type RunAction,
  type RunFolderState,
  runFolderState,
  runSweep,
  type RunSweepOptions,
  type SweepPlan,
  type SweepResult,
  sweepRuns,
  type SweepRunSpec,
  type SweepSpec,
} from "./sweep.ts";
export { runBundle, type RunStatus } from "./view.ts";
export {
  type ChromeTrace,
  chromeTrace,
  type FitProfileOptions,
  type HostPhase,
  type KernelProfile,
  type PhaseMark,
  profileStep,
  type ProfileStepOptions,
  profileWork,
  resolvePeaks,
  type StepInputs,
  StepProfile,
  type StepProfileParts,
  TRACE_TRACKS,
  type TraceEvent,
  writeChromeTrace,
} from "./profile.ts";
