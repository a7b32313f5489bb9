// One data-channel websocket (PROTOCOL.md §3): connect, send the OpenDataChannel
// text frame, pass binary messages up, keep the connection alive and notice
// when it dies. Reconnecting is the session's decision, not this class's.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { encodeOpenDataChannel } from '../protocol/payloads.ts';
import { corkUntilNextTick } from './cork.ts';
import { BatchArenas, directSocket, interceptReceiver, wsSocket } from './ws-frames.ts';
import { WsReceiver } from './ws-receiver.ts';
import { CA_BUNDLE_ADVICE, trustOptions, UNTRUSTED_CERTIFICATE } from './tls-context.ts';
import { proxyAgentFor } from './proxy.ts';
import type { Preconnection } from './preconnect.ts';
import type { Socket } from 'node:net';
import { ExitCode, ProxyError } from '../cli/exit-codes.ts';
import { monotonicMs } from './clock.ts';
import type { Logger } from '../cli/log.ts';

export interface LinkOptions {
  clientId: string;
  clientVersion: string;
  /** ws:// is accepted only when the SSM endpoint itself is a loopback override (tests, the demo). */
  allowInsecure: boolean;
  logger: Logger;
  connectTimeoutMs?: number;
  pingIntervalMs?: number;
  /** No frame or pong for this long means the connection is dead (§3.4: 90 s). */
  deadAfterMs?: number;
  /** PEM CAs to trust (--ca-bundle / AWS_CA_BUNDLE), as for the SSM API. */
  ca?: string;
  /** Parse incoming frames with ws's own receiver instead of ours (tests of both paths). */
  wsReceiver?: boolean;
}

/** A failed websocket open: `answered` when the service answered the upgrade (so a retry would not help). */
class OpenFailure extends Error {
  constructor(
    readonly reason: ProxyError,
    readonly why: string,
    readonly answered: boolean,
  ) {
    super(reason.message);
  }
}

/** Largest message accepted from the service; its frames are a few KiB. */
const MAX_MESSAGE = 16 * 1024 * 1024;

export interface LinkEvents {
  message: [Buffer];
  down: [string];
}

export class WebSocketLink extends EventEmitter<LinkEvents> {
  private ws: WebSocket | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  /** Fires when the dead-connection timeout falls between two pings. */
  private deadTimer: NodeJS.Timeout | undefined;
  private lastHeard = 0;
  /**
   * monotonicMs() when the bytes of the message being delivered were read: taken once per
   * socket read, not per message (a read holds dozens of acks).
   */
  receivedAt = 0;
  private closedByUs = false;
  /** Set while close() waits for the close handshake to end. */
  private closeWaiter: (() => void) | null = null;
  private readonly connectTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly deadAfterMs: number;
  private readonly arenas = new BatchArenas();
  /** Whether the open websocket's frames are parsed by WsReceiver (else by ws). */
  ownReceiver = false;

  constructor(private readonly opts: LinkOptions) {
    super();
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 15_000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 30_000;
    this.deadAfterMs = opts.deadAfterMs ?? 90_000;
  }

  get isOpen(): boolean {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Opens the websocket and sends OpenDataChannel. Rejects with a ProxyError (exit code 6).
   * `pre` is a connection opened ahead (see Preconnection): used if it is to the same
   * origin and no proxy is in the way; if the websocket fails on it before the service
   * has answered, a fresh connection is tried once.
   */
  async connect(streamUrl: string, token: string, pre?: Preconnection): Promise<void> {
    let url: URL;
    let agent: ReturnType<typeof proxyAgentFor>;
    let socket: Socket | undefined;
    try {
      url = this.checkUrl(streamUrl);
      agent = proxyAgentFor(url, this.trustFor(url));
      socket = pre && !agent ? pre.take(url) : undefined;
    } finally {
      pre?.discard();
    }
    this.closedByUs = false;
    if (pre) this.opts.logger.trace(socket ? 'data channel: using the connection opened ahead' : `data channel: not using the connection opened ahead (${agent ? 'a proxy is set' : (pre.failure ?? 'unusable')})`);
    if (socket) {
      try {
        return await this.open(url, token, agent, socket);
      } catch (err) {
        if (!(err instanceof OpenFailure)) throw err;
        if (err.answered) throw err.reason;
        this.opts.logger.debug(`data channel: the connection opened ahead failed (${err.why}); connecting again`);
      }
    }
    try {
      return await this.open(url, token, agent, undefined);
    } catch (err) {
      throw err instanceof OpenFailure ? err.reason : err;
    }
  }

  /**
   * The CA bundle's TLS options for a wss:// URL; none for ws:// (a simulator), where
   * making the bundle's context would be spent for nothing (~50 ms for a system-sized one).
   */
  private trustFor(url: URL): ReturnType<typeof trustOptions> {
    return url.protocol === 'wss:' ? trustOptions(this.opts.ca) : {};
  }

  private open(url: URL, token: string, agent: ReturnType<typeof proxyAgentFor>, socket: Socket | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        handshakeTimeout: this.connectTimeoutMs,
        ...this.trustFor(url),
        agent,
        maxPayload: MAX_MESSAGE,
        ...(socket ? { createConnection: () => socket } : {}),
      });
      ws.binaryType = 'nodebuffer';
      let settled = false;
      const where = `${url.protocol}//${url.host}`;
      const fail = (why: string, answered: boolean, errCode?: unknown) => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners();
        ws.on('error', () => {});
        ws.terminate();
        const untrusted = typeof errCode === 'string' && UNTRUSTED_CERTIFICATE.test(errCode);
        const reason = untrusted
          ? new ProxyError(ExitCode.Network, `cannot open the Session Manager data channel at ${where}: its TLS certificate is not trusted (${errCode}: ${why}); ${CA_BUNDLE_ADVICE}`, 'WebSocketTlsUntrusted')
          : new ProxyError(ExitCode.Network, `cannot open the Session Manager data channel at ${where}: ${why}; check your network, proxy and firewall settings for ssmmessages`, 'WebSocketOpenFailed');
        reject(new OpenFailure(reason, why, answered));
      };
      ws.once('unexpected-response', (_req, res) => fail(`the service answered HTTP ${res.statusCode}${res.statusMessage ? ` ${res.statusMessage}` : ''}`, true));
      ws.once('error', (err) => fail(err.message || String(err), false, (err as NodeJS.ErrnoException).code));
      ws.once('close', (code, reason) => fail(`closed before opening (code ${code}${reason.length ? `, ${reason.toString()}` : ''})`, false));
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners();
        this.ws = ws;
        this.attach(ws);
        ws.send(encodeOpenDataChannel({ messageSchemaVersion: '1.0', requestId: randomUUID(), tokenValue: token, clientId: this.opts.clientId, clientVersion: this.opts.clientVersion }), { binary: false });
        this.opts.logger.debug(`data channel open to ${where}`);
        resolve();
      });
    });
  }

  private checkUrl(streamUrl: string): URL {
    let url: URL;
    try {
      url = new URL(streamUrl);
    } catch {
      throw new ProxyError(ExitCode.Protocol, 'the service returned a StreamUrl that is not a URL; this is unexpected, retry or report it', 'BadStreamUrl');
    }
    if (url.protocol === 'wss:') return url;
    if (url.protocol === 'ws:' && this.opts.allowInsecure) return url;
    throw new ProxyError(ExitCode.Protocol, `refusing the unencrypted data channel URL ${url.protocol}//${url.host}: only wss:// is accepted unless the SSM endpoint is a loopback address`, 'InsecureStreamUrl');
  }

  private attach(ws: WebSocket): void {
    this.lastHeard = Date.now();
    this.readingPaused = false;
    const heard = () => {
      this.lastHeard = Date.now();
      this.receivedAt = monotonicMs();
    };
    const message = (data: Buffer) => this.emit('message', data);
    // Our receiver notes the time once per socket read, for every message parsed from it.
    this.ownReceiver = !this.opts.wsReceiver && interceptReceiver(ws, this.receiverFor(ws, heard, message));
    if (!this.ownReceiver) {
      ws.on('message', (data: Buffer) => {
        heard();
        message(data);
      });
      ws.on('pong', heard);
      ws.on('ping', heard);
    }
    ws.on('error', (err) => this.down(`websocket error: ${err.message}`));
    ws.on('close', (code, reason) => this.down(`websocket closed (code ${code}${reason.length ? `, ${reason.toString()}` : ''})`));
    this.pingTimer = setInterval(() => {
      if (this.checkAlive()) return;
      // Transport keepalive only: pings do not count as session activity (§3.4).
      if (ws.readyState === WebSocket.OPEN) ws.ping(Buffer.from('keepalive'));
    }, this.pingIntervalMs);
    this.pingTimer.unref();
  }

  /**
   * Takes the link down when nothing has been heard for deadAfterMs (§3.4: 90 s), and
   * returns true then; when that moment falls before the next ping, a timer is set for it.
   */
  private checkAlive(): boolean {
    // While we hold reading back for a slow consumer we hear nothing, pongs included.
    if (this.readingPaused) return false;
    const silent = Date.now() - this.lastHeard;
    if (silent > this.deadAfterMs) {
      this.down(`no traffic from the service for ${Math.round(this.deadAfterMs / 1000)} s`);
      return true;
    }
    if (silent + this.pingIntervalMs > this.deadAfterMs) {
      clearTimeout(this.deadTimer);
      this.deadTimer = setTimeout(() => this.checkAlive(), this.deadAfterMs - silent + 1);
      this.deadTimer.unref();
    }
    return false;
  }

  /** Our parser for what `ws` reads: its push(), for interceptReceiver. */
  private receiverFor(ws: WebSocket, heard: () => void, message: (data: Buffer) => void): (chunk: Buffer) => void {
    const receiver = new WsReceiver(
      {
        message,
        ping: (data) => {
          if (ws.readyState === WebSocket.OPEN) ws.pong(data);
        },
        pong: () => {},
        close: (code, reason) => this.down(`websocket closed (code ${code}${reason ? `, ${reason}` : ''})`, code),
        error: (message, closeCode) => this.down(`websocket error: ${message}`, closeCode),
      },
      MAX_MESSAGE,
    );
    return (chunk) => {
      heard();
      receiver.push(chunk);
    };
  }

  /** With `closeCode`, answers the server's close frame (or closes for its protocol error) before closing the socket. */
  private down(reason: string, closeCode?: number): void {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    clearTimeout(this.deadTimer);
    ws.removeAllListeners();
    ws.on('error', () => {});
    if (closeCode === undefined) ws.terminate();
    else closeAfterPeer(ws, closeCode);
    this.closeWaiter?.();
    if (!this.closedByUs) this.emit('down', reason);
  }

  /** Sends a batch of frames; returns false if the socket is not open. */
  sendFrames(frames: Buffer[]): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    if (frames.length === 0) return true;
    // Corked until the next tick: the frames sent for every message parsed from one
    // socket read leave in one writev.
    corkUntilNextTick(wsSocket(ws));
    const socket = directSocket(ws);
    if (socket) {
      const batch = this.arenas.encode(frames, true);
      socket.write(batch.bytes, batch.done);
    } else {
      // Copies: a frame's storage is reused once it is acked (reuseFrameBuffers), and ws
      // keeps a reference instead of a masked copy when its random mask is all zeros.
      for (const f of frames) ws.send(Buffer.from(f), { binary: true });
    }
    return true;
  }

  private readingPaused = false;

  pauseReading(): void {
    this.readingPaused = true;
    this.ws?.pause();
  }

  resumeReading(): void {
    if (this.readingPaused) this.lastHeard = Date.now();
    this.readingPaused = false;
    this.ws?.resume();
  }

  /** Closes with 1000 (normal) after the queued frames are written. */
  close(): Promise<void> {
    this.closedByUs = true;
    const ws = this.ws;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    clearTimeout(this.deadTimer);
    if (!ws) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        if (this.ws === ws) this.ws = null;
        this.closeWaiter = null;
        resolve();
      };
      const t = setTimeout(() => {
        ws.terminate();
        done();
      }, 1000);
      // Every end of an attached websocket goes through down() (ws's 'close' event, or our
      // receiver reading the server's close frame before the socket closes): it ends the wait.
      this.closeWaiter = done;
      ws.close(1000);
    });
  }
}

/**
 * The close frame in answer (RFC 6455 §5.5.1: the same status, none for 1005), then
 * the end of our side of the TCP connection; the socket is destroyed after a second
 * if the server has not closed its side by then.
 */
function closeAfterPeer(ws: WebSocket, code: number): void {
  try {
    ws.close(code === 1005 ? undefined : code);
    // end() writes what is corked, the close frame included, then the FIN.
    (wsSocket(ws) as { end?: () => void } | undefined)?.end?.();
  } catch {
    ws.terminate();
    return;
  }
  setTimeout(() => ws.terminate(), 1000).unref();
}
