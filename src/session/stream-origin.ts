// Where the data channel will be, known before StartSession answers, so that its
// connection can be opened meanwhile (see Preconnection). The service's StreamUrl is
// wss://ssmmessages.<region>.<partition's DNS suffix>/v1/data-channel/... (PROTOCOL.md
// §2.2); with another endpoint (a simulator, a private one) we remember the origin the
// last StreamUrl had for that endpoint and region.
import { dnsSuffix } from '../aws/partition.ts';

/** The key under which the origin is remembered. */
export function streamOriginKey(region: string, endpointUrl: string | undefined): string {
  return `${endpointUrl ?? 'default'} ${region}`;
}

/** The expected origin (ws:// or wss:// scheme, host and port), or undefined when there is no good guess. */
export function expectedStreamOrigin(region: string, endpointUrl: string | undefined, remembered: Record<string, string>): string | undefined {
  const known = remembered[streamOriginKey(region, endpointUrl)];
  if (known) return known;
  const suffix = endpointUrl === undefined ? dnsSuffix(region) : undefined;
  return suffix ? `wss://ssmmessages.${region}.${suffix}` : undefined;
}

const MAX_REMEMBERED = 16;

/** A ws:// or wss:// origin as URL.origin writes it. */
function isOrigin(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.origin === text;
  } catch {
    return false;
  }
}

/** Reads the note written by `rememberStreamOrigin`; a damaged one counts as empty, a damaged entry as absent. */
export function parseRememberedOrigins(note: string | undefined): Record<string, string> {
  if (!note) return {};
  try {
    const value = JSON.parse(note) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
    return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string' && isOrigin(e[1])));
  } catch {
    return {};
  }
}

/**
 * The note's new text when `streamUrl`'s origin is not what was expected for this
 * endpoint and region; undefined when it was (the usual case: nothing to write).
 */
export function rememberStreamOrigin(remembered: Record<string, string>, region: string, endpointUrl: string | undefined, streamUrl: string): string | undefined {
  let origin: string;
  try {
    origin = new URL(streamUrl).origin;
  } catch {
    return undefined;
  }
  if (origin === 'null' || origin === expectedStreamOrigin(region, endpointUrl, remembered)) return undefined;
  const key = streamOriginKey(region, endpointUrl);
  // The newest last; the oldest go beyond MAX_REMEMBERED endpoints.
  const entries = Object.entries(remembered).filter(([k]) => k !== key);
  entries.push([key, origin]);
  return JSON.stringify(Object.fromEntries(entries.slice(-MAX_REMEMBERED)));
}
