// A .tar.gz of a directory the operator picked, made in the browser: ustar entries (files
// only; directories are implied by paths), gzip through CompressionStream.

export interface TarFile {
  /** Path inside the archive, `/`-separated, relative. */
  path: string;
  data: Uint8Array;
}

const enc = new TextEncoder();

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

function put(block: Uint8Array, offset: number, text: string, width: number): void {
  const bytes = enc.encode(text);
  if (bytes.length > width) throw new Error(`tar field too long: ${text}`);
  block.set(bytes, offset);
}

/** Splits a long path into ustar's prefix (155 bytes) and name (100 bytes). */
function splitPath(path: string): { prefix: string; name: string } {
  if (enc.encode(path).length <= 100) return { prefix: '', name: path };
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (enc.encode(prefix).length <= 155 && enc.encode(name).length <= 100) return { prefix, name };
  }
  throw new Error(`path too long for a tar archive: ${path}`);
}

function header(path: string, size: number, mtime: number): Uint8Array {
  const h = new Uint8Array(512);
  const { prefix, name } = splitPath(path);
  put(h, 0, name, 100);
  put(h, 100, octal(0o644, 8), 8);
  put(h, 108, octal(0, 8), 8);
  put(h, 116, octal(0, 8), 8);
  put(h, 124, octal(size, 12), 12);
  put(h, 136, octal(mtime, 12), 12);
  put(h, 148, '        ', 8);
  put(h, 156, '0', 1);
  put(h, 257, 'ustar\0', 6);
  put(h, 263, '00', 2);
  put(h, 345, prefix, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(h, 148, `${sum.toString(8).padStart(6, '0')}\0 `, 8);
  return h;
}

export function tar(files: TarFile[], mtime = Math.floor(Date.now() / 1000)): Blob {
  const parts: Uint8Array[] = [];
  for (const f of files) {
    if (f.path.startsWith('/') || f.path.split('/').includes('..')) throw new Error(`unsafe path: ${f.path}`);
    parts.push(header(f.path, f.data.length, mtime), f.data);
    const pad = (512 - (f.data.length % 512)) % 512;
    if (pad) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(1024));
  return new Blob(parts as BlobPart[]);
}

export async function tarGz(files: TarFile[]): Promise<Blob> {
  const gz = tar(files).stream().pipeThrough(new CompressionStream('gzip'));
  return new Response(gz).blob();
}

/** Skipped when packing a picked directory: version control and dependencies are rebuilt by the image build. */
export const SKIPPED = /(^|\/)(\.git|node_modules)(\/|$)/;

/** The files of an `<input webkitdirectory>`, as archive entries under their relative paths. */
export async function filesOf(list: FileList): Promise<TarFile[]> {
  const out: TarFile[] = [];
  for (const file of Array.from(list)) {
    const path = (file as File & { webkitRelativePath?: string }).webkitRelativePath || file.name;
    if (SKIPPED.test(path)) continue;
    out.push({ path, data: new Uint8Array(await file.arrayBuffer()) });
  }
  return out;
}
