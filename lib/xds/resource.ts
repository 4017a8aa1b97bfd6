/**
 * An xDS resource as both ends handle it: its name, an opaque version, and the encoded message (the value of
 * the google.protobuf.Any whose type URL is the collection's). Producers build these once per change; the
 * server compares versions to know what each client is missing.
 */
import { createHash } from 'node:crypto';

export interface XdsResource {
  readonly name: string;
  /** Changes iff the encoded body changes (a content hash), so equal content is never re-sent. */
  readonly version: string;
  readonly body: Uint8Array;
}

/** All resources of one type, by name. */
export type ResourceSet = ReadonlyMap<string, XdsResource>;

/** A version derived from content: 16 hex chars of SHA-256 (collisions are irrelevant at mesh sizes). */
export function contentVersion(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex').slice(0, 16);
}

export function makeResource(name: string, body: Uint8Array): XdsResource {
  return { name, version: contentVersion(body), body };
}
