/**
 * A secondary index of a store: index key → the keys of the values under it, kept up to date by the store on
 * every change. Most index keys name one value (an address, a name), so a single key is held inline and a Set is
 * made only for the second one: at 10k pods an index costs about one Map entry per pod.
 */
import type { Collection, Index, IndexKeys } from './collection.js';

type Keys = string | Set<string>;

const EMPTY: readonly string[] = Object.freeze([]);

/** What a store gives its indexes: its public face, a read without propagation, and "bring yourself up to date". */
export interface IndexedStore<O> extends Collection<O> {
  peek(key: string): O | undefined;
  settle(): void;
}

export class IndexTable<O> implements Index<O> {
  readonly name: string;
  readonly store: IndexedStore<O>;
  readonly keysOf: IndexKeys<O>;
  readonly #buckets = new Map<string, Keys>();

  constructor(name: string, store: IndexedStore<O>, keysOf: IndexKeys<O>) {
    this.name = name;
    this.store = store;
    this.keysOf = keysOf;
  }

  get collection(): Collection<O> {
    return this.store;
  }

  /** The index keys of a value that may be absent. */
  keysFor(value: O | undefined): readonly string[] {
    return value === undefined ? EMPTY : this.keysOf(value);
  }

  add(indexKey: string, key: string): void {
    const cur = this.#buckets.get(indexKey);
    if (cur === undefined) this.#buckets.set(indexKey, key);
    else if (typeof cur === 'string') {
      if (cur !== key) this.#buckets.set(indexKey, new Set([cur, key]));
    } else cur.add(key);
  }

  remove(indexKey: string, key: string): void {
    const cur = this.#buckets.get(indexKey);
    if (cur === undefined) return;
    if (typeof cur === 'string') {
      if (cur === key) this.#buckets.delete(indexKey);
      return;
    }
    cur.delete(key);
    if (cur.size === 1) this.#buckets.set(indexKey, cur.values().next().value as string);
  }

  /** Calls `f` with every store key under `indexKey`, in no particular order. */
  forEachUnder(indexKey: string, f: (key: string) => void): void {
    const cur = this.#buckets.get(indexKey);
    if (cur === undefined) return;
    if (typeof cur === 'string') f(cur);
    else for (const k of cur) f(k);
  }

  /** Store keys under `indexKey`, sorted. */
  keysUnder(indexKey: string): readonly string[] {
    const cur = this.#buckets.get(indexKey);
    if (cur === undefined) return EMPTY;
    if (typeof cur === 'string') return [cur];
    return [...cur].sort();
  }

  /** The values under `indexKey` without propagating first (for transforms, which run inside a propagation). */
  peekLookup(indexKey: string, where?: (value: O) => boolean): O[] {
    const out: O[] = [];
    for (const k of this.keysUnder(indexKey)) {
      const v = this.store.peek(k);
      if (v !== undefined && (where === undefined || where(v))) out.push(v);
    }
    return out;
  }

  lookup(indexKey: string): O[] {
    this.store.settle();
    return this.peekLookup(indexKey);
  }
}
