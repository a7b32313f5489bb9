/** A decode or validation failure that names the field and says why. */
export interface ProtocolError {
  readonly field: string;
  readonly reason: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: ProtocolError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(field: string, reason: string): Result<T> {
  return { ok: false, error: { field, reason } };
}

export function describeError(e: ProtocolError): string {
  return `${e.field}: ${e.reason}`;
}
