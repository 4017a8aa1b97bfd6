/**
 * The HandlerContext a transform runs with: every read registers the key being computed as a reader of what it
 * read (dependencies.ts) and returns the value as of this propagation. It also enforces the one rule that keeps
 * one pass enough: a transform reads only stores created before its own.
 */
import type { Collection, FetchOptions, HandlerContext, Index, Singleton } from './collection.js';
import type { Reader } from './dependencies.js';
import { KrtError, KrtErrorCode } from './errors.js';
import { IndexTable } from './index-table.js';
import { SINGLETON_KEY, SingletonView } from './singleton.js';
import { type Propagation, Store } from './store.js';

type Where = (value: unknown) => boolean;

/** The collection a context computes for. */
export interface ContextOwner {
  readonly name: string;
  readonly rank: number;
  readonly propagation: Propagation;
}

export class FetchContext implements HandlerContext {
  readonly #owner: ContextOwner;
  readonly #reader: Reader;
  #open = true;

  constructor(owner: ContextOwner, reader: Reader) {
    this.#owner = owner;
    this.#reader = reader;
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

  fetch<O>(collection: Collection<O>, options: FetchOptions<O> = {}): O[] {
    const s = this.#source<O>(collection, collection.name);
    s.readers.readAll(this.#reader, options.where as Where | undefined);
    return s.peekList(options.where);
  }

  fetchKey<O>(collection: Collection<O>, key: string): O | undefined {
    const s = this.#source<O>(collection, collection.name);
    s.readers.readKey(this.#reader, key);
    return s.peek(key);
  }

  fetchIndex<O>(index: Index<O>, key: string, options: FetchOptions<O> = {}): O[] {
    if (!(index instanceof IndexTable)) {
      throw new KrtError(KrtErrorCode.FOREIGN_COLLECTION, `${this.#owner.name} read an index that no runtime made`);
    }
    const table = index as IndexTable<O>;
    const s = this.#source<O>(table.store, `${table.store.name} by ${table.name}`);
    s.readers.readIndex(this.#reader, table.name, key, options.where as Where | undefined);
    return table.peekLookup(key, options.where);
  }

  fetchSingleton<O>(singleton: Singleton<O>): O | undefined {
    if (!(singleton instanceof SingletonView)) {
      throw new KrtError(KrtErrorCode.FOREIGN_COLLECTION, `${this.#owner.name} read a singleton that no runtime made`);
    }
    return this.fetchKey((singleton as SingletonView<O>).store, SINGLETON_KEY);
  }
}
