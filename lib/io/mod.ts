/**
 * Files that must survive crashes and untrusted input: atomic writes, safetensors (read with the header checks of
 * the reference implementation), nanolm's checkpoint format, and paths recorded inside files.
 *
 * @example
 * ```ts
 * import { readSafetensors, writeSafetensors } from "@nanolm/nanolm/io";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/w.safetensors`;
 * await writeSafetensors(path, new Map([["w", { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]]));
 * const { tensors } = await readSafetensors(path);
 * if (tensors.get("w")!.shape.join() !== "2") throw new Error("shape lost");
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
export { removeStaleTempFiles, writeFileAtomic, writeFileAtomicSync } from "./atomic_write.ts";
export { exists } from "./exists.ts";
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
} from "./safetensors.ts";
export {
  type ArrayMap,
  type CheckpointState,
  type NamedArray,
  type OptimizerState,
  readCheckpointFile,
  writeCheckpointFile,
  writeWeightsFile,
} from "./checkpoint_file.ts";
export { choosePath, type PathChoice, pathToRecord, type RecordedPathOptions, resolveRecordedPath } from "./paths.ts";
