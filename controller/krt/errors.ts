import { MeshError } from '../../lib/errors.js';

/** Errors of the derived-collection runtime; each says what in the collection graph to fix. */
export const KrtErrorCode = {
  /** A transform read a collection created after its own (or itself): create collections in dependency order. */
  FETCH_ORDER: 'KRT_FETCH_ORDER',
  /** A transform threw. Its key has no output until an input it read changes; the propagation went on. */
  TRANSFORM_FAILED: 'KRT_TRANSFORM_FAILED',
  /** Two inputs of one collection produced outputs with the same key; the one stored first stays. */
  DUPLICATE_KEY: 'KRT_DUPLICATE_KEY',
  /** An event handler threw; the other handlers and the propagation went on. */
  HANDLER_FAILED: 'KRT_HANDLER_FAILED',
  /** An input was changed during a propagation (from a transform or an event handler). */
  REENTRANT_CHANGE: 'KRT_REENTRANT_CHANGE',
  /** A read through `via` an index that is not on the reader's input, or under which the input is not. */
  BAD_JOIN: 'KRT_BAD_JOIN',
  /** A collection of another runtime, or a context used after its transform returned. */
  FOREIGN_COLLECTION: 'KRT_FOREIGN_COLLECTION',
} as const;

export class KrtError extends MeshError {}
