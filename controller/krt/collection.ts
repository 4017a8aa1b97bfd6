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

export interface FetchOptions<O, I = unknown> {
  /**
   * Keeps only the values it accepts; `input` is the input of the key being computed (undefined in a singleton).
   * The dependency is filtered too: a change re-runs the transform only when the value before or after it passes,
   * so a change that makes a value newly match is seen, and others are not. Must be a pure function of its
   * arguments: it is called again on later changes, with the input as it is then. A function that captures
   * nothing (reading what it needs from `input`) costs no memory per read, which matters at 10k keys.
   */
  readonly where?: (value: O, input: I) => boolean;
  /**
   * A join: an index of the reading collection's own input under which this input has the key being read (pods
   * by namespace, for a pod reading its namespace). The read is then recorded once for the whole collection, not
   * once per key: a change under that key recomputes the inputs the index lists there (through `where`). This is
   * what keeps dependency tracking cheap for reads many keys make alike. The runtime checks that the input is
   * under the key (KRT_BAD_JOIN otherwise).
   */
  readonly via?: Index<I>;
}

/**
 * What a transform reads through. Every read is a dependency of the key being computed: when what it returned
 * could change, the key is computed again. A transform may read only collections created before its own (so the
 * graph has no cycles and one pass in creation order settles it).
 */
export interface HandlerContext<I = unknown> {
  /** Every value of `collection` (optionally filtered), in key order; depends on all of them. */
  fetch<O>(collection: Collection<O>, options?: FetchOptions<O, I>): O[];
  /** The value under `key`; depends on that key only. */
  fetchKey<O>(collection: Collection<O>, key: string, options?: Pick<FetchOptions<O, I>, 'via'>): O | undefined;
  /**
   * The values under `key` of `index` (optionally filtered), in key order; depends on that index key only. Reading
   * by the computed key's own key (a join on the same key) costs nothing per key.
   */
  fetchIndex<O>(index: Index<O>, key: string, options?: FetchOptions<O, I>): O[];
  /**
   * The singleton's value. Every key of the reading collection depends on it (not just this one): singletons hold
   * what most keys read and what changes rarely, and so a read costs nothing per key.
   */
  fetchSingleton<O>(singleton: Singleton<O>): O | undefined;
}

/** One input value → at most one output. `key` is the input's key, which the output is stored under. */
export type Transform<I, O> = (ctx: HandlerContext<I>, input: I, key: string) => O | undefined;

/** One input value → any number of outputs, each stored under its own key (`ManyOptions.key`). */
export type ManyTransform<I, O> = (ctx: HandlerContext<I>, input: I, key: string) => readonly O[];

export type SingletonTransform<O> = (ctx: HandlerContext<undefined>) => O | undefined;

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
