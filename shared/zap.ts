/**
 * The process's ZAP handler (ZeroMQ RFC 27): libzmq asks it, over inproc://zeromq.zap.01, whether a
 * client that completed a CURVE handshake may connect, and a refused client never gets a message
 * through. One handler serves every CURVE server socket of the process (the coordinator's ROUTER, a
 * worker's data-plane ROUTER): each registers a policy under its own ZAP domain. The handler is bound
 * before the first server socket binds and closed after the last one is released; a request for an
 * unknown domain, another mechanism or a malformed request is refused. Without a handler libzmq would
 * let every client in, so a server socket must not outlive its registration.
 */
import { Router } from 'zeromq';
import { z85Encode } from './security/z85.js';

export interface ZapPolicy {
  /** Whether the client with this public key (Z85) may connect. */
  allow(publicKey: string): boolean;
  /** Told of each refused client: its public key and IP address. */
  refused?(publicKey: string, address: string): void;
}

const ENDPOINT = 'inproc://zeromq.zap.01';
const domains = new Map<string, ZapPolicy>();
let handler: { sock: Router; loop: Promise<void> } | null = null;
let starting: Promise<void> | null = null;
let closing: Promise<void> | null = null;
let next = 0;

/** The reply frames to one request (after the routing id and the empty delimiter). */
function decide(frames: Buffer[]): [string, string] {
  const [version, , domain, address, , mechanism, ...credentials] = frames;
  if (version?.toString() !== '1.0') return ['500', 'unsupported ZAP version'];
  const policy = domains.get(domain?.toString() ?? '');
  if (!policy) return ['400', 'unknown domain'];
  if (mechanism?.toString() !== 'CURVE' || credentials.length !== 1 || credentials[0].length !== 32) return ['400', 'CURVE required'];
  const key = z85Encode(credentials[0]);
  if (policy.allow(key)) return ['200', 'OK'];
  policy.refused?.(key, address?.toString() ?? '');
  return ['400', 'key not allowed'];
}

async function serve(sock: Router): Promise<void> {
  for await (const [route, delimiter, ...request] of sock) {
    let status: [string, string];
    try {
      status = decide(request);
    } catch {
      status = ['500', 'handler error'];
    }
    const id = request[1] ?? Buffer.alloc(0);
    await sock.send([route, delimiter ?? Buffer.alloc(0), '1.0', id, status[0], status[1], '', '']).catch(() => undefined);
  }
}

async function ensureHandler(): Promise<void> {
  if (handler) return;
  starting ??= (async () => {
    await closing; // the previous handler's endpoint is free once its loop ended
    const sock = new Router({ linger: 0 });
    // libzmq frees an inproc name only once the closed socket is reaped, a moment after close()
    for (let attempt = 0; ; attempt++) {
      try {
        await sock.bind(ENDPOINT);
        break;
      } catch (e) {
        if ((e as { code?: string }).code !== 'EADDRINUSE' || attempt >= 50) {
          sock.close();
          throw e;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    handler = { sock, loop: serve(sock).catch(() => undefined) };
  })().finally(() => { starting = null; });
  await starting;
}

/**
 * Registers `policy`; set the returned `domain` as the server socket's zapDomain before it binds, and
 * call `release` once that socket is closed.
 */
export async function zapDomain(policy: ZapPolicy): Promise<{ domain: string; release: () => Promise<void> }> {
  await ensureHandler();
  const domain = `d${process.pid}-${next++}`;
  domains.set(domain, policy);
  let released = false;
  return {
    domain,
    release: async () => {
      if (released) return;
      released = true;
      domains.delete(domain);
      if (domains.size > 0 || !handler || starting) return;
      const h = handler;
      handler = null;
      h.sock.close();
      closing = h.loop.finally(() => { closing = null; });
      await closing;
    },
  };
}
