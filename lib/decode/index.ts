/**
 * Decoding untrusted input into readonly records, the same way at every edge (ztunnel's local config and WDS,
 * the controller's Kubernetes objects):
 *
 *   path.ts    field paths for messages (`spec.rules[0].from`) and how a bad value is quoted
 *   read.ts    path-aware readers over unknown values; one DecodeError (DECODE_INVALID_VALUE) with the path
 *   freeze.ts  deepFreeze for the finished record
 */
export { entry, field, item, show } from './path.js';
export {
  absent,
  DecodeError,
  DecodeErrorCode,
  fail,
  isMap,
  isPort,
  nonEmptyString,
  optionalBool,
  optionalEnum,
  optionalList,
  optionalMap,
  optionalString,
  readCidr,
  readEnum,
  readInteger,
  readIp,
  readList,
  readMap,
  readPair,
  readPort,
  readTimestamp,
  requiredString,
  splitPair,
  stringList,
  stringMap,
  type Obj,
} from './read.js';
export { deepFreeze } from './freeze.js';
