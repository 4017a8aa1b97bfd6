/**
 * Collections fed from outside (krt's static collections and informer-backed ones): values are set, deleted, or
 * replaced wholesale by an immutable map that is diffed against the previous one by identity, which is how a
 * watch hands over its state (an unchanged object is the same object). A replaced map is borrowed, not copied;
 * it is copied only if a single key is written afterwards.
 */
import type { Equals } from './collection.js';
import { valueEquals } from './equality.js';
import { KrtError, KrtErrorCode } from './errors.js';
import { SINGLETON_KEY, SingletonView } from './singleton.js';
import { type Propagation, Store } from './store.js';

export class InputCollection<O> extends Store<O> {
  readonly #equals: Equals<O>;
  #map: ReadonlyMap<string, O> = new Map();
  /** #map is ours to write (not a borrowed one). */
  #owned = true;

  constructor(propagation: Propagation, name: string, rank: number, equals: Equals<O> = valueEquals) {
    super(propagation, name, rank);
    this.#equals = equals;
  }

  protected get values(): ReadonlyMap<string, O> {
    return this.#map;
  }

  settle(): void {}

  process(): void {}

  #guard(): void {
    if (this.propagation.propagating) {
      throw new KrtError(KrtErrorCode.REENTRANT_CHANGE, `input ${this.name} changed during a propagation; change inputs only from outside`);
    }
  }

  #writable(): Map<string, O> {
    if (!this.#owned) {
      this.#map = new Map(this.#map);
      this.#owned = true;
    }
    return this.#map as Map<string, O>;
  }

  set(key: string, value: O): void {
    this.#guard();
    const before = this.#map.get(key);
    if (before !== undefined && (before === value || this.#equals(before, value))) return;
    this.#writable().set(key, value);
    this.changed(key, before, value);
  }

  delete(key: string): void {
    this.#guard();
    const before = this.#map.get(key);
    if (before === undefined) return;
    this.#writable().delete(key);
    this.changed(key, before, undefined);
  }

  /**
   * Makes `next` the contents: keys whose value is a different object and not equal by value change. `next` is
   * kept as is and must not be mutated afterwards.
   */
  replaceAll(next: ReadonlyMap<string, O>): void {
    this.#guard();
    const prev = this.#map;
    if (prev === next) return;
    this.#map = next;
    this.#owned = false;
    let kept = 0;
    for (const [k, after] of next) {
      const before = prev.get(k);
      if (before !== undefined) kept++;
      if (before === after || (before !== undefined && this.#equals(before, after))) continue;
      this.changed(k, before, after);
    }
    // Every previous key is still there: nothing was deleted, and the second pass can be skipped.
    if (kept === prev.size) return;
    for (const [k, before] of prev) if (!next.has(k)) this.changed(k, before, undefined);
  }
}

/** A singleton fed from outside (configuration, options). */
export class InputSingleton<O> extends SingletonView<O> {
  readonly #input: InputCollection<O>;

  constructor(input: InputCollection<O>) {
    super(input);
    this.#input = input;
  }

  set(value: O | undefined): void {
    if (value === undefined) this.#input.delete(SINGLETON_KEY);
    else this.#input.set(SINGLETON_KEY, value);
  }
}
