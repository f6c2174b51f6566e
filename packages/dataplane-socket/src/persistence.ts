import type { Dest } from './dest.js';

/**
 * An IPVS persistence template: this client address goes to `dest` while the template
 * lives. It lives `timeoutMs` after its last use, and never ends while connections it
 * placed are still open (IPVS re-arms a template that still controls connections).
 */
export class Template {
  readonly clientAddress: string;
  dest: Dest;
  lastUsed: number;
  /** Live connections this template placed. */
  conns = 0;

  constructor(clientAddress: string, dest: Dest, now: number) {
    this.clientAddress = clientAddress;
    this.dest = dest;
    this.lastUsed = now;
    dest.persistent++;
  }

  moveTo(dest: Dest): void {
    if (dest === this.dest) return;
    this.dest.persistent--;
    dest.persistent++;
    this.dest = dest;
  }
}

/** The templates of one virtual service, by client address. */
export class Persistence {
  timeoutMs: number;
  readonly #templates = new Map<string, Template>();

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
  }

  get size(): number {
    return this.#templates.size;
  }

  values(): IterableIterator<Template> {
    return this.#templates.values();
  }

  /**
   * The template's server when it can still take new connections. A server at weight 0,
   * draining or gone ends its templates here: Fulcrum behaves as IPVS with
   * `expire_quiescent_template = 1`, so taking a server out really takes it out.
   */
  lookup(clientAddress: string, now: number): Dest | undefined {
    const t = this.#templates.get(clientAddress);
    if (!t) return undefined;
    if (!t.dest.available) {
      this.#drop(t);
      return undefined;
    }
    t.lastUsed = now;
    return t.dest;
  }

  /** Records that `clientAddress` now goes to `dest`; returns the template to hold. */
  assign(clientAddress: string, dest: Dest, now: number): Template {
    let t = this.#templates.get(clientAddress);
    if (!t) {
      t = new Template(clientAddress, dest, now);
      this.#templates.set(clientAddress, t);
    } else t.moveTo(dest);
    t.lastUsed = now;
    return t;
  }

  sweep(now: number): void {
    for (const t of this.#templates.values()) {
      if (t.conns === 0 && now - t.lastUsed >= this.timeoutMs) this.#drop(t);
    }
  }

  /** Ends the templates of servers that may not take new connections. */
  dropUnavailable(): void {
    for (const t of this.#templates.values()) if (!t.dest.available) this.#drop(t);
  }

  clear(): void {
    for (const t of this.#templates.values()) this.#drop(t);
  }

  #drop(t: Template): void {
    if (this.#templates.get(t.clientAddress) !== t) return;
    this.#templates.delete(t.clientAddress);
    t.dest.persistent--;
  }
}
