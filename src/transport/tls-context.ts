// One TLS context per CA bundle for the whole process. A context made from a bundle
// parses every certificate in it: with a system-sized bundle as AWS_CA_BUNDLE (~140
// certificates, as corporate set-ups often have) that is ~22 ms of the main thread
// for each connection that made its own (the API's, the data channel's, the SDK's).
import { createSecureContext, type SecureContext } from 'node:tls';

const contexts = new Map<string, SecureContext>();

/** Node's error codes for a certificate chain or name that TLS verification refused. */
export const UNTRUSTED_CERTIFICATE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/;

/** What to tell a person whose TLS connection to AWS was refused for its certificate. */
export const CA_BUNDLE_ADVICE = 'if a proxy inspects TLS, pass its CA certificate with --ca-bundle or AWS_CA_BUNDLE';

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

/** Whether the context for `ca` has been made (for tests: it is made only where TLS needs it). */
export function hasContextFor(ca: string): boolean {
  return contexts.has(ca);
}
