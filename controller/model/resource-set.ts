/**
 * A ResourceSet (ReadonlyMap of name → XdsResource) that is cheap to snapshot after a small change. Resources are
 * spread over a fixed number of chunks by a hash of their name; a new snapshot copies only the chunks that
 * changed since the previous one and shares the rest. With 11k resources a one-resource change copies ~170
 * entries instead of 11k, which is most of what a rebuild would otherwise cost.
 *
 * Snapshots are immutable: a chunk that a published snapshot holds is never written again (copy on write).
 */
import type { ResourceSet, XdsResource } from '../../lib/xds/resource.js';

const CHUNK_BITS = 6;
const CHUNKS = 1 << CHUNK_BITS;

/** FNV-1a over UTF-16 code units; only needs to spread names evenly. */
function chunkOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & (CHUNKS - 1);
}

/** An immutable view over chunks; iteration order is chunk by chunk (stable for equal contents built alike). */
class ChunkedResourceSet implements ResourceSet {
  constructor(
    private readonly chunks: readonly ReadonlyMap<string, XdsResource>[],
    readonly size: number,
  ) {}

  get(name: string): XdsResource | undefined {
    return this.chunks[chunkOf(name)]?.get(name);
  }

  has(name: string): boolean {
    return this.chunks[chunkOf(name)]?.has(name) ?? false;
  }

  forEach(cb: (value: XdsResource, key: string, map: ReadonlyMap<string, XdsResource>) => void, thisArg?: unknown): void {
    for (const [k, v] of this) cb.call(thisArg, v, k, this);
  }

  *entries(): MapIterator<[string, XdsResource]> {
    for (const c of this.chunks) yield* c.entries();
  }

  *keys(): MapIterator<string> {
    for (const c of this.chunks) yield* c.keys();
  }

  *values(): MapIterator<XdsResource> {
    for (const c of this.chunks) yield* c.values();
  }

  [Symbol.iterator](): MapIterator<[string, XdsResource]> {
    return this.entries();
  }
}

/** The mutable side, owned by one builder: set/delete between snapshots, then `snapshot()`. */
export class ResourceSetBuilder {
  #chunks: Map<string, XdsResource>[] = Array.from({ length: CHUNKS }, () => new Map());
  /** Chunks already copied since the last snapshot (safe to write in place). */
  readonly #owned = new Set<number>();
  #size = 0;
  #last: ResourceSet | undefined;

  #writable(i: number): Map<string, XdsResource> {
    let c = this.#chunks[i] as Map<string, XdsResource>;
    if (!this.#owned.has(i)) {
      c = new Map(c);
      this.#chunks[i] = c;
      this.#owned.add(i);
    }
    return c;
  }

  get(name: string): XdsResource | undefined {
    return this.#chunks[chunkOf(name)]?.get(name);
  }

  set(r: XdsResource): void {
    const c = this.#writable(chunkOf(r.name));
    if (!c.has(r.name)) this.#size++;
    c.set(r.name, r);
    this.#last = undefined;
  }

  delete(name: string): void {
    const i = chunkOf(name);
    if (!this.#chunks[i]?.has(name)) return;
    this.#writable(i).delete(name);
    this.#size--;
    this.#last = undefined;
  }

  clear(): void {
    this.#chunks = Array.from({ length: CHUNKS }, () => new Map());
    this.#owned.clear();
    this.#size = 0;
    this.#last = undefined;
  }

  /** The current contents as an immutable set; the same object until the next change. */
  snapshot(): ResourceSet {
    if (this.#last === undefined) {
      this.#last = new ChunkedResourceSet([...this.#chunks], this.#size);
      // The snapshot now shares every chunk: the next write to one copies it first.
      this.#owned.clear();
    }
    return this.#last;
  }
}
