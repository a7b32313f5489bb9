// The data channel's TCP (and TLS) connection, opened while StartSession is still being
// answered: against the real service that takes DNS, TCP and TLS (2-3 round trips) off
// the time to the first SSH byte. It is used only if the StreamUrl that comes back has
// the same origin; the URL itself is still sent verbatim in the websocket request.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export class Preconnection {
  readonly origin: string;
  private socket: Socket | undefined;
  /** Why the connection is no longer usable, once it is not. */
  failure: string | undefined;

  /** `origin` is ws:// or wss:// (host and port); `ca` as for the data channel. */
  constructor(origin: URL, ca?: string) {
    this.origin = origin.origin;
    const host = origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname;
    const secure = origin.protocol === 'wss:';
    const port = Number(origin.port) || (secure ? 443 : 80);
    // The options ws would use for this URL, so the server cannot tell the difference.
    const socket = secure ? tlsConnect({ host, port, servername: isIP(host) ? '' : host, ...(ca !== undefined ? { ca } : {}) }) : netConnect({ host, port });
    const lost = (why: string) => {
      this.failure ??= why;
      this.socket = undefined;
    };
    socket.on('error', (err: NodeJS.ErrnoException) => lost(err.code ?? err.message));
    socket.once('close', () => lost('closed'));
    socket.once('end', () => lost('closed by the server'));
    this.socket = socket;
  }

  /**
   * The connection, if it is still open and `url` has the same origin; it is then the
   * caller's (its error listener stays: the caller adds its own). Else it is closed.
   */
  take(url: URL): Socket | undefined {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return undefined;
    if (url.origin !== this.origin) {
      this.failure ??= `StreamUrl is at ${url.origin}`;
      socket.destroy();
      return undefined;
    }
    return socket;
  }

  /** Closes the connection if nobody took it. */
  discard(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }
}
