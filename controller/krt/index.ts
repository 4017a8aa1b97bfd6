/**
 * A derived-collection runtime for the controller, after Istio's krt (pkg/kube/krt): pure transforms over keyed
 * collections, dependencies recorded by what each transform reads, recomputation of exactly the affected keys,
 * events only on real change. Synchronous and deterministic (see runtime.ts).
 *
 *   collection.ts    the public shapes: Collection, Index, Singleton, HandlerContext, events, transforms
 *   runtime.ts       Runtime: makes collections, runs propagations in creation (= topological) order
 *   input.ts         collections fed from outside: set / delete / replaceAll (diffed by identity)
 *   derived.ts       collections computed by a transform: one per input, many per input, singleton
 *   context.ts       the HandlerContext: reads that record dependencies, the creation-order rule
 *   dependencies.ts  reverse edges: who read which key, index key or whole store, through which filter
 *   index-table.ts   secondary indexes maintained on every change
 *   store.ts         what all stores share: values, indexes, readers, subscribers, the one change path
 *   singleton.ts     a store of at most one value
 *   equality.ts      when an output counts as unchanged (structural, by encoding, by identity)
 *   errors.ts        KRT_* error codes
 */
export type {
  Collection,
  CollectionEvent,
  CollectionOptions,
  CollectionStats,
  Equals,
  EventHandler,
  EventType,
  FetchOptions,
  HandlerContext,
  Index,
  IndexKeys,
  ManyOptions,
  ManyTransform,
  Singleton,
  SingletonTransform,
  SubscribeOptions,
  Transform,
} from './collection.js';
export type { DerivedCollection } from './derived.js';
export { byEncoding, identity, sameBytes, valueEquals } from './equality.js';
export { KrtError, KrtErrorCode } from './errors.js';
export type { InputCollection, InputSingleton } from './input.js';
export { DerivedSingleton, Runtime, type RuntimeOptions } from './runtime.js';
