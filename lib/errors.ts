/**
 * The project's error base. Every error a component raises on purpose carries a stable `code`
 * (UPPER_SNAKE, prefixed by its domain: HBONE_, IDENTITY_, CA_, XDS_, CONFIG_, NATIVE_, ...) so that logs,
 * metrics and tests can key on it, and a message that says what to check next. Causes are chained with
 * the standard `cause` option.
 */
export class MeshError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** True when `err`, or any error in its `cause` chain, is a MeshError with `code`. */
export function hasErrorCode(err: unknown, code: string): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 16; e = e.cause, depth++) {
    if (e instanceof MeshError && e.code === code) return true;
  }
  return false;
}

/** The first stable code found walking the cause chain, for a log line or a metric label. */
export function errorCode(err: unknown): string {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 16; e = e.cause, depth++) {
    if (e instanceof MeshError) return e.code;
    const sys = (e as NodeJS.ErrnoException).code;
    if (typeof sys === 'string') return sys;
  }
  return 'UNKNOWN';
}

/** A readable one-line description including the cause chain. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 16; depth++) {
    if (e instanceof Error) {
      const code = e instanceof MeshError ? `[${e.code}] ` : '';
      parts.push(`${code}${e.message}`);
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join(': caused by: ');
}
