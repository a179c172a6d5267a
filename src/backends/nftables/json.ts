/**
 * The nft JSON vocabulary this backend speaks (libnftables-json(5)): our table's name and family, and
 * the types of commands and expressions. Shared by render, conditions, parse and reconcile.
 */
export type Expr = Record<string, unknown>;
export type Command = Record<string, unknown>;

export const FAMILY = 'inet';
export const TABLE = 'cni_portmap';

/** One element of one of our maps or sets, as nft JSON. */
export interface Element {
  set: string;
  key: unknown;
  /** Map data; undefined for set elements. */
  value?: unknown;
  comment?: string;
  /** As read: the packets its counter saw (address maps; in nat chains, the first packet of each connection). */
  packets?: number;
}

/** Family and table of every object of ours, as nft JSON wants them on each command. */
export const base = { family: FAMILY, table: TABLE } as const;

/** One nft transaction: every command applies or none does. */
export const document = (cmds: readonly Command[]): string => JSON.stringify({ nftables: cmds });
