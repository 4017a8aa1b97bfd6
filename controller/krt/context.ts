/**
 * The HandlerContext a transform runs with: every read registers the key being computed as a reader of what it
 * read (dependencies.ts) and returns the value as of this propagation. It also enforces the one rule that keeps
 * one pass enough: a transform reads only stores created before its own.
 */
import type { Collection, FetchOptions, HandlerContext, Index, Singleton } from './collection.js';
import type { DirtyTarget, Reader, Where } from './dependencies.js';
import { KrtError, KrtErrorCode } from './errors.js';
import { IndexTable } from './index-table.js';
import { SINGLETON_KEY, SingletonView } from './singleton.js';
import { type Propagation, Store } from './store.js';

/** The collection a context computes for. */
export interface ContextOwner extends DirtyTarget {
  readonly name: string;
  readonly rank: number;
  readonly propagation: Propagation;
  /** The store its inputs come from (undefined for a singleton); only compared by identity. */
  readonly source: object | undefined;
}

export class FetchContext<I> implements HandlerContext<I> {
  readonly #owner: ContextOwner;
  readonly #reader: Reader;
  readonly #input: I;
  #open = true;

  constructor(owner: ContextOwner, reader: Reader, input: I) {
    this.#owner = owner;
    this.#reader = reader;
    this.#input = input;
  }

  #filter<O>(options: FetchOptions<O, I>): ((value: O) => boolean) | undefined {
    const where = options.where;
    if (where === undefined) return undefined;
    const input = this.#input;
    return (v) => where(v, input);
  }

  /** The transform returned: later reads would record nothing, so they are refused. */
  close(): void {
    this.#open = false;
  }

  #source<O>(c: unknown, what: string): Store<O> {
    const owner = this.#owner;
    if (!this.#open) {
      throw new KrtError(KrtErrorCode.FOREIGN_COLLECTION, `${owner.name}: a context was used after its transform returned`);
    }
    if (!(c instanceof Store) || c.propagation !== owner.propagation) {
      throw new KrtError(KrtErrorCode.FOREIGN_COLLECTION, `${owner.name} read ${what}, which belongs to another runtime`);
    }
    if (c.rank >= owner.rank) {
      throw new KrtError(
        KrtErrorCode.FETCH_ORDER,
        `${owner.name} read ${c.name}, which was created after it (or is itself); create collections in dependency order`,
      );
    }
    return c as Store<O>;
  }

  /** The join index of a read through `via`, checked: on the reader's input, and listing it under `key`. */
  #join(via: FetchOptions<unknown, I>['via'], key: string, what: string): IndexTable<I> | undefined {
    if (via === undefined) return undefined;
    const owner = this.#owner;
    if (!(via instanceof IndexTable) || via.store !== owner.source) {
      throw new KrtError(KrtErrorCode.BAD_JOIN, `${owner.name} read ${what} via an index that is not on its own input`);
    }
    const table = via as IndexTable<I>;
    if (!table.keysOf(this.#input).includes(key)) {
      throw new KrtError(
        KrtErrorCode.BAD_JOIN,
        `${owner.name} read ${what} "${key}" via ${table.name}, which does not list input "${this.#reader.key}" under it`,
      );
    }
    return table;
  }

  fetch<O>(collection: Collection<O>, options: FetchOptions<O, I> = {}): O[] {
    const s = this.#source<O>(collection, collection.name);
    s.readers.readAll(this.#reader, options.where as Where | undefined);
    return s.peekList(this.#filter(options));
  }

  fetchKey<O>(collection: Collection<O>, key: string, options: Pick<FetchOptions<O, I>, 'via'> = {}): O | undefined {
    const s = this.#source<O>(collection, collection.name);
    const via = this.#join(options.via, key, collection.name);
    if (via !== undefined) s.readers.joinKey(this.#owner, via);
    else s.readers.readKey(this.#reader, key);
    return s.peek(key);
  }

  fetchIndex<O>(index: Index<O>, key: string, options: FetchOptions<O, I> = {}): O[] {
    if (!(index instanceof IndexTable)) {
      throw new KrtError(KrtErrorCode.FOREIGN_COLLECTION, `${this.#owner.name} read an index that no runtime made`);
    }
    const table = index as IndexTable<O>;
    const s = this.#source<O>(table.store, `${table.store.name} by ${table.name}`);
    const via = this.#join(options.via, key, `${table.store.name} by ${table.name}`);
    if (via !== undefined) s.readers.joinIndex(this.#owner, table.name, via, options.where as Where | undefined);
    else s.readers.readIndex(this.#reader, table.name, key, options.where as Where | undefined);
    return table.peekLookup(key, this.#filter(options));
  }

  fetchSingleton<O>(singleton: Singleton<O>): O | undefined {
    if (!(singleton instanceof SingletonView)) {
      throw new KrtError(KrtErrorCode.FOREIGN_COLLECTION, `${this.#owner.name} read a singleton that no runtime made`);
    }
    const s = this.#source<O>((singleton as SingletonView<O>).store, singleton.name);
    s.readers.readForCollection(this.#owner);
    return s.peek(SINGLETON_KEY);
  }
}
