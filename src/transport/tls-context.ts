// One TLS context per CA bundle for the whole process. A context made from a bundle
// parses every certificate in it: with a system-sized bundle as AWS_CA_BUNDLE (~140
// certificates, as corporate set-ups often have) that is ~22 ms of the main thread
// for each connection that made its own (the API's, the data channel's, the SDK's).
import { createSecureContext, type SecureContext } from 'node:tls';

const contexts = new Map<string, SecureContext>();

/**
 * TLS options that trust `ca` (PEM text) instead of node's CA store: the bundle itself
 * and the context made from it once. Empty when `ca` is undefined (node's defaults).
 */
export function trustOptions(ca: string | undefined): { ca?: string; secureContext?: SecureContext } {
  if (ca === undefined) return {};
  let secureContext = contexts.get(ca);
  if (!secureContext) {
    secureContext = createSecureContext({ ca });
    contexts.set(ca, secureContext);
  }
  return { ca, secureContext };
}
