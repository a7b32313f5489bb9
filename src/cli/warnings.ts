// The AWS SDK warns about the Node version on every start under Node < 22.
// ssh shows a ProxyCommand's stderr on every connection, so that one warning
// is dropped; every other warning still reaches Node's default handling.

const DROPPED_PREFIX = 'NodeVersionSupportWarning';

type EmitWarning = typeof process.emitWarning;

let original: EmitWarning | undefined;

function isDropped(warning: unknown, typeOrOptions: unknown): boolean {
  if (typeof warning === 'string' && warning.startsWith(DROPPED_PREFIX)) return true;
  if (warning instanceof Error && (warning.name.startsWith(DROPPED_PREFIX) || warning.message.startsWith(DROPPED_PREFIX))) {
    return true;
  }
  if (typeof typeOrOptions === 'string') return typeOrOptions.startsWith(DROPPED_PREFIX);
  if (typeOrOptions !== null && typeof typeOrOptions === 'object') {
    const type = (typeOrOptions as { type?: unknown }).type;
    return typeof type === 'string' && type.startsWith(DROPPED_PREFIX);
  }
  return false;
}

/** Installs the filter once; later calls do nothing. */
export function installWarningFilter(): void {
  if (original) return;
  const emit = process.emitWarning;
  original = emit;
  const filtered = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    if (isDropped(warning, rest[0])) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  };
  process.emitWarning = filtered as EmitWarning;
}

/** Restores Node's own emitWarning; for tests. */
export function uninstallWarningFilter(): void {
  if (!original) return;
  process.emitWarning = original;
  original = undefined;
}
