/**
 * Who read what: the reverse edges of the collection graph. When a transform reads a store through its context,
 * the key being computed (a Reader) is registered in that store's DependencyTable under what it read: one key,
 * one index key, or everything, with the `where` filter it read through. A change of the store then marks dirty
 * exactly the readers whose read could now return something else; nothing has to be kept by hand.
 *
 * A reader's registrations are dropped before its transform runs again, so the table always describes the last
 * run of every key (a transform that stops reading something stops depending on it).
 *
 * Memory is per registration, so it is kept small (at 10k pods there are ~100k): a bucket read by one reader
 * without a filter is that reader itself; otherwise a Map of reader → filter (null: none). A reader keeps its
 * registrations as (table, key) pairs in one flat array.
 */

/** Where a dirty reader is reported: the derived collection that owns it. */
export interface DirtyTarget {
  markDirty(key: string): void;
}

type Where = (value: unknown) => boolean;
type Bucket = Reader | Map<Reader, Where | null>;
type Table = Map<string, Bucket>;

/** One key of a derived collection, as a reader of other stores. */
export class Reader {
  readonly target: DirtyTarget;
  readonly key: string;
  /** table, key, table, key, ... of every registration of the last run. */
  #registrations: (Table | string)[] = [];

  constructor(target: DirtyTarget, key: string) {
    this.target = target;
    this.key = key;
  }

  get reads(): number {
    return this.#registrations.length / 2;
  }

  register(table: Table, key: string, where: Where | undefined): void {
    const cur = table.get(key);
    if (cur === undefined) {
      table.set(key, where === undefined ? this : new Map([[this, where]]));
    } else if (cur instanceof Reader) {
      if (cur === this && where === undefined) return;
      const m = new Map<Reader, Where | null>([[cur, null]]);
      addTo(m, this, where);
      table.set(key, m);
    } else addTo(cur, this, where);
    this.#registrations.push(table, key);
  }

  /** The run is over: the registrations are kept at their exact size (an array grown by push has spare room). */
  seal(): void {
    if (this.#registrations.length > 0) this.#registrations = this.#registrations.slice();
  }

  /** Forgets every read of the last run. */
  clear(): void {
    const regs = this.#registrations;
    for (let i = 0; i < regs.length; i += 2) {
      const table = regs[i] as Table;
      const key = regs[i + 1] as string;
      const cur = table.get(key);
      if (cur === this) table.delete(key);
      else if (cur instanceof Map) {
        cur.delete(this);
        if (cur.size === 0) table.delete(key);
      }
    }
    this.#registrations = [];
  }
}

/** A reader that reads one bucket twice keeps the wider of its filters (none beats any). */
function addTo(m: Map<Reader, Where | null>, reader: Reader, where: Where | undefined): void {
  const prev = m.get(reader);
  if (prev === undefined) m.set(reader, where ?? null);
  else if (prev !== null) m.set(reader, where === undefined ? null : (v) => prev(v) || where(v));
}

function notify(bucket: Bucket | undefined, before: unknown, after: unknown): void {
  if (bucket === undefined) return;
  if (bucket instanceof Reader) {
    bucket.target.markDirty(bucket.key);
    return;
  }
  for (const [reader, where] of bucket) {
    if (where === null || (before !== undefined && where(before)) || (after !== undefined && where(after))) {
      reader.target.markDirty(reader.key);
    }
  }
}

const ALL = '';

/** The readers of one store, by what they read. */
export class DependencyTable {
  readonly #byKey: Table = new Map();
  /** index name → index key → readers. */
  readonly #byIndex = new Map<string, Table>();
  /** The readers of the whole store, under one key. */
  readonly #all: Table = new Map();

  readKey(reader: Reader, key: string): void {
    reader.register(this.#byKey, key, undefined);
  }

  readIndex(reader: Reader, index: string, key: string, where: Where | undefined): void {
    let table = this.#byIndex.get(index);
    if (table === undefined) {
      table = new Map();
      this.#byIndex.set(index, table);
    }
    reader.register(table, key, where);
  }

  readAll(reader: Reader, where: Where | undefined): void {
    reader.register(this.#all, ALL, where);
  }

  /** Whether anyone reads index `index` (its keys need not be computed for dependents otherwise). */
  readsIndex(index: string): boolean {
    return (this.#byIndex.get(index)?.size ?? 0) > 0;
  }

  /** `key` changed from `before` to `after` (either may be absent): marks its readers dirty. */
  keyChanged(key: string, before: unknown, after: unknown): void {
    notify(this.#byKey.get(key), before, after);
    notify(this.#all.get(ALL), before, after);
  }

  /** A value changed under the index keys `keys` (before and after together). */
  indexChanged(index: string, keys: Iterable<string>, before: unknown, after: unknown): void {
    const table = this.#byIndex.get(index);
    if (table === undefined) return;
    for (const k of keys) notify(table.get(k), before, after);
  }
}
