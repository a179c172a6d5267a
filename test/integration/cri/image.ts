/**
 * The pod sandbox ("pause") image for containerd, built offline: one layer holding busybox-static's
 * /bin/busybox, whose entrypoint sleeps forever, written as an OCI image layout tarball that
 * `ctr images import` reads. Both tar files are made here (ustar, mtime 0, owner root), no tool needed.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

export const BUSYBOX = '/bin/busybox';

interface TarEntry {
  name: string;
  /** A directory when absent. */
  data?: Buffer;
  mode?: number;
}

/** One ustar header block. */
function header(name: string, size: number, mode: number, type: '0' | '5'): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const h = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => h.write(value, offset, length, 'utf8');
  const octal = (offset: number, length: number, value: number) => field(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
  field(0, 100, name);
  octal(100, 8, mode);
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, size);
  octal(136, 12, 0); // mtime
  field(148, 8, '        '); // checksum placeholder: eight spaces
  field(156, 1, type);
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  field(265, 32, 'root');
  field(297, 32, 'root');
  let sum = 0;
  for (const b of h) sum += b;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** A tar archive of these entries, in order. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.data === undefined) {
      parts.push(header(e.name.endsWith('/') ? e.name : `${e.name}/`, 0, e.mode ?? 0o755, '5'));
      continue;
    }
    parts.push(header(e.name, e.data.length, e.mode ?? 0o644, '0'), e.data);
    const pad = (512 - (e.data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024)); // two zero blocks end the archive
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Node's architecture name in OCI/Go terms. */
export function ociArch(arch = process.arch): string {
  const names: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return names[arch] ?? arch;
}

export interface PauseImage {
  /** The image tarball (OCI layout) to import. */
  tarball: string;
  /** The name it is imported as (the `io.containerd.image.name` annotation), to set as sandbox_image. */
  ref: string;
  /** The image's entrypoint. */
  entrypoint: string[];
}

/** Writes the pause image tarball to `file`. */
export function buildPauseImage(file: string, ref = 'localhost/portmap-test/pause:1'): PauseImage {
  const entrypoint = [BUSYBOX, 'sleep', '2147483647'];
  const layer = tar([
    { name: 'bin/' },
    { name: 'bin/busybox', data: readFileSync(BUSYBOX), mode: 0o755 },
  ]);
  const blobs: TarEntry[] = [];
  const blob = (data: Buffer, mediaType: string) => {
    const hex = sha256(data);
    blobs.push({ name: `blobs/sha256/${hex}`, data });
    return { mediaType, digest: `sha256:${hex}`, size: data.length };
  };
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const layerDesc = blob(layer, 'application/vnd.oci.image.layer.v1.tar');
  const platform = { architecture: ociArch(), os: 'linux' };
  const config = blob(
    json({ ...platform, config: { Entrypoint: entrypoint, WorkingDir: '/' }, rootfs: { type: 'layers', diff_ids: [layerDesc.digest] } }),
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = blob(
    json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layerDesc] }),
    'application/vnd.oci.image.manifest.v1+json',
  );
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ ...manifest, platform, annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.split(':').pop() } }],
  };
  writeFileSync(file, tar([
    { name: 'oci-layout', data: json({ imageLayoutVersion: '1.0.0' }) },
    { name: 'index.json', data: json(index) },
    { name: 'blobs/' },
    { name: 'blobs/sha256/' },
    ...blobs,
  ]));
  return { tarball: file, ref, entrypoint };
}
