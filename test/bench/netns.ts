/**
 * Capped links for bench:sync: one Linux network namespace per process (coordinator included), each with
 * one veth to a common bridge, each veth limited by tc (token bucket) to `rateMbit` in both directions —
 * one NIC per machine. Needs root and iproute2; `cappedNetAvailable()` says why not otherwise.
 * Namespaces and the bridge carry this process's pid in their names and are removed by `teardown()`,
 * which also runs on exit and on SIGINT/SIGTERM, so a failed bench leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((p) => existsSync(p));
const TC = ['/usr/sbin/tc', '/sbin/tc', '/usr/bin/tc'].find((p) => existsSync(p));

/** null when capped links can be built here, else the reason. */
export function cappedNetAvailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  if (!IP || !TC) return 'iproute2 (ip, tc) not found';
  return null;
}

const run = (cmd: string, args: string[]): void => {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
};

export class CappedNet {
  readonly names: string[];
  private readonly bridge: string;
  private up = false;
  private readonly onExit = (): void => this.teardown();
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    this.teardown();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };

  /** `count` namespaces: index 0 is the coordinator's, 1..count-1 the workers'. */
  constructor(readonly count: number, readonly rateMbit: number) {
    const tag = (process.pid % 100000).toString(36);
    this.bridge = `bs${tag}br`;
    this.names = Array.from({ length: count }, (_, i) => `bsync-${tag}-${i}`);
  }

  /** The address of namespace i on the bridge network. */
  ip(i: number): string {
    return `10.77.${Math.floor((i + 1) / 250)}.${((i + 1) % 250) + 1}`;
  }

  /** The command prefix that runs a program inside namespace i. */
  exec(i: number): string[] {
    return [IP!, 'netns', 'exec', this.names[i]];
  }

  setup(): void {
    process.once('exit', this.onExit);
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    this.up = true;
    const ip = IP!;
    const rate = `${this.rateMbit}mbit`;
    // a token bucket of ~1 ms at the rate keeps bursts short; latency bounds the queue
    const burst = `${Math.max(64, Math.round((this.rateMbit * 1000) / 8 / 1000))}kb`;
    run(ip, ['link', 'add', this.bridge, 'type', 'bridge']);
    run(ip, ['link', 'set', this.bridge, 'up']);
    this.names.forEach((ns, i) => {
      const host = `${this.bridge.slice(0, 6)}h${i}`;
      const inner = `${this.bridge.slice(0, 6)}n${i}`;
      run(ip, ['netns', 'add', ns]);
      run(ip, ['link', 'add', host, 'type', 'veth', 'peer', 'name', inner]);
      run(ip, ['link', 'set', inner, 'netns', ns]);
      run(ip, ['netns', 'exec', ns, ip, 'link', 'set', inner, 'name', 'eth0']);
      run(ip, ['netns', 'exec', ns, ip, 'addr', 'add', `${this.ip(i)}/16`, 'dev', 'eth0']);
      run(ip, ['netns', 'exec', ns, ip, 'link', 'set', 'eth0', 'up']);
      run(ip, ['netns', 'exec', ns, ip, 'link', 'set', 'lo', 'up']);
      run(ip, ['link', 'set', host, 'master', this.bridge]);
      run(ip, ['link', 'set', host, 'up']);
      // out of the namespace (its upload) and into it (its download)
      run(ip, ['netns', 'exec', ns, TC!, 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', '20ms']);
      run(TC!, ['qdisc', 'add', 'dev', host, 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', '20ms']);
    });
  }

  teardown(): void {
    if (!this.up) return;
    this.up = false;
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    for (const ns of this.names) {
      try { run(IP!, ['netns', 'del', ns]); } catch { /* already gone */ }
    }
    try { run(IP!, ['link', 'del', this.bridge]); } catch { /* already gone */ }
  }
}
