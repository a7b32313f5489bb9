// Connections opened before we know we need them, while the process is busy with
// something else: the SSM API's while the AWS SDK loads, the data channel's while
// StartSession is answered. Against the real service each takes DNS, TCP and TLS
// (2-3 round trips) off the time to the first SSH byte. A connection is used only by a
// request to the same origin (scheme, host and port); the request itself is unchanged.
import type { Agent as HttpAgent, AgentOptions } from 'node:http';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { connectionTarget, proxyFor, RoutingHttpAgent, RoutingHttpsAgent, type Callback, type ConnectArgs, type TunnelListener } from './proxy.ts';
import { trustOptions } from './tls-context.ts';

export class Preconnection {
  readonly origin: string;
  private socket: Socket | undefined;
  /** For TLS: the TCP connection and what to make the TLS socket over it with, until it is made. */
  private pendingTls: { tcp: Socket; options: ConnectionOptions; ca: string | undefined } | undefined;
  /** Why the connection is no longer usable, once it is not. */
  failure: string | undefined;
  /** Whether its TCP handshake has completed (TLS may still be under way). */
  established = false;

  /** `origin`: ws://, wss://, http:// or https:// (host and port); `ca` as for the connection's user. */
  constructor(origin: URL, ca?: string) {
    this.origin = origin.origin;
    const host = origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname;
    const secure = origin.protocol === 'wss:' || origin.protocol === 'https:';
    const port = Number(origin.port) || (secure ? 443 : 80);
    const tcp = netConnect({ host, port });
    // Unused, it must not keep the process alive; whoever takes it holds it.
    tcp.unref();
    tcp.once('connect', () => (this.established = true));
    this.watch(tcp);
    if (!secure) {
      this.socket = tcp;
      return;
    }
    // TLS over it, with the options ws and node's https agent would use (the server cannot
    // tell the difference), one turn of the event loop later: a process's first TLS
    // socket costs 25-40 ms of the main thread (OpenSSL's set-up, node's CA store), and
    // the DNS lookup and TCP handshake go on meanwhile instead of after it.
    this.pendingTls = { tcp, options: { host, port, servername: isIP(host) ? '' : host }, ca };
    setImmediate(() => this.startTls());
  }

  /** Makes the TLS socket over the TCP connection, if that is still to do and the connection still stands. */
  private startTls(): void {
    const pending = this.pendingTls;
    if (!pending || this.failure !== undefined) return;
    this.pendingTls = undefined;
    // The CA bundle's context is made here too, not in the constructor: with a large bundle it is as costly.
    const tls = tlsConnect({ socket: pending.tcp, ...pending.options, ...trustOptions(pending.ca) });
    this.watch(tls);
    this.socket = tls;
  }

  private watch(socket: Socket): void {
    const lost = (why: string) => {
      this.failure ??= why;
      this.socket = undefined;
    };
    socket.on('error', (err: NodeJS.ErrnoException) => lost(err.code ?? err.message));
    socket.once('close', () => lost('closed'));
    socket.once('end', () => lost('closed by the server'));
  }

  /** The connection (its TLS socket made now if still to come), or undefined if it is gone; it then belongs to the caller. */
  private claim(): Socket | undefined {
    this.startTls();
    const socket = this.socket;
    this.socket = undefined;
    return socket;
  }

  /**
   * The connection, if it is still open and `url` has the same origin; it is then the
   * caller's (its error listener stays: the caller adds its own). Else it is closed.
   */
  take(url: URL): Socket | undefined {
    if (url.origin !== this.origin) {
      if (this.socket || this.pendingTls) this.failure ??= `StreamUrl is at ${url.origin}`;
      this.discard();
      return undefined;
    }
    return this.claim()?.ref();
  }

  /** The connection if it is still open and to `origin` (as URL.origin writes it); else undefined, and it stays. */
  takeIfTo(origin: string): Socket | undefined {
    if (origin !== this.origin) return undefined;
    return this.claim()?.ref();
  }

  /** Closes the connection if nobody took it. */
  discard(): void {
    (this.socket ?? this.pendingTls?.tcp)?.destroy();
    this.socket = undefined;
    this.pendingTls = undefined;
  }
}

/**
 * A connection ahead to the data channel at `streamUrl` (or its origin), unless the
 * websocket would not use it: ws:// where only wss:// is allowed, or a proxy applies.
 * Throws what parsing the URL, reading the proxy settings or connecting throws.
 */
export function dataChannelPreconnection(streamUrl: string, allowInsecure: boolean, ca?: string): Preconnection | undefined {
  const url = new URL(streamUrl);
  if (!(url.protocol === 'wss:' || (url.protocol === 'ws:' && allowInsecure)) || proxyFor(url)) return undefined;
  return new Preconnection(url, ca);
}

/**
 * An http(s) agent whose first connection to `pre`'s origin is `pre`'s, once it is set
 * (it may come after the agent is made); every other connection is its own, routed as
 * HTTP(S)_PROXY and NO_PROXY say for its host (see RoutingHttpsAgent).
 */
export function agentWithPreconnection(
  secure: boolean,
  options: AgentOptions & ConnectionOptions,
  onUse?: () => void,
  onTunnel?: TunnelListener,
): { agent: HttpAgent; use(pre: Preconnection): void; discard(): void } {
  let pending: Preconnection | undefined;
  const takeFor = (options: ConnectArgs): Socket | undefined => {
    const origin = pending && connectionTarget(secure, options)?.origin;
    const socket = origin ? pending?.takeIfTo(origin) : undefined;
    if (socket) {
      pending = undefined;
      onUse?.();
    }
    return socket;
  };
  const agent = secure
    ? new (class extends RoutingHttpsAgent {
        override createConnection(options: ConnectArgs, cb?: Callback): Duplex | undefined {
          return takeFor(options) ?? super.createConnection(options, cb);
        }
      })(options, process.env, onTunnel)
    : new (class extends RoutingHttpAgent {
        override createConnection(options: ConnectArgs, cb?: Callback): Duplex | undefined {
          return takeFor(options) ?? super.createConnection(options, cb);
        }
      })(options, process.env, onTunnel);
  return {
    agent,
    use(pre) {
      pending?.discard();
      pending = pre;
    },
    discard() {
      pending?.discard();
      pending = undefined;
    },
  };
}
