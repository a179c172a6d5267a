import { createHash } from 'node:crypto';

/**
 * Who owns a set of firewall entries: one attachment (network name + container id + interface).
 * Every entry we write carries `comment`, so DEL and GC remove exactly their owner's entries.
 */
export interface Owner {
  network: string;
  containerID: string;
  ifname: string;
  /** 16 hex digits of sha256(network, containerID, ifname). */
  id: string;
  /** 8 hex digits of sha256(network): GC only considers entries of its own network. */
  networkId: string;
  /** A 32-bit value derived from id: the data of our masquerade map elements, compared on delete. */
  tag: number;
  /** `<networkId>:<id> <network>/<containerID>/<ifname>`, at most 128 characters (nft's comment limit). */
  comment: string;
}

/** nft refuses a comment longer than this: the owner comment is cut to it. */
export const NFT_COMMENT_MAX = 128;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export function ownerOf(network: string, containerID: string, ifname: string): Owner {
  const id = sha256(`${network}\0${containerID}\0${ifname}`).slice(0, 16);
  const networkId = sha256(network).slice(0, 8);
  const comment = `${networkId}:${id} ${network}/${containerID}/${ifname}`.slice(0, NFT_COMMENT_MAX);
  return { network, containerID, ifname, id, networkId, tag: Number.parseInt(id.slice(0, 8), 16), comment };
}

/** An attachment as operators read it: `network/containerID/ifname`. */
export const attachmentName = (a: { network: string; containerID: string; ifname: string }): string => `${a.network}/${a.containerID}/${a.ifname}`;

export interface ParsedComment {
  networkId: string;
  id: string;
  /** The readable part; may be cut short for very long names. */
  network?: string;
  containerID?: string;
  ifname?: string;
}

/** Reads an owner comment back; undefined when it is not one of ours. */
export function parseOwnerComment(comment: string | undefined): ParsedComment | undefined {
  const m = /^([0-9a-f]{8}):([0-9a-f]{16})(?: (.*))?$/.exec(comment ?? '');
  if (!m) return undefined;
  const out: ParsedComment = { networkId: m[1]!, id: m[2]! };
  const parts = (m[3] ?? '').split('/');
  if (parts.length === 3) {
    out.network = parts[0]!;
    out.containerID = parts[1]!;
    out.ifname = parts[2]!;
  }
  return out;
}

/** The readable `network/containerID/ifname` an owner comment carries; undefined when it has none. */
export function commentName(c: ParsedComment | undefined): string | undefined {
  if (c?.network === undefined || c.containerID === undefined || c.ifname === undefined) return undefined;
  return attachmentName({ network: c.network, containerID: c.containerID, ifname: c.ifname });
}
