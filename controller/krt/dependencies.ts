/**
 * Who read what: the reverse edges of the collection graph. When a transform reads a store through its context,
 * the key being computed (a Reader) is registered in that store's DependencyTable under what it read: one key,
 * one index key, or everything, with the `where` filter it read through. A change of the store then marks dirty
 * exactly the readers whose read could now return something else; nothing has to be kept by hand.
 *
 * A reader's registrations are replaced by those of its next run, so the table always describes the last run of
 * every key (a transform that stops reading something stops depending on it).
 *
 * Memory is per registration, so it is kept small (at 10k pods there are ~100k): a bucket read by one reader
 * without a filter is that reader itself, otherwise a Map of reader → filter (null: none); a reader keeps its
 * registrations as (table, key) pairs in one flat array, and a run that reads what the last one read leaves them.
 * Three kinds of read are not registered per key at all, only once per reading collection: joins (a read by a key
 * under which an index of the reader's own input lists it, such as a pod's namespace; the index gives the
 * readers back), reads by the reader's own key (a join on the same key), and reads of a singleton, which make
 * every key of the reading collection depend on it (singletons hold configuration-like values that change
 * rarely and that most keys read).
 */

export type Where = (value: unknown, input: unknown) => boolean;

/** An index of a reading collection's input, as a join needs it: the input keys under an index key. */
export interface JoinIndex {
  forEachUnder(indexKey: string, f: (key: string) => void): void;
}

/** A read recorded once for a whole collection: its keys listed by `via` under the key read, through `where`. */
interface Join {
  readonly target: DirtyTarget;
  readonly via: JoinIndex;
  readonly where: Where | null;
}

function addJoin(joins: Join[], target: DirtyTarget, via: JoinIndex, where: Where | undefined): void {
  const w = where ?? null;
  if (!joins.some((j) => j.target === target && j.via === via && j.where === w)) joins.push({ target, via, where: w });
}

function notifyJoin(j: Join, key: string, before: unknown, after: unknown): void {
  j.via.forEachUnder(key, (readerKey) => {
    if (j.where === null || j.target.passes(readerKey, j.where, before, after)) j.target.markDirty(readerKey);
  });
}

/** Where a dirty reader is reported: the derived collection that owns it. */
export interface DirtyTarget {
  markDirty(key: string): void;
  /** Every key (a singleton read by the collection changed). */
  markAllDirty(): void;
  /** Whether `where` passes `before` or `after` for the key's current input (true when the key is going away). */
  passes(key: string, where: Where, before: unknown, after: unknown): boolean;
}

type Bucket = Reader | Map<Reader, Where | null>;
type Table = Map<string, Bucket>;

/** One key of a derived collection, as a reader of other stores. */
export class Reader {
  readonly target: DirtyTarget;
  readonly key: string;
  /** table, key, table, key, ... of every registration of the last run. */
  #registrations: (Table | string)[] = [];
  /** table, key, filter (null: none), ... of the reads of the run in progress. */
  #reads: (Table | string | Where | null)[] = [];

  constructor(target: DirtyTarget, key: string) {
    this.target = target;
    this.key = key;
  }

  /** Registrations of the last completed run. */
  get reads(): number {
    return this.#registrations.length / 2;
  }

  /** A read of the run in progress; registered when the run ends (commit). */
  read(table: Table, key: string, where: Where | undefined): void {
    this.#reads.push(table, key, where ?? null);
  }

  /**
   * The run is over: its reads become the registrations. A run that read what the last one read, in the same
   * order and through the same filters (the common case: most changes do not change what a transform reads),
   * leaves the buckets untouched, so recomputing does not churn the dependency tables.
   */
  commit(): void {
    const reads = this.#reads;
    this.#reads = [];
    if (this.#readTheSame(reads)) return;
    this.clear();
    const regs: (Table | string)[] = new Array(((reads.length / 3) * 2) | 0);
    let n = 0;
    for (let i = 0; i < reads.length; i += 3) {
      const table = reads[i] as Table;
      const key = reads[i + 1] as string;
      if (this.#register(table, key, (reads[i + 2] as Where | null) ?? undefined)) {
        regs[n++] = table;
        regs[n++] = key;
      }
    }
    regs.length = n;
    this.#registrations = regs;
  }

  #readTheSame(reads: readonly (Table | string | Where | null)[]): boolean {
    const regs = this.#registrations;
    if (regs.length / 2 !== reads.length / 3) return false;
    for (let i = 0, j = 0; i < regs.length; i += 2, j += 3) {
      const table = regs[i] as Table;
      const key = regs[i + 1] as string;
      if (reads[j] !== table || reads[j + 1] !== key) return false;
      const bucket = table.get(key);
      const where = bucket === this ? null : bucket instanceof Map ? bucket.get(this) : undefined;
      if (where !== reads[j + 2]) return false;
    }
    return true;
  }

  /** Adds this reader to a bucket; false if it was there already without a filter (nothing to undo later). */
  #register(table: Table, key: string, where: Where | undefined): boolean {
    const cur = table.get(key);
    if (cur === undefined) {
      table.set(key, where === undefined ? this : new Map([[this, where]]));
    } else if (cur instanceof Reader) {
      if (cur === this && where === undefined) return false;
      const m = new Map<Reader, Where | null>([[cur, null]]);
      addTo(m, this, where);
      table.set(key, m);
    } else addTo(cur, this, where);
    return true;
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
  else if (prev !== null) m.set(reader, where === undefined ? null : (v, i) => prev(v, i) || where(v, i));
}

function notify(bucket: Bucket | undefined, before: unknown, after: unknown): void {
  if (bucket === undefined) return;
  if (bucket instanceof Reader) {
    bucket.target.markDirty(bucket.key);
    return;
  }
  for (const [reader, where] of bucket) {
    if (where === null || reader.target.passes(reader.key, where, before, after)) reader.target.markDirty(reader.key);
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
  /** Collections that read this store by their own keys, and those that read an index by them. */
  readonly #byOwnKey = new Set<DirtyTarget>();
  readonly #indexByOwnKey = new Map<string, Set<DirtyTarget>>();
  /** Collections any key of which read this (singleton) store. */
  readonly #byCollection = new Set<DirtyTarget>();
  readonly #joinsByKey: Join[] = [];
  readonly #joinsByIndex = new Map<string, Join[]>();

  /** Some keys of `target` read by key through the join index `via` (see FetchOptions.via). */
  joinKey(target: DirtyTarget, via: JoinIndex): void {
    addJoin(this.#joinsByKey, target, via, undefined);
  }

  joinIndex(target: DirtyTarget, index: string, via: JoinIndex, where: Where | undefined): void {
    let joins = this.#joinsByIndex.get(index);
    if (joins === undefined) {
      joins = [];
      this.#joinsByIndex.set(index, joins);
    }
    addJoin(joins, target, via, where);
  }

  readKey(reader: Reader, key: string): void {
    if (key === reader.key) this.#byOwnKey.add(reader.target);
    else reader.read(this.#byKey, key, undefined);
  }

  readIndex(reader: Reader, index: string, key: string, where: Where | undefined): void {
    if (key === reader.key && where === undefined) {
      let own = this.#indexByOwnKey.get(index);
      if (own === undefined) {
        own = new Set();
        this.#indexByOwnKey.set(index, own);
      }
      own.add(reader.target);
      return;
    }
    let table = this.#byIndex.get(index);
    if (table === undefined) {
      table = new Map();
      this.#byIndex.set(index, table);
    }
    reader.read(table, key, where);
  }

  /** Any key of `target` read this store (a singleton): a change of it makes all of them dirty. */
  readForCollection(target: DirtyTarget): void {
    this.#byCollection.add(target);
  }

  readAll(reader: Reader, where: Where | undefined): void {
    reader.read(this.#all, ALL, where);
  }

  /** Whether anyone reads index `index` (its keys need not be computed for dependents otherwise). */
  readsIndex(index: string): boolean {
    return (this.#byIndex.get(index)?.size ?? 0) > 0 || this.#indexByOwnKey.has(index) || this.#joinsByIndex.has(index);
  }

  /** `key` changed from `before` to `after` (either may be absent): marks its readers dirty. */
  keyChanged(key: string, before: unknown, after: unknown): void {
    notify(this.#byKey.get(key), before, after);
    notify(this.#all.get(ALL), before, after);
    // A collection reading by its own keys may not have this key: then its recomputation is a no-op.
    for (const t of this.#byOwnKey) t.markDirty(key);
    for (const t of this.#byCollection) t.markAllDirty();
    for (const j of this.#joinsByKey) notifyJoin(j, key, before, after);
  }

  /** A value changed under the index keys `keys` (before and after together). */
  indexChanged(index: string, keys: readonly string[], before: unknown, after: unknown): void {
    const table = this.#byIndex.get(index);
    if (table !== undefined) for (const k of keys) notify(table.get(k), before, after);
    const own = this.#indexByOwnKey.get(index);
    if (own !== undefined) for (const t of own) for (const k of keys) t.markDirty(k);
    const joins = this.#joinsByIndex.get(index);
    if (joins !== undefined) for (const j of joins) for (const k of keys) notifyJoin(j, k, before, after);
  }
}
