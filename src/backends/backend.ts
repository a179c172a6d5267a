import type { Attachment, BackendName, Protocol } from '../portmap/config.js';
import type { Family } from '../net/ip.js';
import type { Owner } from '../portmap/owner.js';
import type { Plan } from '../portmap/plan.js';

/** One hostPort forward as found in the kernel, for `portmap list` and `doctor` (src/cli). */
export interface ForwardRow {
  backend: BackendName;
  /** Made by this plugin, or by the reference Go plugin (its iptables chains or cni_hostport table). */
  origin: 'portmap-ts' | 'reference';
  family: Family;
  protocol: Protocol | string;
  /** undefined: every local address */
  hostIP?: string;
  hostPort: number;
  /** A port range: its last host port (the container ports are the same numbers, hostPort..lastHostPort). */
  lastHostPort?: number;
  podIP: string;
  containerPort: number;
  /** nftables: connections the forward's map element counted (its first packets, seen in the nat hooks). */
  connections?: number;
  network?: string;
  containerID?: string;
  ifname?: string;
  /** Our owner id (16 hex), when known */
  ownerId?: string;
  /** Set when the forward only applies under extra conditions */
  conditional?: boolean;
}

/** The node-wide settings of a configuration (the nftables skeleton is written for them). */
export type SkeletonSettings = Pick<Plan, 'afterServices' | 'serviceCIDRs'>;

/** What GC works on: one network, the attachments still valid in it. */
export interface GcScope {
  network: string;
  attachments: readonly Attachment[];
  /** The node-wide settings to rewrite shared state with; only for the configured backend. */
  settings?: SkeletonSettings;
}

/**
 * The live attachments of a backend to re-create (oldest first), for a call that finds our node-wide
 * state gone: set by the plugin from its records (plugin/self-healing.ts), asked for only then. A
 * call with a plan of its own (ADD, CHECK) restores that plan last, in place of its record.
 */
export type LiveAttachments = () => Plan[];

/**
 * How a verb reached the kernel, for the call's log line: `fast` (the one transaction that assumes
 * the common case: additions only on ADD, the owner's exact deletes on DEL), `slow` (the backend read
 * the kernel state and wrote the repair it needed), `restored` (our node-wide state was gone: the live
 * attachments were re-created from their records, this one with them).
 */
export type CallPath = 'fast' | 'slow' | 'restored';

/** Host ports an ADD took over from another attachment (the newest ADD wins), one per family and key. */
export interface PortTakeover {
  family: Family;
  protocol: string;
  /** The host ports first..last (one port: first === last). */
  first: number;
  last: number;
  /** Only this host address; undefined: every local address of the family. */
  hostIP?: string;
  /** The attachment that held them, as far as its entries tell: its owner id and `network/containerID/ifname`. */
  from: { id?: string; name?: string };
}

export interface AddOutcome {
  path: CallPath;
  /** Empty when the backend does not detect takeovers (iptables: the newest rule is inserted first and shadows the older). */
  takeovers: PortTakeover[];
}

/** A firewall backend: turns plans into kernel state and reads it back. */
export interface Backend {
  readonly name: BackendName;
  /** Whether del() can prove that an attachment was made by this backend (nftables: the witness). */
  readonly provesOwnership: boolean;
  add(plan: Plan): Promise<AddOutcome>;
  /**
   * Removes everything `owner` holds. `plan` is given when the call carried mappings and a prevResult.
   * Resolves with the path taken; `fast` from a backend that provesOwnership proves the attachment was
   * made by it (the nftables backend's fast DEL is guarded by the ownership witness): no other backend
   * then holds anything of it.
   */
  del(owner: Owner, plan?: Plan): Promise<CallPath>;
  check(plan: Plan): Promise<void>;
  /** Removes the entries of the scope's network that belong to no valid attachment. */
  gc(scope: GcScope): Promise<void>;
  /** Resolves when the backend can serve ADD; rejects with the reason otherwise. */
  status(): Promise<void>;
  /**
   * What is wrong with our node-wide state or with the forwards of `plans` (reads the kernel); empty
   * when intact. A key another of the plans (or another attachment) took over is not damage.
   */
  damage(plans: readonly Plan[]): Promise<string[]>;
  /**
   * Re-creates `plans` (oldest first; the last one's node-wide settings apply) and the node-wide state,
   * in one transaction per family, over whatever state exists, when damage() would find something (or
   * `force`). Reads the kernel once; resolves with the damage it found.
   */
  restore(plans: readonly Plan[], opts?: { force?: boolean }): Promise<string[]>;
  /**
   * Self-healing: when set, a call whose own work finds the node-wide state gone (nftables: the table,
   * a base chain or the ready mark; iptables: our chains or the jumps to them) re-creates these
   * attachments in the same transaction before doing its own work.
   */
  heal?: LiveAttachments;
}
