/** A collection of at most one value, stored under the empty key of an ordinary store. */
import type { EventHandler, Singleton, SubscribeOptions } from './collection.js';
import type { Store } from './store.js';

export const SINGLETON_KEY = '';

export class SingletonView<O> implements Singleton<O> {
  readonly store: Store<O>;

  constructor(store: Store<O>) {
    this.store = store;
  }

  get name(): string {
    return this.store.name;
  }

  get(): O | undefined {
    return this.store.get(SINGLETON_KEY);
  }

  subscribe(handler: EventHandler<O>, options?: SubscribeOptions): () => void {
    return this.store.subscribe(handler, options);
  }
}
