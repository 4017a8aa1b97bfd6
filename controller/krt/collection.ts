/**
 * The public shapes of the derived-collection runtime (runtime.ts makes them): a Collection is a keyed set of
 * immutable values that other collections derive from through transforms; what a transform reads goes through
 * its HandlerContext, which records the read as a dependency, so the runtime knows which keys to recompute when
 * an input changes (Istio's krt: pkg/kube/krt `Collection`, `HandlerContext`, `Fetch`, `Index`).
 *
 * Invariants every implementation keeps:
 *  - Values are never mutated once stored; a change replaces the value.
 *  - An event is delivered only when a key's value really changed (by the collection's `equals`); an output equal
 *    to the previous one keeps the previous object, so identity means "unchanged" downstream.
 *  - Reads return values in key order (code-unit order), so results never depend on the order of past changes.
 */

export type EventType = 'add' | 'update' | 'delete';

/** One change of one key: `before` is absent for an add, `after` for a delete. */
export interface CollectionEvent<O> {
  readonly type: EventType;
  readonly key: string;
  readonly before: O | undefined;
  readonly after: O | undefined;
}

/** Receives the events of one propagation, all at once (krt `RegisterBatch`). */
export type EventHandler<O> = (events: readonly CollectionEvent<O>[]) => void;

export type Equals<O> = (a: O, b: O) => boolean;

/** The index keys of a value; a value may be under several keys, or none. */
export type IndexKeys<O> = (value: O) => readonly string[];

export interface SubscribeOptions {
  /** Also deliver the current contents now, as one batch of adds (krt's `runExistingState`). */
  readonly replay?: boolean;
}

export interface Collection<O> {
  readonly name: string;
  readonly size: number;
  get(key: string): O | undefined;
  /** Every value, in key order. */
  list(): O[];
  /** Every key and value, in key order. */
  entries(): [string, O][];
  /** Declares an index: values by the keys `keys` gives them, maintained on every change. */
  index(name: string, keys: IndexKeys<O>): Index<O>;
  subscribe(handler: EventHandler<O>, options?: SubscribeOptions): () => void;
}

export interface Index<O> {
  readonly name: string;
  readonly collection: Collection<O>;
  /** The values under `key`, in key order of the collection. */
  lookup(key: string): O[];
}

/** A collection of at most one value. */
export interface Singleton<O> {
  readonly name: string;
  get(): O | undefined;
  subscribe(handler: EventHandler<O>, options?: SubscribeOptions): () => void;
}

export interface FetchOptions<O> {
  /**
   * Keeps only the values it accepts. The dependency is filtered too: a change re-runs the transform only when
   * the value before or after it passes, so a change that makes a value newly match is seen, and others are not.
   * Must be a pure function of the value (it is called again on later changes).
   */
  readonly where?: (value: O) => boolean;
}

/**
 * What a transform reads through. Every read is a dependency of the key being computed: when what it returned
 * could change, the key is computed again. A transform may read only collections created before its own (so the
 * graph has no cycles and one pass in creation order settles it).
 */
export interface HandlerContext {
  /** Every value of `collection` (optionally filtered), in key order; depends on all of them. */
  fetch<O>(collection: Collection<O>, options?: FetchOptions<O>): O[];
  /** The value under `key`; depends on that key only. */
  fetchKey<O>(collection: Collection<O>, key: string): O | undefined;
  /** The values under `key` of `index` (optionally filtered), in key order; depends on that index key only. */
  fetchIndex<O>(index: Index<O>, key: string, options?: FetchOptions<O>): O[];
  fetchSingleton<O>(singleton: Singleton<O>): O | undefined;
}

/** One input value → at most one output. `key` is the input's key, which the output is stored under. */
export type Transform<I, O> = (ctx: HandlerContext, input: I, key: string) => O | undefined;

/** One input value → any number of outputs, each stored under its own key (`ManyOptions.key`). */
export type ManyTransform<I, O> = (ctx: HandlerContext, input: I, key: string) => readonly O[];

export type SingletonTransform<O> = (ctx: HandlerContext) => O | undefined;

export interface CollectionOptions<O> {
  /** When an output counts as unchanged; default structural equality (equality.ts `valueEquals`). */
  readonly equals?: Equals<O>;
}

export interface ManyOptions<O> extends CollectionOptions<O> {
  /** The key of an output; unique across the whole collection. */
  readonly key: (value: O) => string;
}

/** How much a derived collection has recomputed, cumulative (diagnostics and tests). */
export interface CollectionStats {
  /** Transform runs. */
  readonly recomputed: number;
  /** Keys whose value changed (events). */
  readonly changed: number;
}
