export { convert, type ConvertOptions, type ConvertProgress, type ConvertResult } from "./convert.js";
export { OUTPUT_TYPES, parseOutputType, type OutputType } from "./type-rule.js";
export { safetyCheckerTensors, textEncoderTensors, unetTensors, vaeTensors, type ArchTensor, type Component, type TensorRole } from "./architecture.js";
export { parseSafetyCheckerConfig, parseTextEncoderConfig, parseUNetConfig, parseVaeConfig, parseJsonObject } from "./config.js";
export { internalName } from "./names.js";
