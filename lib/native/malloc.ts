/**
 * glibc's allocator seen from inside (mallinfo2(3), malloc_trim(3)), for diagnostics: memory that OpenSSL, nghttp2
 * and Node allocate per connection is invisible to process.memoryUsage(), and RSS alone cannot tell memory still
 * in use from freed memory the allocator keeps. Used by bench:idle.
 */
import { malloc } from './libc.js';

export interface MallocStats {
  /** Bytes allocated and not freed, in all arenas plus mmap()ed chunks. */
  readonly inUseBytes: number;
  /** Bytes free inside the arenas: held by the process, counted in RSS where touched, reusable by the next malloc. */
  readonly freeHeldBytes: number;
}

export function mallocStats(): MallocStats {
  const m = malloc.mallinfo2();
  return { inUseBytes: Number(m.uordblks) + Number(m.hblkhd), freeHeldBytes: Number(m.fordblks) };
}

/** Returns free arena memory to the kernel where whole pages allow (malloc_trim(0)). */
export function mallocTrim(): void {
  malloc.mallocTrim(0);
}
