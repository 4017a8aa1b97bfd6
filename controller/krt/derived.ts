/**
 * A collection computed from another by a transform (krt `NewCollection`, `NewManyCollection`, `NewSingleton`).
 * A key is recomputed when its input changed or when something its last run read changed; the outputs are
 * compared with the previous ones by `equals`, and only real changes are stored and passed on. An equal output
 * keeps the previous object, so downstream identity stays meaningful (an xDS resource keeps its version).
 *
 * Shapes: one output per input, stored under the input's key; many outputs per input, each under its own key
 * (unique across the collection: a second input claiming a key is an error and loses); or a singleton, one
 * output computed from reads alone.
 */
import type { CollectionStats, Equals, HandlerContext } from './collection.js';
import { FetchContext } from './context.js';
import { type DirtyTarget, Reader, type Where } from './dependencies.js';
import { KrtError, KrtErrorCode } from './errors.js';
import { SINGLETON_KEY } from './singleton.js';
import { type Propagation, Store } from './store.js';

export type DerivedShape<I, O> =
  | { readonly kind: 'one'; readonly transform: (ctx: HandlerContext<I>, input: I, key: string) => O | undefined }
  | {
      readonly kind: 'many';
      readonly transform: (ctx: HandlerContext<I>, input: I, key: string) => readonly O[];
      readonly key: (value: O) => string;
    }
  | { readonly kind: 'singleton'; readonly transform: (ctx: HandlerContext<undefined>) => O | undefined };

export class DerivedCollection<I, O> extends Store<O> implements DirtyTarget {
  /** The store the inputs come from (undefined for a singleton); joins check their index against it. */
  readonly source: Store<I> | undefined;
  readonly #shape: DerivedShape<I, O>;
  readonly #equals: Equals<O>;
  readonly #outputs = new Map<string, O>();
  /** Input key → the reads of its last run (only keys that read something). */
  readonly #readers = new Map<string, Reader>();
  /** Many shape: input key → the output keys it produced, and output key → the input key that owns it. */
  readonly #produced = new Map<string, readonly string[]>();
  readonly #owner = new Map<string, string>();
  #dirty = new Set<string>();
  #recomputed = 0;
  #changes = 0;

  constructor(
    propagation: Propagation,
    name: string,
    rank: number,
    source: Store<I> | undefined,
    shape: DerivedShape<I, O>,
    equals: Equals<O>,
  ) {
    super(propagation, name, rank);
    this.source = source;
    this.#shape = shape;
    this.#equals = equals;
    if (source === undefined) this.#dirty.add(SINGLETON_KEY);
    else {
      source.addDownstream(this);
      for (const k of source.keys()) this.#dirty.add(k);
    }
    propagation.changed();
  }

  protected get values(): ReadonlyMap<string, O> {
    return this.#outputs;
  }

  get stats(): CollectionStats {
    return { recomputed: this.#recomputed, changed: this.#changes };
  }

  settle(): void {
    this.propagation.settle();
  }

  markDirty(key: string): void {
    this.#dirty.add(key);
    this.propagation.changed();
  }

  markAllDirty(): void {
    if (this.source === undefined) this.#dirty.add(SINGLETON_KEY);
    else for (const k of this.source.keys()) this.#dirty.add(k);
    this.propagation.changed();
  }

  passes(key: string, where: Where, before: unknown, after: unknown): boolean {
    const input = this.source?.peek(key);
    // No input any more: the key is dirty anyway, since its input was deleted.
    if (this.source !== undefined && input === undefined) return true;
    return (before !== undefined && where(before, input)) || (after !== undefined && where(after, input));
  }

  process(): void {
    if (this.#dirty.size === 0) return;
    const keys = this.#dirty;
    // Only lower-ranked stores can dirty this one, and they are done: nothing is added while this runs.
    this.#dirty = new Set();
    if (this.#shape.kind !== 'many') {
      for (const k of keys) this.#storeOne(k, this.#compute(k) as O | undefined);
      return;
    }
    // Many outputs: all dirty inputs release their keys before any claims one, so an output key that moves from
    // one input to another within a propagation is one update, whatever order the inputs are visited in.
    const results = new Map<string, readonly O[]>();
    for (const k of keys) results.set(k, (this.#compute(k) as readonly O[] | undefined) ?? []);
    this.#storeMany(results);
  }

  /** Runs the transform for `inKey`; undefined when its input is gone or the transform threw. */
  #compute(inKey: string): O | readonly O[] | undefined {
    const shape = this.#shape;
    let reader = this.#readers.get(inKey);
    const input = this.source?.peek(inKey);
    if (this.source !== undefined && input === undefined) {
      // The input is gone: so are its outputs and its reads.
      reader?.clear();
      this.#readers.delete(inKey);
      return undefined;
    }
    reader ??= new Reader(this, inKey);
    const ctx = new FetchContext<I>(this, reader, input as I);
    this.#recomputed++;
    let out: O | readonly O[] | undefined;
    try {
      if (shape.kind === 'one') out = shape.transform(ctx, input as I, inKey);
      else if (shape.kind === 'many') out = shape.transform(ctx, input as I, inKey);
      else out = shape.transform(ctx as unknown as HandlerContext<undefined>);
    } catch (err) {
      // Its reads stay registered, so the key is tried again when one of them changes.
      this.propagation.report(
        new KrtError(KrtErrorCode.TRANSFORM_FAILED, `the transform of ${this.name} failed for key "${inKey}"`, { cause: err }),
      );
      out = undefined;
    } finally {
      ctx.close();
      reader.commit();
    }
    if (reader.reads > 0) this.#readers.set(inKey, reader);
    else this.#readers.delete(inKey);
    return out;
  }

  #put(key: string, before: O | undefined, after: O | undefined): void {
    if (after === undefined) this.#outputs.delete(key);
    else this.#outputs.set(key, after);
    this.#changes++;
    this.changed(key, before, after);
  }

  #storeOne(key: string, after: O | undefined): void {
    const before = this.#outputs.get(key);
    if (after === undefined) {
      if (before !== undefined) this.#put(key, before, undefined);
      return;
    }
    if (before !== undefined && (before === after || this.#equals(before, after))) return;
    this.#put(key, before, after);
  }

  #storeMany(results: ReadonlyMap<string, readonly O[]>): void {
    if (this.#shape.kind !== 'many') return;
    const keyOf = this.#shape.key;
    // Output keys whose value may change, with their value before: released by a recomputed input, or claimed.
    const touched = new Map<string, O | undefined>();
    for (const inKey of results.keys()) {
      for (const k of this.#produced.get(inKey) ?? []) {
        this.#owner.delete(k);
        touched.set(k, this.#outputs.get(k));
      }
      this.#produced.delete(inKey);
    }
    const next = new Map<string, O>();
    for (const [inKey, outputs] of results) {
      const mine: string[] = [];
      for (const o of outputs) {
        const k = keyOf(o);
        const owner = this.#owner.get(k);
        if (owner !== undefined) {
          const holder = owner === inKey ? 'it produced twice' : `input "${owner}" holds`;
          this.propagation.report(
            new KrtError(KrtErrorCode.DUPLICATE_KEY, `${this.name}: input "${inKey}" produced output key "${k}", which ${holder}`),
          );
          continue;
        }
        this.#owner.set(k, inKey);
        mine.push(k);
        next.set(k, o);
        if (!touched.has(k)) touched.set(k, this.#outputs.get(k));
      }
      if (mine.length > 0) this.#produced.set(inKey, mine);
    }
    for (const [k, before] of touched) {
      const after = next.get(k);
      if (after === undefined) {
        if (before !== undefined) this.#put(k, before, undefined);
      } else if (before === undefined || (before !== after && !this.#equals(before, after))) this.#put(k, before, after);
    }
  }
}
