// The SSH stream's input. ssh gives its ProxyCommand a pipe (or a socketpair): that is
// read into one reused buffer (net.Socket's `onread`), so the upload path allocates
// nothing per read. A fresh 64 KiB buffer per read, kept alive until it was framed,
// was promoted often enough for dead reads to pile up to tens of MB between major
// collections. Anything else on fd 0 (a file, a TTY) is read through process.stdin.
import { EventEmitter } from 'node:events';
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';

/**
 * What PortSession needs from its input. A 'data' chunk may be a view into a buffer that
 * is reused once the listener returns: consume or copy it there (the channel copies).
 */
export interface ByteSource {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  removeAllListeners(event: 'data'): unknown;
}

const READ_SIZE = 64 * 1024;

/** A pipe or socket descriptor read into one buffer; paused until resume(). */
export class PipeReader extends EventEmitter<{ data: [Buffer]; end: []; error: [Error] }> implements ByteSource {
  private readonly socket: Socket;

  constructor(fd: number, readSize = READ_SIZE) {
    super();
    const buffer = Buffer.allocUnsafeSlow(readSize);
    this.socket = new Socket({
      fd,
      readable: true,
      writable: false,
      pauseOnCreate: true,
      onread: {
        buffer,
        callback: (n: number) => {
          this.emit('data', buffer.subarray(0, n));
          return true;
        },
      },
    } as ConstructorParameters<typeof Socket>[0]);
    this.socket.on('end', () => this.emit('end'));
    this.socket.on('error', (err) => this.emit('error', err));
  }

  pause(): this {
    this.socket.pause();
    return this;
  }

  resume(): this {
    this.socket.resume();
    return this;
  }
}

/** fd 0 as a ByteSource: a PipeReader for a pipe or socket, process.stdin otherwise. */
export function openStdin(): ByteSource {
  let pipe = false;
  try {
    const st = fstatSync(0);
    pipe = st.isFIFO() || st.isSocket();
  } catch {
    // fd 0 closed or unreadable: process.stdin reports it the usual way.
  }
  return pipe ? new PipeReader(0) : process.stdin;
}
