/**
 * Who read what: the reverse edges of the collection graph. When a transform reads a store through its context,
 * the key being computed (a Reader) is registered in that store's DependencyTable under what it read: one key,
 * one index key, or everything, with the `where` filter it read through. A change of the store then marks dirty
 * exactly the readers whose read could now return something else; nothing has to be kept by hand.
 *
 * A reader's registrations are dropped before its transform runs again, so the table always describes the last
 * run of every key (a transform that stops reading something stops depending on it).
 */

/** Where a dirty reader is reported: the derived collection that owns it. */
export interface DirtyTarget {
  markDirty(key: string): void;
}

type Where = (value: unknown) => boolean;

/** A registration that only counts when the changed value passes `where` (before or after the change). */
interface FilteredReader {
  readonly reader: Reader;
  readonly where: Where;
}

type Dependent = Reader | FilteredReader;
type Bucket = Set<Dependent>;

interface Registration {
  /** The map the bucket is in under `key` (undefined for the whole-store bucket, which is never dropped). */
  readonly table: Map<string, Bucket> | undefined;
  readonly key: string;
  readonly bucket: Bucket;
  readonly dependent: Dependent;
}

/** One key of a derived collection, as a reader of other stores. */
export class Reader {
  readonly target: DirtyTarget;
  readonly key: string;
  #registrations: Registration[] = [];

  constructor(target: DirtyTarget, key: string) {
    this.target = target;
    this.key = key;
  }

  get reads(): number {
    return this.#registrations.length;
  }

  register(table: Map<string, Bucket> | undefined, key: string, bucket: Bucket, where: Where | undefined): void {
    const dependent: Dependent = where === undefined ? this : { reader: this, where };
    bucket.add(dependent);
    this.#registrations.push({ table, key, bucket, dependent });
  }

  /** Forgets every read of the last run. */
  clear(): void {
    for (const r of this.#registrations) {
      r.bucket.delete(r.dependent);
      if (r.bucket.size === 0 && r.table !== undefined && r.table.get(r.key) === r.bucket) r.table.delete(r.key);
    }
    this.#registrations = [];
  }
}

function bucketIn(table: Map<string, Bucket>, key: string): Bucket {
  let b = table.get(key);
  if (b === undefined) {
    b = new Set();
    table.set(key, b);
  }
  return b;
}

function notify(bucket: Bucket | undefined, before: unknown, after: unknown): void {
  if (bucket === undefined) return;
  for (const d of bucket) {
    if (d instanceof Reader) d.target.markDirty(d.key);
    else if ((before !== undefined && d.where(before)) || (after !== undefined && d.where(after))) d.reader.target.markDirty(d.reader.key);
  }
}

/** The readers of one store, by what they read. */
export class DependencyTable {
  readonly #byKey = new Map<string, Bucket>();
  /** index name → index key → readers. */
  readonly #byIndex = new Map<string, Map<string, Bucket>>();
  readonly #all: Bucket = new Set();

  readKey(reader: Reader, key: string): void {
    reader.register(this.#byKey, key, bucketIn(this.#byKey, key), undefined);
  }

  readIndex(reader: Reader, index: string, key: string, where: Where | undefined): void {
    let table = this.#byIndex.get(index);
    if (table === undefined) {
      table = new Map();
      this.#byIndex.set(index, table);
    }
    reader.register(table, key, bucketIn(table, key), where);
  }

  readAll(reader: Reader, where: Where | undefined): void {
    reader.register(undefined, '', this.#all, where);
  }

  /** Whether anyone reads index `index` (its keys need not be computed for dependents otherwise). */
  readsIndex(index: string): boolean {
    return (this.#byIndex.get(index)?.size ?? 0) > 0;
  }

  /** `key` changed from `before` to `after` (either may be absent): marks its readers dirty. */
  keyChanged(key: string, before: unknown, after: unknown): void {
    notify(this.#byKey.get(key), before, after);
    notify(this.#all, before, after);
  }

  /** A value changed under the index keys `keys` (before and after together). */
  indexChanged(index: string, keys: Iterable<string>, before: unknown, after: unknown): void {
    const table = this.#byIndex.get(index);
    if (table === undefined) return;
    for (const k of keys) notify(table.get(k), before, after);
  }
}
