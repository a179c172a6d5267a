import { invalidConfig } from '../../cni/errors.js';
import { ipFamily } from '../../net/ip.js';
import type { Family } from '../../net/ip.js';
import type { Expr } from './json.js';

const SUPPORTED =
  'supported forms: "ip|ip6 saddr|daddr [==|!=] ADDRESS[/LEN]", "iifname|oifname [==|!=] NAME", "meta mark [==|!=] NUMBER"';

const OPS: Record<string, '==' | '!='> = { '==': '==', eq: '==', '!=': '!=', ne: '!=' };
const IFNAME = /^[A-Za-z0-9_.*+-]{1,15}$/;

function fail(tokens: readonly string[], why: string): never {
  throw invalidConfig(`unsupported nftables condition ${JSON.stringify(tokens.join(' '))}`, `${why}; ${SUPPORTED}`);
}

function addressValue(tokens: readonly string[], text: string, family: Family): unknown {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined || addr === undefined || ipFamily(addr) !== family) fail(tokens, `"${text}" is not an IPv${family} address or prefix`);
  if (len === undefined) return addr;
  const n = Number(len);
  if (!/^\d{1,3}$/.test(len) || n > (family === 4 ? 32 : 128)) fail(tokens, `"${text}" has an invalid prefix length`);
  return { prefix: { addr, len: n } };
}

/**
 * Translates conditionsV4/V6 (nft syntax tokens, as the reference accepts them) into nft JSON matches.
 * Only a small, safe subset is accepted, so that nothing unvalidated reaches a rule.
 */
export function parseNftConditions(tokens: readonly string[], family: Family): Expr[] {
  const out: Expr[] = [];
  let i = 0;
  const op = (): '==' | '!=' => {
    const o = OPS[tokens[i] ?? ''];
    if (o) i++;
    return o ?? '==';
  };
  const value = (): string => {
    const v = tokens[i++];
    if (v === undefined) fail(tokens, 'a value is missing');
    return v;
  };
  while (i < tokens.length) {
    const t = tokens[i++]!;
    if (t === 'ip' || t === 'ip6') {
      const fam: Family = t === 'ip' ? 4 : 6;
      if (fam !== family) fail(tokens, `"${t}" does not match in IPv${family} conditions`);
      const field = tokens[i++];
      if (field !== 'saddr' && field !== 'daddr') fail(tokens, `"${t} ${field ?? ''}" is not supported`);
      const o = op();
      out.push({ match: { op: o, left: { payload: { protocol: t, field } }, right: addressValue(tokens, value(), family) } });
    } else if (t === 'iifname' || t === 'oifname') {
      const o = op();
      const name = value();
      if (!IFNAME.test(name)) fail(tokens, `"${name}" is not an interface name`);
      out.push({ match: { op: o, left: { meta: { key: t } }, right: name } });
    } else if (t === 'meta' && tokens[i] === 'mark') {
      i++;
      const o = op();
      const v = value();
      if (!/^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(v) || Number(v) > 0xffffffff) fail(tokens, `"${v}" is not a 32-bit mark`);
      out.push({ match: { op: o, left: { meta: { key: 'mark' } }, right: Number(v) } });
    } else {
      fail(tokens, `"${t}" is not supported`);
    }
  }
  return out;
}
