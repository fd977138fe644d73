/**
 * nanolm: a language model from scratch on WebGPU, in TypeScript.
 *
 * Tokenizer, tensors with reverse-mode autograd, transformer LM, trainer and sampler.
 *
 * @example
 * ```ts
 * import { Rng } from "@nanolm/nanolm";
 * const rng = new Rng(0);
 * console.log(rng.uniform());
 * ```
 *
 * @module
 */
export { Rng, type RngState } from "./lib/util/random.ts";
export * from "./lib/tensor/mod.ts";
export { ProgressBar, type ProgressBarOptions } from "./lib/util/progress.ts";
export {
  type Config,
  ConfigError,
  type ConfigInput,
  type ConfigIssue,
  type FeedForwardKind,
  type ModelConfig,
  type ModelConfigInput,
  type NormPlacement,
  parseConfig,
  parseModelConfig,
  parseTrainConfig,
  type PositionEncoding,
  type TrainConfig,
  type TrainConfigInput,
} from "./lib/train/config.ts";
export { cosineLr, type CosineScheduleOptions } from "./lib/optim/schedule.ts";
export {
  bf16ToFloat32,
  decodeSafetensors,
  dtypeSize,
  encodeSafetensors,
  float32ToBf16,
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsContents,
  type SafetensorsDtype,
  type SafetensorsHeader,
  type SafetensorsReadOptions,
  type SafetensorsWriteOptions,
  type TensorData,
  type TensorEntry,
  type TensorInfo,
  type TensorMap,
  writeSafetensors,
} from "./lib/io/safetensors.ts";
export {
  type ArrayMap,
  type CheckpointState,
  type NamedArray,
  type OptimizerState,
  readCheckpointFile,
  writeCheckpointFile,
  writeWeightsFile,
} from "./lib/io/checkpoint_file.ts";
export {
  choosePath,
  type PathChoice,
  pathToRecord,
  type RecordedPathOptions,
  resolveRecordedPath,
} from "./lib/io/paths.ts";
export {
  RandomBatchSampler,
  type RandomBatchSamplerOptions,
  type SamplerState,
  type TokenBatch,
  TokenDataset,
  type TokenDatasetOptions,
  type TokenDtype,
  tokenDtypeForPath,
  writeTokenFile,
} from "./lib/data/token_files.ts";
export {
  type AccountingRow,
  accountingTable,
  type ForwardFlops,
  forwardFlops,
  type MemoryUsage,
  memoryUsage,
  modelFlopsUtilization,
  type ModelShape,
  type ParameterCounts,
  parameterCounts,
  type TrainingFlops,
  trainingFlops,
  trainingFlopsPerToken,
  type WorkloadOptions,
} from "./lib/nn/accounting.ts";
export { AdamW, type AdamWOptions, type StepOptions } from "./lib/optim/adamw.ts";
export * from "./lib/nn/mod.ts";
export {
  BEST_CHECKPOINT_NAME,
  type BestCheckpoint,
  CHECKPOINT_NAME,
  type CheckpointEvent,
  DivergedError,
  type EvalMetrics,
  type FitResult,
  type StepMetrics,
  type StopReason,
  Trainer,
  type TrainerOptions,
  type TrainEvent,
} from "./lib/train/trainer.ts";
export {
  type ConfigOverrides,
  type Override,
  recordedConfig,
  type ResumeOptions,
  type ResumePoint,
  resumePoint,
} from "./lib/train/resume.ts";
export { type GpuPeaks, gpuPeaks } from "./lib/gpu/peaks.ts";
export { generate, type GenerateOptions } from "./lib/sample/generate.ts";
export {
  type FinishReason,
  generateStream,
  type GenerateStreamOptions,
  generateText,
  type GenerationEvent,
  type Prompt,
} from "./lib/sample/stream.ts";
export {
  type GpuSampleResult,
  type GpuSamplingOptions,
  KvCacheDecoder,
  type KvCacheDecoderOptions,
  sampleOnGpu,
  samplingParams,
} from "./lib/sample/decoder.ts";
export { candidateSet, sampleToken, type SamplingOptions } from "./lib/sample/sampling.ts";
export {
  type BpeModel,
  BYTE_TO_CHAR,
  bytesToPrintable,
  encodeFile,
  type EncodeFileOptions,
  type EncodeFileResult,
  GPT2_PATTERN,
  learnMerges,
  type Merge,
  type PairTableData,
  pretokenize,
  pretokenizeRegex,
  printableToBytes,
  type TiktokenOptions,
  Tokenizer,
  type TokenizerOptions,
  type TokenizerSnapshot,
  trainBpe,
  type TrainBpeOptions,
} from "./lib/tokenizer/mod.ts";
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
} from "./lib/train/metrics.ts";
export {
  bundleOf,
  cellResult,
  display,
  inJupyter,
  JUPYTER_DISPLAY,
  type JupyterDisplayable,
  type MimeBundle,
} from "./lib/notebook/jupyter.ts";
export { formatCell, htmlTable, tableDisplay, type TableOptions, type TableRow, textTable } from "./lib/notebook/table.ts";
export {
  attentionMapFigure,
  displayable,
  ensurePlotlyInNotebook,
  type FigureOptions,
  heatmapFigure,
  histogramFigure,
  learningRateFigure,
  lineFigure,
  LivePlot,
  loadPlotlyJs,
  lossCurveFigure,
  type LossCurveRun,
  type NamedSeries,
  plotlyBundle,
  type PlotlyFigure,
  plotlyHtml,
  type PlotlyHtmlOptions,
  plotlyLoaderHtml,
  type PlotlyTrace,
  runFromMetrics,
} from "./lib/notebook/plot.ts";
export {
  modelBundle,
  runBundle,
  type RunStatus,
  TOKEN_SPLIT_SAMPLE,
  tokenizerBundle,
  type TokenizerView,
  tokenSplit,
  tokenSplitBundle,
  tokenText,
} from "./lib/notebook/views.ts";
export { type MonitorEvent, TrainingMonitor, type TrainingMonitorOptions } from "./lib/notebook/monitor.ts";
export { renderReport, type ReportContent, type ReportRun, type ReportSample, writeReport } from "./lib/notebook/report.ts";
export { StepThroughput, ThroughputMeter, type ThroughputMeterOptions } from "./lib/train/meter.ts";
export { InterruptGuard } from "./lib/cli/interrupt.ts";
export {
  defaultCorpus,
  defaultDataFolder,
  type DefaultRunSettings,
  defaultRunSettings,
  END_OF_TEXT,
  type PreparedData,
  prepareDefaultData,
} from "./lib/data/default_data.ts";
export { VERSION } from "./lib/util/version.ts";
export { formatCount, formatDuration } from "./lib/util/progress.ts";
export {
  buildConfig,
  type ConfigDefaults,
  flagOf,
  type GivenConfig,
  parseTrainCli,
  type TrainCliResult,
  trainHelpText,
  type TrainOutputOptions,
} from "./lib/cli/train_flags.ts";
export { type PreparedTextData, type PrepareOptions, prepareTextData, TINYSTORIES_URLS } from "./lib/data/prepare.ts";
