/**
 * The derived-collection runtime, in the spirit of Istio's krt (pkg/kube/krt): inputs are fed from outside,
 * collections are derived from them by pure transforms, and the runtime records what every transform read so a
 * change recomputes exactly the keys that read it, and passes on only real changes.
 *
 * It is synchronous and deterministic, unlike krt's informer-driven queues: changes to inputs only mark work;
 * a propagation runs when a derived value is read (or on flush()), visiting the stores once in creation order.
 * That order is a topological order because a transform may only read stores created before its own, so by the
 * time a store is visited everything it reads is final. Event handlers get one batch per store per propagation.
 *
 *   const rt = new Runtime();
 *   const pods = rt.input<Pod>('pods');
 *   const nodes = rt.input<Node>('nodes');
 *   const workloads = rt.collection('workloads', pods, (ctx, pod) => toWorkload(pod, ctx.fetchKey(nodes, pod.node)));
 *   pods.replaceAll(podMap);   // marks work
 *   workloads.get('ns/a');     // propagates, then reads
 */
import type { Collection, CollectionOptions, ManyOptions, ManyTransform, Singleton, SingletonTransform, Transform } from './collection.js';
import { DerivedCollection } from './derived.js';
import { valueEquals } from './equality.js';
import { KrtError, KrtErrorCode } from './errors.js';
import { InputCollection, InputSingleton } from './input.js';
import { SingletonView } from './singleton.js';
import { type Propagation, Store } from './store.js';

export interface RuntimeOptions {
  /**
   * Receives errors a propagation met (a transform or handler that threw, a duplicate output key). The
   * propagation always completes first. Without it, the first error is thrown once the propagation is done.
   */
  readonly onError?: (err: KrtError) => void;
}

/** What a propagation does with each store, in creation order. */
interface Stage {
  readonly name: string;
  process(): void;
  deliver(): void;
}

export class Runtime implements Propagation {
  readonly #stores: Stage[] = [];
  readonly #names = new Set<string>();
  readonly #onError: ((err: KrtError) => void) | undefined;
  #dirty = false;
  #propagating = false;
  #errors: KrtError[] = [];

  constructor(options: RuntimeOptions = {}) {
    this.#onError = options.onError;
  }

  get propagating(): boolean {
    return this.#propagating;
  }

  changed(): void {
    this.#dirty = true;
  }

  settle(): void {
    if (this.#dirty && !this.#propagating) this.flush();
  }

  report(err: KrtError): void {
    this.#errors.push(err);
  }

  /** Propagates every pending change now. */
  flush(): void {
    if (this.#propagating) return;
    this.#propagating = true;
    try {
      // One pass settles everything (see the header); the loop only confirms that the pass changed nothing behind it.
      while (this.#dirty) {
        this.#dirty = false;
        for (const s of this.#stores) {
          s.process();
          s.deliver();
        }
      }
    } finally {
      this.#propagating = false;
    }
    if (this.#errors.length === 0) return;
    const errors = this.#errors;
    this.#errors = [];
    if (this.#onError !== undefined) {
      for (const e of errors) this.#onError(e);
      return;
    }
    throw errors[0];
  }

  #add<S extends Stage>(name: string, make: (rank: number) => S): S {
    if (this.#names.has(name)) throw new KrtError(KrtErrorCode.DUPLICATE_KEY, `a collection named ${name} already exists`);
    const s = make(this.#stores.length);
    this.#names.add(name);
    this.#stores.push(s);
    return s;
  }

  #sourceOf<I>(name: string, source: Collection<I>): Store<I> {
    if (!(source instanceof Store) || source.propagation !== this) {
      throw new KrtError(KrtErrorCode.FOREIGN_COLLECTION, `${name} is derived from ${source.name}, which belongs to another runtime`);
    }
    return source as Store<I>;
  }

  /** A collection fed from outside. Values equal by `equals` (default structural) are no change. */
  input<O>(name: string, options: CollectionOptions<O> = {}): InputCollection<O> {
    return this.#add(name, (rank) => new InputCollection<O>(this, name, rank, options.equals ?? valueEquals));
  }

  inputSingleton<O>(name: string, options: CollectionOptions<O> = {}): InputSingleton<O> {
    return new InputSingleton(this.input<O>(name, options));
  }

  /** One output (or none) per input value, stored under the input's key (krt `NewCollection`). */
  collection<I, O>(
    name: string,
    source: Collection<I>,
    transform: Transform<I, O>,
    options: CollectionOptions<O> = {},
  ): DerivedCollection<I, O> {
    const from = this.#sourceOf(name, source);
    return this.#add(
      name,
      (rank) => new DerivedCollection<I, O>(this, name, rank, from, { kind: 'one', transform }, options.equals ?? valueEquals),
    );
  }

  /** Any number of outputs per input value, each under `options.key` (krt `NewManyCollection`). */
  manyCollection<I, O>(
    name: string,
    source: Collection<I>,
    transform: ManyTransform<I, O>,
    options: ManyOptions<O>,
  ): DerivedCollection<I, O> {
    const from = this.#sourceOf(name, source);
    return this.#add(
      name,
      (rank) =>
        new DerivedCollection<I, O>(this, name, rank, from, { kind: 'many', transform, key: options.key }, options.equals ?? valueEquals),
    );
  }

  /** One value computed from what it reads (krt `NewSingleton`). */
  singleton<O>(name: string, transform: SingletonTransform<O>, options: CollectionOptions<O> = {}): DerivedSingleton<O> {
    const store = this.#add(
      name,
      (rank) =>
        new DerivedCollection<never, O>(this, name, rank, undefined, { kind: 'singleton', transform }, options.equals ?? valueEquals),
    );
    return new DerivedSingleton(store);
  }
}

/** A derived singleton; `stats` as a collection's. */
export class DerivedSingleton<O> extends SingletonView<O> implements Singleton<O> {
  readonly #store: DerivedCollection<never, O>;

  constructor(store: DerivedCollection<never, O>) {
    super(store);
    this.#store = store;
  }

  get stats(): DerivedCollection<never, O>['stats'] {
    return this.#store.stats;
  }
}
