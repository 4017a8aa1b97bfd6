/**
 * What input and derived collections share: the values by key, the declared indexes, the readers (dependency
 * table), the collections derived key by key from this one, and the subscribers. Subclasses decide how values
 * are stored and call `changed()` after each real change; everything downstream follows from that one call.
 */
import type { CollectionEvent, EventHandler, EventType, Index, IndexKeys, SubscribeOptions } from './collection.js';
import { DependencyTable, type DirtyTarget } from './dependencies.js';
import { KrtError, KrtErrorCode } from './errors.js';
import { type IndexedStore, IndexTable } from './index-table.js';

/** The runtime as a store sees it. */
export interface Propagation {
  /** Something changed: the next settle has work to do. */
  changed(): void;
  /** Runs the pending propagation, if any (a no-op during one). */
  settle(): void;
  readonly propagating: boolean;
  /** An error that must not stop the propagation; it is raised when the propagation ends. */
  report(err: KrtError): void;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export abstract class Store<O> implements IndexedStore<O> {
  readonly name: string;
  /** Creation order: a store may only read stores of a lower rank. */
  readonly rank: number;
  readonly propagation: Propagation;
  readonly readers = new DependencyTable();
  readonly #indexes: IndexTable<O>[] = [];
  readonly #downstream: DirtyTarget[] = [];
  readonly #subscribers = new Set<EventHandler<O>>();
  #pending: CollectionEvent<O>[] = [];

  constructor(propagation: Propagation, name: string, rank: number) {
    this.propagation = propagation;
    this.name = name;
    this.rank = rank;
  }

  protected abstract get values(): ReadonlyMap<string, O>;

  /** Brings this store up to date before an outside read. */
  abstract settle(): void;

  /** Recomputes what is dirty (derived collections); called in rank order during a propagation. */
  abstract process(): void;

  peek(key: string): O | undefined {
    return this.values.get(key);
  }

  /** Every value in key order, without propagating first. */
  peekList(where?: (value: O) => boolean): O[] {
    const m = this.values;
    const out: O[] = [];
    for (const k of [...m.keys()].sort()) {
      const v = m.get(k) as O;
      if (where === undefined || where(v)) out.push(v);
    }
    return out;
  }

  get size(): number {
    this.settle();
    return this.values.size;
  }

  get(key: string): O | undefined {
    this.settle();
    return this.peek(key);
  }

  list(): O[] {
    this.settle();
    return this.peekList();
  }

  entries(): [string, O][] {
    this.settle();
    const m = this.values;
    return [...m.keys()].sort().map((k) => [k, m.get(k) as O]);
  }

  index(name: string, keys: IndexKeys<O>): Index<O> {
    if (this.#indexes.some((i) => i.name === name)) {
      throw new KrtError(KrtErrorCode.DUPLICATE_KEY, `collection ${this.name} already has an index named ${name}`);
    }
    this.settle();
    const idx = new IndexTable(name, this, keys);
    for (const [k, v] of this.values) for (const ik of keys(v)) idx.add(ik, k);
    this.#indexes.push(idx);
    return idx;
  }

  subscribe(handler: EventHandler<O>, options: SubscribeOptions = {}): () => void {
    if (options.replay) {
      this.settle();
      const adds = [...this.values].map(([key, after]): CollectionEvent<O> => ({ type: 'add', key, before: undefined, after }));
      if (adds.length > 0) handler(adds);
    }
    this.#subscribers.add(handler);
    return () => this.#subscribers.delete(handler);
  }

  /** `target` derives from this store key by key: every changed key is dirty there. */
  addDownstream(target: DirtyTarget): void {
    this.#downstream.push(target);
  }

  /** Current keys, for a collection derived from this one to start from. */
  keys(): IterableIterator<string> {
    return this.values.keys();
  }

  /** Subclasses call this after `key` changed from `before` to `after` in their storage. */
  protected changed(key: string, before: O | undefined, after: O | undefined): void {
    for (const idx of this.#indexes) {
      const b = idx.keysFor(before);
      const a = idx.keysFor(after);
      const same = sameKeys(b, a);
      if (!same) {
        for (const k of b) idx.remove(k, key);
        for (const k of a) idx.add(k, key);
      }
      if (this.readers.readsIndex(idx.name)) this.readers.indexChanged(idx.name, same ? b : [...b, ...a], before, after);
    }
    this.readers.keyChanged(key, before, after);
    for (const d of this.#downstream) d.markDirty(key);
    if (this.#subscribers.size > 0) {
      const type: EventType = before === undefined ? 'add' : after === undefined ? 'delete' : 'update';
      this.#pending.push({ type, key, before, after });
    }
    this.propagation.changed();
  }

  /** Hands the events queued since the last delivery to every subscriber, as one batch. */
  deliver(): void {
    if (this.#pending.length === 0) return;
    const events = this.#pending;
    this.#pending = [];
    for (const h of [...this.#subscribers]) {
      try {
        h(events);
      } catch (err) {
        this.propagation.report(
          new KrtError(KrtErrorCode.HANDLER_FAILED, `an event handler of collection ${this.name} threw`, { cause: err }),
        );
      }
    }
  }
}
